"""Flux results as InfluxDB 2 streams them from /api/v2/query: annotated CSV, CRLF line ends.

Reconstructed from influxdata/flux v0.196.1 (the Flux of influxdb v2.7.12) csv/result.go
(ResultEncoder.Encode, writeSchema, writeDatatypes/Groups/Defaults, encodeValueFrom,
EncodeError), result.go (DelimitedMultiResultEncoder: "\\r\\n" after every result, an error
after data becomes an `error,reference` table) and Go's encoding/csv Writer with UseCRLF
(quoting a field holding the delimiter, a quote, CR or LF, or starting with a space).
A new schema (annotations and header, after a blank line unless first) is written when the
columns change, for an empty table and for the table after an empty one; an empty table's
`#default` row carries its table id and group key values (ResultEncoder.Encode, writeSchema
with useKeyDefaults).
Times are RFC3339Nano text under the `dateTime:RFC3339` datatype; doubles are
strconv.FormatFloat(v, 'f', -1, 64).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import gojson

DATATYPE = {
    "string": "string",
    "integer": "long",
    "unsigned": "unsignedLong",
    "float": "double",
    "boolean": "boolean",
    "time": "dateTime:RFC3339",
}


@dataclass
class Table:
    """One Flux table: typed columns (name, kind), the group key and rows of values."""

    columns: list[tuple[str, str]]
    group_key: set[str]
    rows: list[list[object]] = field(default_factory=list)
    key_values: dict[str, object] = field(default_factory=dict)  # an empty table's group key


def _needs_quotes(text: str) -> bool:
    if text == "":
        return False
    if text == "\\.":
        return True
    if any(c in text for c in ',"\r\n'):
        return True
    return text[0].isspace()


def _field(text: str) -> str:
    if not _needs_quotes(text):
        return text
    body = text.replace('"', '""').replace("\r", "").replace("\n", "\r\n")
    return f'"{body}"'


def csv_line(cells: Iterable[str]) -> str:
    return ",".join(_field(c) for c in cells) + "\r\n"


def encode_value(kind: str, value: object) -> str:
    if value is None:
        return ""
    if kind == "time":
        return gojson.rfc3339nano(int(value))  # type: ignore[call-overload]
    if kind == "float":
        return gojson.go_float_fixed(float(value))  # type: ignore[arg-type]
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


def _schema_lines(
    table: Table, annotations: list[str], header: bool, result: str, empty_id: int | None
) -> str:
    cols = [("", ""), ("result", "string"), ("table", "integer"), *table.columns]
    defaults = [result, "" if empty_id is None else str(empty_id)]
    for name, kind in table.columns:
        known = empty_id is not None and name in table.group_key
        defaults.append(encode_value(kind, table.key_values.get(name)) if known else "")
    out = ""
    for annotation in annotations:
        if annotation == "datatype":
            out += csv_line(["#datatype", *(DATATYPE[k] for _, k in cols[1:])])
        elif annotation == "group":
            out += csv_line(
                [
                    "#group",
                    "false",
                    "false",
                    *(str(c in table.group_key).lower() for c, _ in table.columns),
                ]
            )
        elif annotation == "default":
            out += csv_line(["#default", *defaults])
    if header:
        out += csv_line(label for label, _ in cols)
    return out


def encode_tables(
    tables: Iterable[Table],
    *,
    annotations: list[str],
    header: bool = True,
    result: str = "_result",
) -> Iterator[str]:
    """One result's text, a chunk per table, then the result delimiter ("\\r\\n")."""
    last_schema: tuple[object, ...] | None = None
    last_empty = False
    for table_id, table in enumerate(tables):
        schema = (tuple(table.columns), tuple(sorted(table.group_key)))
        empty = not table.rows
        chunk = ""
        if last_empty or schema != last_schema or empty:
            if last_schema is not None:
                chunk += "\r\n"
            chunk += _schema_lines(table, annotations, header, result, table_id if empty else None)
        first = "" if "default" in annotations else result
        for row in table.rows:
            cells = ["", first, str(table_id)]
            cells += [
                encode_value(kind, v) for (_, kind), v in zip(table.columns, row, strict=True)
            ]
            chunk += csv_line(cells)
        yield chunk
        last_schema, last_empty = schema, empty
    yield "\r\n"


def encode_error(message: str, annotations: list[str], after_data: bool) -> str:
    """ResultEncoder.EncodeError: an `error,reference` table, after a blank line if data was
    already written."""
    out = "\r\n" if after_data else ""
    for annotation in annotations:
        if annotation == "datatype":
            out += csv_line(["#datatype", "string", "string"])
        elif annotation == "group":
            out += csv_line(["#group", "true", "true"])
        elif annotation == "default":
            out += csv_line(["#default", "", ""])
    out += csv_line(["", "error", "reference"])
    out += csv_line(["", message, ""])
    return out
