"""contracts/line-protocol.json as typed cases: what both apps' encoders must write and refuse.

Field values in the file are `[type, value]`; here they become the Python values the encoder
takes (float, int, bool, str, homewatt_common.lineprotocol.Unsigned).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homewatt_common.lineprotocol import FieldValue, Unsigned
from tests.support.contracts import REPO
from tests.support.influxdb1 import InfluxDB1

CONTRACT = REPO / "contracts" / "line-protocol.json"


@dataclass(frozen=True)
class Case:
    name: str
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    ts: int
    line: str = ""  # the encoded line (accepted cases)
    stored_fields: tuple[str, ...] = ()  # the fields a server keeps (finite ones)
    skip: Mapping[str, str] = field(default_factory=dict)  # server -> why not round-tripped
    error: str = ""  # part of the refusal's message (refused cases)
    naive_line: str = ""  # what an encoder that does not refuse writes
    answers: Mapping[str, str] = field(default_factory=dict)  # server -> what it does with it


def _value(kind: str, raw: Any) -> FieldValue:
    if kind == "float":
        return float(raw)
    if kind == "unsigned":
        return Unsigned(raw)
    if kind == "integer":
        assert isinstance(raw, int) and not isinstance(raw, bool)
        return raw
    if kind == "boolean":
        assert isinstance(raw, bool)
        return raw
    assert kind == "string" and isinstance(raw, str), kind
    return raw


def _case(entry: dict[str, Any], ts: int) -> Case:
    fields = {key: _value(*typed) for key, typed in entry["fields"].items()}
    return Case(
        name=entry["name"],
        measurement=entry["measurement"],
        tags=entry["tags"],
        fields=fields,
        ts=ts,
        line=entry.get("line", ""),
        stored_fields=tuple(entry.get("stored_fields", sorted(fields))),
        skip=entry.get("skip", {}),
        error=entry.get("error", ""),
        naive_line=entry.get("naive_line", ""),
        answers=entry.get("answers", {}),
    )


def _load() -> tuple[list[Case], list[Case]]:
    data = json.loads(CONTRACT.read_text(encoding="utf-8"))
    ts = int(data["timestamp"])
    return [_case(e, ts) for e in data["cases"]], [_case(e, ts) for e in data["refused"]]


CASES, REFUSED = _load()


Point = tuple[str, dict[str, str], int, dict[str, Any]]  # measurement, tags, time, fields


def expected_point(case: Case, ts: int | None = None) -> Point:
    """The point a server holds after a write of `case.line` (at `ts`, default the case's)."""
    tags = {k: v for k, v in case.tags.items() if v != ""}
    fields = {k: case.fields[k] for k in case.stored_fields}
    return case.measurement, tags, case.ts if ts is None else ts, fields


def stored_points(influx: InfluxDB1, db: str) -> list[Point]:
    """Every point of database `db` of a real InfluxDB 1.x, read back with InfluxQL (times in
    seconds; a field the point does not have is left out, as is a tag of another series of the
    measurement, which GROUP BY * gives as "")."""
    out = []
    for result in influx.query("SELECT * FROM /.*/ GROUP BY *", db=db, epoch="s"):
        for series in result.get("series", []):
            columns = series["columns"]
            for row in series["values"]:
                fields = {c: v for c, v in zip(columns[1:], row[1:], strict=True) if v is not None}
                tags = {k: v for k, v in (series.get("tags") or {}).items() if v != ""}
                out.append((series["name"], tags, row[0], fields))
    return out
