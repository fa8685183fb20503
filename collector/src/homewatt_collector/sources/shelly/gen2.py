"""Gen2+ devices (Plus, Pro, Gen3, Gen4): JSON-RPC components -> channels.

Facts (shelly-api-docs.shelly.cloud/gen2: ComponentsAndServices/Switch, PM1, EM, EMData, EM1,
EM1Data; evcc meter/shelly/gen2.go and PR #7335):
- `Switch.GetStatus?id=N` (plugs, 1PM, Pro 4PM...): `apower` W, `voltage` V, `current` A,
  `freq` Hz, `pf`, `aenergy.total` Wh, `ret_aenergy.total` Wh on devices that measure return
  energy (their `aenergy` then counts both directions). A switch without `apower` does not
  meter and is left out. Channel `switch<N>`.
- `PM1.GetStatus?id=N` (PM Mini Gen3...): the same fields. Channel `pm<N>`.
- `EM.GetStatus?id=N` (Pro 3EM, 3EM-63 Gen3, triphase profile): `a_/b_/c_` + `current`,
  `voltage`, `act_power`, `aprt_power`, `pf`, `freq`; `total_act_power`, `total_aprt_power`,
  `total_current`. `EMData.GetStatus?id=N`: `a_/b_/c_total_act_energy`,
  `a_/b_/c_total_act_ret_energy`, `total_act`, `total_act_ret`, all Wh. Channels `l1`, `l2`,
  `l3` and `total` (prefixed `em<N>_` for N > 0).
- `EM1.GetStatus?id=N` (Pro EM, EM Gen3/Gen4, 3EM monophase profile): `current`, `voltage`,
  `act_power`, `aprt_power`, `pf`, `freq`; `EM1Data.GetStatus?id=N`: `total_act_energy`,
  `total_act_ret_energy` Wh. Channel `em<N>`.
- `Shelly.GetStatus` lists every component as `switch:0`, `pm1:0`, `em:0`, `em1:1`...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homewatt_collector.sources.shelly.decode import BadAnswer, ChannelValues, number, put

WH_KWH = 1 / 1000
# Resolution of Gen2 counters as they are reported (three decimals of Wh).
GEN2_RESOLUTION_KWH = 0.001 * WH_KWH


@dataclass(frozen=True, order=True)
class Component:
    """One metering component: `kind` is switch, pm1, em or em1; `id` its instance."""

    kind: str
    id: int

    @property
    def methods(self) -> list[str]:
        """The RPC methods one poll calls for it (status, then its energy data)."""
        name = {"switch": "Switch", "pm1": "PM1", "em": "EM", "em1": "EM1"}[self.kind]
        data = {"em": ["EMData.GetStatus"], "em1": ["EM1Data.GetStatus"]}.get(self.kind, [])
        return [f"{name}.GetStatus", *data]


def components(status: Any) -> list[Component]:
    """The metering components in a `Shelly.GetStatus` answer (switches only with `apower`)."""
    if not isinstance(status, dict):
        raise BadAnswer("Shelly.GetStatus did not answer a JSON object")
    found = []
    for key, value in status.items():
        kind, _, index = key.partition(":")
        if kind not in ("switch", "pm1", "em", "em1") or not index.isdigit():
            continue
        if kind == "switch" and not (isinstance(value, dict) and "apower" in value):
            continue
        found.append(Component(kind, int(index)))
    if not found:
        raise BadAnswer("Shelly.GetStatus lists no switch, pm1, em or em1 that meters energy")
    return sorted(found)


def decode_component(component: Component, answers: list[Any]) -> list[ChannelValues]:
    """The answers of `component.methods`, in that order -> its channels."""
    for method, answer in zip(component.methods, answers, strict=True):
        if not isinstance(answer, dict):
            raise BadAnswer(f"{method}?id={component.id} did not answer a JSON object")
    if component.kind in ("switch", "pm1"):
        return [_switch(component, answers[0])]
    if component.kind == "em":
        return _three_phase(component, answers[0], answers[1])
    return [_em1(component, answers[0], answers[1])]


def _switch(component: Component, status: dict[str, Any]) -> ChannelValues:
    where = f"{component.methods[0]}?id={component.id}"
    prefix = "switch" if component.kind == "switch" else "pm"
    values = ChannelValues(f"{prefix}{component.id}", resolution_kwh=GEN2_RESOLUTION_KWH)
    put(values, "power_w", number(status, "apower", where))
    put(values, "voltage_v", number(status, "voltage", where))
    put(values, "current_a", number(status, "current", where))
    put(values, "frequency_hz", number(status, "freq", where))
    put(values, "power_factor", number(status, "pf", where))
    for key, name in (("aenergy", "energy_total_kwh"), ("ret_aenergy", "energy_export_kwh")):
        energy = status.get(key)
        if energy is None:
            continue
        if not isinstance(energy, dict):
            raise BadAnswer(f"{where}: {key} is not an object")
        put(values, name, number(energy, "total", f"{where}.{key}"), WH_KWH)
    return values


def _three_phase(
    component: Component, status: dict[str, Any], data: dict[str, Any]
) -> list[ChannelValues]:
    where = f"EM.GetStatus?id={component.id}"
    data_where = f"EMData.GetStatus?id={component.id}"
    prefix = "" if component.id == 0 else f"em{component.id}_"
    channels = []
    for phase, name in (("a", "l1"), ("b", "l2"), ("c", "l3")):
        values = ChannelValues(prefix + name, resolution_kwh=GEN2_RESOLUTION_KWH, meter=True)
        put(values, "current_a", number(status, f"{phase}_current", where))
        put(values, "voltage_v", number(status, f"{phase}_voltage", where))
        put(values, "power_w", number(status, f"{phase}_act_power", where))
        put(values, "apparent_power_va", number(status, f"{phase}_aprt_power", where))
        put(values, "power_factor", number(status, f"{phase}_pf", where))
        put(values, "frequency_hz", number(status, f"{phase}_freq", where))
        imported = number(data, f"{phase}_total_act_energy", data_where)
        put(values, "energy_import_kwh", imported, WH_KWH)
        exported = number(data, f"{phase}_total_act_ret_energy", data_where)
        put(values, "energy_export_kwh", exported, WH_KWH)
        channels.append(values)
    total = ChannelValues(prefix + "total", resolution_kwh=GEN2_RESOLUTION_KWH, meter=True)
    put(total, "power_w", number(status, "total_act_power", where))
    put(total, "apparent_power_va", number(status, "total_aprt_power", where))
    put(total, "current_a", number(status, "total_current", where))
    put(total, "energy_import_kwh", number(data, "total_act", data_where), WH_KWH)
    put(total, "energy_export_kwh", number(data, "total_act_ret", data_where), WH_KWH)
    channels.append(total)
    return channels


def _em1(component: Component, status: dict[str, Any], data: dict[str, Any]) -> ChannelValues:
    where = f"EM1.GetStatus?id={component.id}"
    data_where = f"EM1Data.GetStatus?id={component.id}"
    values = ChannelValues(f"em{component.id}", resolution_kwh=GEN2_RESOLUTION_KWH, meter=True)
    put(values, "current_a", number(status, "current", where))
    put(values, "voltage_v", number(status, "voltage", where))
    put(values, "power_w", number(status, "act_power", where))
    put(values, "apparent_power_va", number(status, "aprt_power", where))
    put(values, "power_factor", number(status, "pf", where))
    put(values, "frequency_hz", number(status, "freq", where))
    put(values, "energy_import_kwh", number(data, "total_act_energy", data_where), WH_KWH)
    put(values, "energy_export_kwh", number(data, "total_act_ret_energy", data_where), WH_KWH)
    return values


def channel_names(component: Component) -> list[str]:
    """The channel tags a component's samples carry (before any rename in the config)."""
    if component.kind == "em":
        prefix = "" if component.id == 0 else f"em{component.id}_"
        return [prefix + name for name in ("l1", "l2", "l3", "total")]
    prefix = {"switch": "switch", "pm1": "pm", "em1": "em"}[component.kind]
    return [f"{prefix}{component.id}"]
