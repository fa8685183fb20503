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

Errors: LineProtocolError (a ValueError) names the value and why it cannot be written.
`name_problem` and `point_problem` say the same without raising: config validation refuses such
a name before anything starts (check-config), a source's point is checked before it is stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


def escape_measurement(name: str) -> str:
    return _checked(name, "measurement").translate(_MEASUREMENT_ESCAPES)


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
