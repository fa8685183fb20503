"""InfluxDB line protocol: formatting points exported from a query, and reading timestamps
back (point-in-time restore). Escaping follows the InfluxDB line protocol reference."""

from __future__ import annotations

import math
from collections.abc import Mapping

FieldValue = float | int | bool | str

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})


def escape_measurement(name: str) -> str:
    return name.replace("\\", "\\\\").translate(_MEASUREMENT)


def escape_key(key: str) -> str:
    """Tag keys, tag values and field keys."""
    return key.replace("\\", "\\\\").translate(_KEY)


def format_field(  # noqa: PLR0911 (one return per InfluxDB type)
    value: FieldValue,
    field_type: str,
) -> str | None:
    """A field value in line protocol for an InfluxDB type name; None skips it (null, NaN).

    Types: float/double, integer/long, unsigned/unsignedLong, boolean, string.
    """
    if field_type in ("boolean",):
        if isinstance(value, str):
            return "true" if value.lower() == "true" else "false"
        return "true" if value else "false"
    if field_type in ("string",):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if field_type in ("integer", "long"):
        return f"{int(value)}i"
    if field_type in ("unsigned", "unsignedLong"):
        return f"{int(value)}u"
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return None
    return repr(number)


def format_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, str], timestamp: int
) -> str:
    """One line from already formatted field values; tags sorted (InfluxDB's preferred order)."""
    head = escape_measurement(measurement)
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # InfluxDB has no empty tag values
        head += f",{escape_key(key)}={escape_key(value)}"
    body = ",".join(f"{escape_key(k)}={v}" for k, v in sorted(fields.items()))
    return f"{head} {body} {timestamp}"


def line_timestamp(line: str) -> int | None:
    """The timestamp at the end of a line, or None for a comment, blank or timestamp-less line."""
    stripped = line.rstrip("\n")
    if not stripped or stripped.startswith("#"):
        return None
    _, _, last = stripped.rpartition(" ")
    try:
        return int(last)
    except ValueError:
        return None
