"""Gen1 devices (Plug, Plug S, 1PM, 2.5, EM, 3EM): `GET /status` -> channels.

Facts (shelly-api-docs.shelly.cloud/gen1, /status of each device; evcc meter/shelly/gen1.go):
- `meters[i]` (Plug, Plug S, 1PM, 2.5): `power` W, `is_valid`, `total` energy in
  **watt-minutes** since the device's last reboot. Channel `switch<i>`.
- `emeters[i]` (EM: 2 channels, 3EM: 3 phases): `power` W, `voltage` V, `current` A (3EM),
  `pf` (3EM), `reactive` var (EM), `is_valid`, `total` and `total_returned` in **Wh**.
  The 3EM's phases are channels `l1`, `l2`, `l3`, its `total_power` channel `total`; the EM's
  channels are `em0`, `em1`.
A channel whose `is_valid` is false is a problem (counted), not a value.
"""

from __future__ import annotations

from typing import Any

from homewatt_collector.sources.shelly.decode import BadAnswer, ChannelValues, number, put

WATT_MINUTE_KWH = 1 / 60_000
WH_KWH = 1 / 1000


def decode_status(status: Any) -> tuple[list[ChannelValues], list[str]]:
    """A Gen1 `/status` answer -> (channels, problems). BadAnswer when it has no meter."""
    if not isinstance(status, dict):
        raise BadAnswer("/status did not answer a JSON object")
    channels: list[ChannelValues] = []
    problems: list[str] = []
    emeters = _list(status, "emeters")
    meters = [m for m in _list(status, "meters") if "total" in m]  # the 3EM lists a bare one
    if not emeters and not meters:
        raise BadAnswer("/status has no `meters` or `emeters` with energy: not a metering device")
    phases = len(emeters) == 3
    for index, emeter in enumerate(emeters):
        name = f"l{index + 1}" if phases else f"em{index}"
        where = f"emeters[{index}]"
        if emeter.get("is_valid") is False:
            problems.append(f"{where}: is_valid is false")
            continue
        values = ChannelValues(name, resolution_kwh=WH_KWH, meter=True)
        put(values, "power_w", number(emeter, "power", where))
        put(values, "voltage_v", number(emeter, "voltage", where))
        put(values, "current_a", number(emeter, "current", where))
        put(values, "power_factor", number(emeter, "pf", where))
        put(values, "reactive_power_var", number(emeter, "reactive", where))
        put(values, "energy_import_kwh", number(emeter, "total", where), WH_KWH)
        put(values, "energy_export_kwh", number(emeter, "total_returned", where), WH_KWH)
        channels.append(values)
    if phases and (total := number(status, "total_power", "status")) is not None:
        channels.append(ChannelValues("total", {"power_w": total}, WH_KWH, meter=True))
    for index, meter in enumerate(meters):
        where = f"meters[{index}]"
        if meter.get("is_valid") is False:
            problems.append(f"{where}: is_valid is false")
            continue
        values = ChannelValues(f"switch{index}", resolution_kwh=WATT_MINUTE_KWH)
        put(values, "power_w", number(meter, "power", where))
        put(values, "energy_total_kwh", number(meter, "total", where), WATT_MINUTE_KWH)
        channels.append(values)
    return channels, problems


def _list(status: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = status.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadAnswer(f"/status `{key}` is not a list of objects")
    return value
