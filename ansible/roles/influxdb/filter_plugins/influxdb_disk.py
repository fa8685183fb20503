"""How many points a day this Pi's collector instances write: the influxdb role's disk estimate.

`collector_instances | homewatt_points_per_day(interval_s, templates_dir)` -> int, points a day.

Per cycle (every `interval_s` seconds, the instance's own or the default) an instance writes
(collector/src/homewatt_collector/service.py and sources/):
- one `homewatt_health` point;
- per device one `homewatt_device_health` point, plus one `electricity` point per channel
  (`total`, `l1`..`l3`) its readings have: the demo source is one device with one channel; a
  Modbus meter has the channels of its template's registers (a template of
  `source.templates`, else the shipped `<templates_dir>/<model>.yaml`; a model found in
  neither counts as the most a meter has: total and three phases).
An instance without a `source.kind` the collector knows counts as one demo device (the collector
role's preflight refuses it anyway).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

SECONDS_PER_DAY = 86400
# total + l1, l2, l3: the most channels any meter template has.
MOST_CHANNELS = 4


def template_channels(template: dict[str, Any]) -> int:
    """Distinct channels of a meter template's registers (`channel` defaults to `total`)."""
    registers = template.get("registers") or []
    return len({register.get("channel", "total") for register in registers}) or 1


def meter_channels(model: str, inline: dict[str, Any], templates_dir: Path) -> int:
    """Channels a Modbus meter of `model` writes each cycle (see the module docstring)."""
    if model in inline:
        return template_channels(inline[model])
    shipped = templates_dir / f"{model}.yaml"
    if shipped.is_file():
        return template_channels(yaml.safe_load(shipped.read_text(encoding="utf-8")) or {})
    return MOST_CHANNELS


def points_per_cycle(source: dict[str, Any], templates_dir: Path) -> int:
    """Points one instance with this `source` section writes each cycle."""
    if source.get("kind") != "modbus":
        return 1 + 1 + 1  # health, device health, the demo meter's one channel
    inline = source.get("templates") or {}
    meters = source.get("meters") or []
    return 1 + sum(1 + meter_channels(m.get("model", ""), inline, templates_dir) for m in meters)


def homewatt_points_per_day(
    instances: list[dict[str, Any]], interval_s: float, templates_dir: str
) -> int:
    """Points a day the `collector_instances` write, at least one point a second (a Pi with
    no instance yet is sized as if it had one meter)."""
    total = 0
    for instance in instances or []:
        every = float(instance.get("interval_s") or interval_s)
        cycles = math.ceil(SECONDS_PER_DAY / every)
        total += cycles * points_per_cycle(instance.get("source") or {}, Path(templates_dir))
    return max(total, SECONDS_PER_DAY)


class FilterModule:
    """The role's filters."""

    def filters(self) -> dict[str, Any]:
        return {"homewatt_points_per_day": homewatt_points_per_day}
