"""InfluxDB line protocol: the one encoder both apps write with.

`encode_line(measurement, tags, fields, ts)` gives one line; `series_key(measurement, tags)` its
series part (measurement and sorted tags). What InfluxDB's parser reads back is what the
encoder writes (InfluxDB 1.x and 2.x share the parser, models/points.go; measured against
InfluxDB 1.6.7 by tests/common/test_lineprotocol.py with the cases of contracts/line-protocol.json):

- Measurement: `,` and space are escaped with a backslash. Tag keys, tag values, field keys:
  `,`, `=` and space. Any other backslash is literal: `a\\b` is stored as `a\\b`, and `\\\\` is
  NOT read back as one backslash. So a name that ends with a backslash cannot be written at all
  (the backslash would escape the separator after it: "invalid tag format"; telegraf#3004,
  influxdb#5231) and is refused here, as is a newline in a name (it ends the line; an escaped
  `\\n` is stored as two characters).
- Refused too: an empty name, a measurement starting with `#` (the line is a comment: InfluxDB
  answers 204 and stores nothing), the tag keys `time`, `_measurement`, `_field` and the field
  key `time` (InfluxDB refuses the point).
- Empty tag values are left out (line protocol has none). String field values escape `"` and
  `\\`; a newline in a string field is written as is (the parser reads to the closing quote).
  Floats are written in full precision (repr); NaN and infinities cannot be written and are left
  out; integers carry `i`, `Unsigned` integers `u`, booleans are `true`/`false`.

Reading back (the backup's restore): `read_lines` splits text into lines as InfluxDB's scanner
does (a newline inside a string field value does not end a line), `line_timestamp` reads a
line's timestamp, and `typed_value` turns a value as InfluxDB exports it (a type name and its
JSON or CSV text) into the value this encoder takes.

Errors: LineProtocolError (a ValueError) names the value and why it cannot be written.
`name_problem` and `point_problem` say the same without raising: config validation refuses such
a name before anything starts (check-config), a source's point is checked before it is stored.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

NameKind = Literal["measurement", "tag key", "tag value", "field key"]

# Keys InfluxDB refuses: 2.x models/points.go (reserved tag keys) and 1.x/2.x tsdb
# (a field or tag named time: "invalid field name", "invalid tag key").
RESERVED: dict[NameKind, frozenset[str]] = {
    "tag key": frozenset({"time", "_measurement", "_field"}),
    "field key": frozenset({"time"}),
}
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})


class Unsigned(int):
    """An integer written as an unsigned field (`12u`), as InfluxDB 2 stores some exports."""


FieldValue = float | int | bool | str


class LineProtocolError(ValueError):
    """A value line protocol cannot carry; the message names it and says why."""


def name_problem(text: str, kind: NameKind) -> str | None:
    """Why `text` cannot be written as a `kind` (None: it can)."""
    if text == "":
        return None if kind == "tag value" else "is empty"
    if "\n" in text:
        return "contains a newline, which line protocol cannot carry"
    if text.endswith("\\"):
        return "ends with a backslash, which line protocol cannot carry"
    if kind == "measurement" and text.startswith("#"):
        return "starts with '#', which makes the line a comment"
    if text in RESERVED.get(kind, ()):
        return "is reserved: InfluxDB refuses the point"
    return None


def _checked(text: str, kind: NameKind) -> str:
    problem = name_problem(text, kind)
    if problem is not None:
        raise LineProtocolError(f"{kind} {text!r} {problem}")
    return text


# Names repeat every cycle (a collector writes the same series each second): escaped once.
@functools.lru_cache(maxsize=4096)
def escape_measurement(name: str) -> str:
    return _checked(name, "measurement").translate(_MEASUREMENT_ESCAPES)


@functools.lru_cache(maxsize=4096)
def escape_key(text: str, kind: NameKind = "tag key") -> str:
    """A tag key, tag value or field key, escaped."""
    return _checked(text, kind).translate(_KEY_ESCAPES)


def format_string(text: str) -> str:
    """A string field value, quoted."""
    return '"' + text.translate(_STRING_ESCAPES) + '"'


def format_value(value: FieldValue) -> str | None:
    """A field value as line protocol writes it; None for a float that cannot be written."""
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, Unsigned):
        if value < 0:
            raise LineProtocolError(f"unsigned field value {int(value)} is negative")
        return f"{int(value)}u"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return format_string(value)


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """The escaped measurement and its tags sorted by key (empty values left out)."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value != "":
            parts.append(f"{escape_key(key, 'tag key')}={escape_key(value, 'tag value')}")
    return ",".join(parts)


def format_fields(fields: Mapping[str, FieldValue]) -> str:
    """`key=value,...` sorted by key, leaving out floats that cannot be written ('' if none)."""
    out = []
    for key in sorted(fields):
        formatted = format_value(fields[key])
        if formatted is not None:
            out.append(f"{escape_key(key, 'field key')}={formatted}")
    return ",".join(out)


def encode_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts: int
) -> str:
    """One line, timestamp `ts` as given (the write request names its precision).

    LineProtocolError for a name it cannot carry, or when no field is left to write."""
    head = series_key(measurement, tags)
    body = format_fields(fields)
    if not body:
        raise LineProtocolError(f"point {head} at {ts} has no field that can be written")
    return f"{head} {body} {ts}"


def point_problem(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue]
) -> str | None:
    """Why this point cannot be written (the first reason), or None: what `encode_line` would
    refuse, without building the line."""
    try:
        series_key(measurement, tags)
        if not format_fields(fields):
            return f"point {measurement} has no field that can be written"
    except LineProtocolError as exc:
        return str(exc)
    return None


def series_of_line(line: str) -> str:
    """The series key of an encoded line: everything before the first space that no backslash
    escapes (InfluxDB's scanner looks at the byte before, as here)."""
    for index, char in enumerate(line):
        if char == " " and (index == 0 or line[index - 1] != "\\"):
            return line[:index]
    return line


# InfluxDB's names for field types: InfluxQL's SHOW FIELD KEYS (1.x) and annotated CSV's
# #datatype (2.x, Flux's csv/result.go).
_FLOAT_TYPES = frozenset({"float", "double"})
_INTEGER_TYPES = frozenset({"integer", "long"})
_UNSIGNED_TYPES = frozenset({"unsigned", "unsignedLong"})
FIELD_TYPES = _FLOAT_TYPES | _INTEGER_TYPES | _UNSIGNED_TYPES | {"boolean", "string"}


def typed_value(raw: str | float, field_type: str) -> FieldValue:
    """A field value as InfluxDB exports it, typed for `encode_line`.

    `field_type` is one of FIELD_TYPES: float/double, integer/long, unsigned/unsignedLong
    (an `Unsigned`), boolean, string. `raw` is what the export holds: a JSON number, bool or
    string (InfluxQL's /query answer, where a float 230.0 arrives as 230) or the cell text of
    an annotated CSV (`"230"`, `"true"`). LineProtocolError for an unknown type name;
    ValueError when `raw` is not a value of that type."""
    if field_type in _FLOAT_TYPES:
        return float(raw)
    if field_type in _INTEGER_TYPES:
        return int(raw)
    if field_type in _UNSIGNED_TYPES:
        return Unsigned(raw)
    if field_type == "boolean":
        return raw.lower() == "true" if isinstance(raw, str) else bool(raw)
    if field_type == "string":
        return str(raw)
    raise LineProtocolError(f"field type {field_type!r} is not one line protocol can carry")


def line_timestamp(line: str) -> int | None:
    """The timestamp at the end of one line (as `read_lines` gives it; a trailing newline is
    ignored), or None for a blank line, a comment or a line without a timestamp.

    The last space-separated token is the timestamp when it is an integer: a line without one
    ends with a field (`f=1`, or a string's closing quote), never with a bare integer."""
    stripped = line.rstrip("\n")
    if not stripped or stripped.startswith("#"):
        return None
    _, _, last = stripped.rpartition(" ")
    try:
        return int(last)
    except ValueError:
        return None


def read_lines(text: Iterable[str]) -> Iterator[str]:
    """The lines of line protocol `text` (an iterable of chunks, e.g. a text file), each with
    its newline, split where InfluxDB's scanner splits them (models/points.go scanLine): a
    newline inside a string field value belongs to the value, so `m s="a\nb" 1` is one line.

    As there: a backslash skips the character after it; after the first space (the fields),
    a double quote after more equals signs than commas opens or closes a string value. The
    last line is given as it is, with or without a newline."""
    pending: list[str] = []
    quoted = in_fields = escaped = False
    equals = commas = 0
    for chunk in text:
        if not pending and chunk.endswith("\n") and '"' not in chunk and "\\" not in chunk:
            # the common case, fast: whole lines without a string value or an escape
            yield from chunk.splitlines(keepends=True)
            continue
        start = 0
        for index, char in enumerate(chunk):
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "\n" and not quoted:
                pending.append(chunk[start : index + 1])
                yield "".join(pending)
                pending, start = [], index + 1
                in_fields = False
                equals = commas = 0
            elif char == " " and not in_fields:
                in_fields = True
            elif in_fields and not quoted and char == "=":
                equals += 1
            elif in_fields and not quoted and char == ",":
                commas += 1
            elif in_fields and char == '"' and equals > commas:
                quoted = not quoted
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield "".join(pending)
