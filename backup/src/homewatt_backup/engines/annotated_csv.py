"""InfluxDB 2's annotated CSV (the /api/v2/query answer) turned into line protocol.

Annotations requested: datatype, group, default (see influxdb2.py's dialect)."""

from __future__ import annotations

import calendar
import csv
from collections.abc import Iterable, Iterator
from datetime import datetime

from homewatt_backup.errors import InfluxError
from homewatt_backup.lineprotocol import FieldValue, format_field, format_line
from homewatt_backup.models import PRECISION_PER_SECOND

_FLUX_META = {"", "result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}


def rfc3339_to_epoch(text: str, precision: str) -> int:
    """RFC3339 with up to nanoseconds, e.g. 2026-11-23T19:00:00.123456789Z, in `precision`."""
    main, _, frac = text.rstrip("Z").partition(".")
    whole = calendar.timegm(datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").timetuple())
    nanos = int((frac + "000000000")[:9]) if frac else 0
    per_second = PRECISION_PER_SECOND[precision]
    return whole * per_second + nanos // (1_000_000_000 // per_second)


def annotated_csv_to_lines(text_lines: Iterable[str], precision: str) -> Iterator[str]:
    """Line protocol from InfluxDB's annotated CSV (annotations datatype, group, default).

    Each table may have its own columns; an `error,reference` table raises InfluxError.
    """
    datatypes: list[str] = []
    defaults: list[str] = []
    header: list[str] | None = None
    for row in csv.reader(text_lines):
        if not row or all(cell == "" for cell in row):
            header = None  # a blank line ends a table; annotations follow
            continue
        first = row[0]
        if first == "#datatype":
            datatypes, header = row, None
            continue
        if first == "#default":
            defaults = row
            continue
        if first.startswith("#"):
            continue
        if header is None:
            header = row
            if set(header) - {""} == {"error", "reference"}:
                header = ["__error__", *header[1:]]
            continue
        if header[0] == "__error__":
            raise InfluxError(f"incremental export: InfluxDB query error: {row[1]}")
        values = [
            cell if cell != "" or i >= len(defaults) else defaults[i] for i, cell in enumerate(row)
        ]
        record = dict(zip(header, values, strict=False))
        kinds = dict(zip(header, datatypes, strict=False))
        value = record.get("_value", "")
        if value == "":
            continue
        field_type = kinds.get("_value", "double")
        typed: FieldValue = value
        if field_type == "double":
            typed = float(value)
        formatted = format_field(typed, field_type)
        if formatted is None:
            continue
        tags = {k: v for k, v in record.items() if k not in _FLUX_META and v != ""}
        timestamp = rfc3339_to_epoch(record["_time"], precision)
        yield format_line(record["_measurement"], tags, {record["_field"]: formatted}, timestamp)
