"""InfluxDB 2's annotated CSV (the /api/v2/query answer) read as a stream of typed records,
and each record of an export turned into a line of line protocol (homewatt_common's encoder,
the one the collector writes with).

The format (influxdata/flux csv/result.go, the encoder of InfluxDB v2.7.12's Flux; the
"Annotated CSV" page of the InfluxDB 2 docs): RFC 4180 CSV with CRLF line ends; each table
starts with its annotation rows (`#datatype`, `#group`, `#default`, as requested in the
dialect) and a header row, then its data rows; a blank line ends a table (and a result); a
table with the columns `error,reference` reports an error, possibly after data was already
sent. Tables of one answer can have different columns.

read_records() reads any text stream with the csv module (a CRLF is a line end wherever the
stream's chunks were cut), so its result never depends on how the bytes arrived. A line end
inside a quoted value is read as "\n", as Go's encoding/csv reader does (InfluxDB's encoder
writes every "\n" in a string as CRLF and drops "\r": a CR in a stored string is lost
there). Anything it cannot read (a row whose width differs from its header, a data row
before any header, an unknown type) raises InfluxError naming the row: a backup never skips
data silently.
"""

from __future__ import annotations

import calendar
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from homewatt_backup.errors import InfluxError
from homewatt_backup.models import PRECISION_PER_SECOND
from homewatt_common.lineprotocol import LineProtocolError, encode_line, format_value, typed_value

# Columns every Flux table from a storage read carries besides its tags.
FLUX_COLUMNS = frozenset(
    {"", "result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}
)
# Field types line protocol can hold, by annotated CSV datatype.
FIELD_DATATYPES = frozenset({"double", "long", "unsignedLong", "boolean", "string"})


@dataclass(frozen=True)
class Record:
    """One data row: cell text by column (defaults applied; "" is null) and each column's
    datatype (`string`, `long`, `double`, `dateTime:RFC3339`, ...)."""

    cells: dict[str, str]
    datatypes: dict[str, str]
    row: int  # its row number in the answer (1-based, for error lines)


def rfc3339_to_epoch(text: str, precision: str) -> int:
    """RFC3339 UTC with up to nanoseconds (2026-11-23T19:00:00.123456789Z) as an integer in
    `precision` (s, ms, us, ns), sub-precision digits cut. ValueError when not such a time."""
    if not text.endswith("Z"):
        raise ValueError(f"{text!r} is not an RFC3339 UTC time")
    main, _, frac = text[:-1].partition(".")
    if not frac.isdigit() and frac != "":
        raise ValueError(f"{text!r} has a bad fraction of a second")
    whole = calendar.timegm(datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").timetuple())
    nanos = int((frac + "000000000")[:9]) if frac else 0
    per_second = PRECISION_PER_SECOND[precision]
    return whole * per_second + nanos // (1_000_000_000 // per_second)


def read_records(text: Iterable[str], what: str) -> Iterator[Record]:
    """The data rows of an annotated CSV answer (annotations datatype and default read,
    others ignored), in order. `text` is a text stream opened with newline="" (or any
    iterable of lines keeping their line ends). `what` names the operation in errors."""
    reader = csv.reader(text)
    datatypes: list[str] = []
    defaults: list[str] = []
    header: list[str] | None = None
    for row in reader:
        if not row:  # a blank line: the table (and its annotations) ended
            datatypes, defaults, header = [], [], None
            continue
        first = row[0]
        if first.startswith("#"):
            if header is not None:  # annotations of a new table, without a blank line
                datatypes, defaults, header = [], [], None
            if first == "#datatype":
                datatypes = row
            elif first == "#default":
                defaults = row
            continue
        if header is None:
            header = row
            continue
        if len(row) != len(header):
            raise InfluxError(
                f"{what}: InfluxDB's answer is malformed at row {reader.line_num}: "
                f"{len(row)} cells under a header of {len(header)}"
            )
        if header[1:] == ["error", "reference"]:
            reference = f" (reference {row[2]})" if row[2] else ""
            raise InfluxError(f"{what}: InfluxDB query error: {row[1]}{reference}")
        cells = {
            name: defaults[i]
            if cell == "" and 0 < i < len(defaults)
            else cell.replace("\r\n", "\n")
            for i, (name, cell) in enumerate(zip(header, row, strict=True))
        }
        kinds = dict(zip(header, datatypes, strict=False))
        yield Record(cells, kinds, reader.line_num)


def record_to_line(record: Record, precision: str, what: str) -> tuple[str, str] | None:
    """(measurement, line protocol) for one record of a storage read (`_measurement`,
    `_field`, `_value`, `_time`, tags), or None for a null value. InfluxError when the
    record is not a point."""
    cells = record.cells
    missing = [c for c in ("_measurement", "_field", "_value", "_time") if c not in cells]
    if missing:
        raise InfluxError(
            f"{what}: InfluxDB's answer row {record.row} lacks the column(s) {', '.join(missing)}"
        )
    value = cells["_value"]
    if value == "":
        return None
    datatype = record.datatypes.get("_value", "")
    if datatype not in FIELD_DATATYPES:
        kind = f"a {datatype!r}" if datatype else "an untyped"
        raise InfluxError(
            f"{what}: InfluxDB's answer row {record.row} holds {kind} value, "
            "which is not a field type"
        )
    try:
        typed = typed_value(value, datatype)
    except ValueError:
        raise InfluxError(
            f"{what}: InfluxDB's answer row {record.row} holds {value!r}, not a {datatype}"
        ) from None
    if format_value(typed) is None:  # NaN or an infinity: line protocol has none
        return None
    try:
        timestamp = rfc3339_to_epoch(cells["_time"], precision)
    except ValueError as exc:
        raise InfluxError(f"{what}: InfluxDB's answer row {record.row}: {exc}") from None
    measurement = cells["_measurement"]
    tags = {k: v for k, v in cells.items() if k not in FLUX_COLUMNS and v != ""}
    try:
        line = encode_line(measurement, tags, {cells["_field"]: typed}, timestamp)
    except LineProtocolError as exc:
        raise InfluxError(
            f"{what}: InfluxDB's answer row {record.row} cannot be written back: {exc}"
        ) from None
    return measurement, line


def annotated_csv_to_lines(text: Iterable[str], precision: str, what: str) -> Iterator[str]:
    """Line protocol for every non-null point of an annotated CSV export."""
    for record in read_records(text, what):
        converted = record_to_line(record, precision, what)
        if converted is not None:
            yield converted[1]
