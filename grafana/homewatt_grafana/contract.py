"""`contracts/influxdb-grafana.json` as typed values: what InfluxDB and Grafana agree on.

The influxdb role reads the same file (buckets, DBRP mappings, the downsampling task), so every
name Grafana uses for the database, a retention policy or a long-term field comes from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONTRACT_PATH = REPO / "contracts" / "influxdb-grafana.json"


@dataclass(frozen=True)
class RetentionPolicy:
    name: str
    default: bool
    bucket: str


@dataclass(frozen=True)
class LongTermField:
    """A field of the long-term measurement: `aggregate` of `source` over one window."""

    name: str
    source: str
    aggregate: str
    unit: str


@dataclass(frozen=True)
class Contract:
    datasource_uid: str
    datasource_name: str
    datasource_type: str
    http_method: str
    url_env: str
    token_header_name: str
    token_header_value: str
    token_container_path: str
    database: str
    raw: RetentionPolicy
    longterm: RetentionPolicy
    longterm_measurement: str
    source_measurement: str
    window: str
    fields: tuple[LongTermField, ...]
    tz_clause: str
    dashboard_timezone: str
    daily_group_by: str
    weekly_group_by: str
    dashboards_dir: str

    def longterm_field(self, name: str) -> LongTermField:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{CONTRACT_PATH.name}: no long-term field {name!r}")

    @property
    def longterm_from(self) -> str:
        """The FROM target of long-term queries: the retention policy and the measurement."""
        return f'"{self.longterm.name}"."{self.longterm_measurement}"'


def _policy(raw: dict[str, Any]) -> RetentionPolicy:
    return RetentionPolicy(name=raw["name"], default=raw["default"], bucket=raw["bucket"])


@cache
def load(path: Path = CONTRACT_PATH) -> Contract:
    """The contract; a missing key raises KeyError naming it (the file is ours, not user input)."""
    data = json.loads(path.read_text())
    ds = data["datasource"]
    policies = data["influxql"]["retention_policies"]
    down = data["downsampling"]
    tz = data["site_time_zone"]
    return Contract(
        datasource_uid=ds["uid"],
        datasource_name=ds["name"],
        datasource_type=ds["type"],
        http_method=ds["http_method"],
        url_env=ds["url_env"],
        token_header_name=ds["token"]["http_header_name"],
        token_header_value=ds["token"]["http_header_value"],
        token_container_path=ds["token"]["container_path"],
        database=data["influxql"]["database"],
        raw=_policy(policies["raw"]),
        longterm=_policy(policies["longterm"]),
        longterm_measurement=down["target"]["measurement"],
        source_measurement=down["source"]["measurement"],
        window=down["window"],
        fields=tuple(
            LongTermField(f["field"], f["from"], f["aggregate"], f["unit"]) for f in down["fields"]
        ),
        tz_clause=tz["influxql_clause"],
        dashboard_timezone=tz["dashboard_timezone"],
        daily_group_by=tz["group_by_time"]["day"],
        weekly_group_by=tz["group_by_time"]["week"],
        dashboards_dir=data["grafana_files"]["dashboards_dir"],
    )
