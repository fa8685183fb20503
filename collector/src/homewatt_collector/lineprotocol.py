"""InfluxDB line protocol: pure functions from a Sample to its line and its series key."""

from __future__ import annotations

import math

from homewatt_collector.models import FieldValue, Sample

# Only these characters are special in names and tag values (a backslash is taken literally).
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})


def _field_value(value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def series_key(sample: Sample) -> str:
    """Measurement and sorted tags, escaped: the series part of the sample's identity."""
    parts = [sample.measurement.translate(_MEASUREMENT_ESCAPES)]
    for key in sorted(sample.tags):
        value = sample.tags[key]
        if value == "":
            continue  # line protocol has no empty tag values
        parts.append(f"{key.translate(_KEY_ESCAPES)}={value.translate(_KEY_ESCAPES)}")
    return ",".join(parts)


def encode(sample: Sample) -> str:
    """The sample as one line of line protocol with a timestamp in seconds.

    Non-finite floats (NaN, inf) cannot be written to InfluxDB and are left out; a sample with
    no field left is an error, since the caller should not have produced it.
    """
    fields = []
    for key in sorted(sample.fields):
        value = sample.fields[key]
        if isinstance(value, float) and not math.isfinite(value):
            continue
        fields.append(f"{key.translate(_KEY_ESCAPES)}={_field_value(value)}")
    if not fields:
        raise ValueError(f"sample {series_key(sample)} at {sample.ts} has no finite field")
    return f"{series_key(sample)} {','.join(fields)} {sample.ts}"
