"""What the devices answer, as plain values: pure functions over their JSON, no I/O.

Facts (units, field names) from Shelly's API docs (shelly-api-docs.shelly.cloud: gen1
/shelly and /status; gen2 Shelly, Switch, PM1, EM, EMData, EM1, EM1Data) and evcc's
meter/shelly (Gen1 PM counters in watt-minutes, EM counters in Wh; Gen2 in Wh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Gen1 /shelly `type` values of devices that meter energy (others answer but have no meter).
GEN1_MODELS = {
    "SHPLG-1": "Shelly Plug",
    "SHPLG2-1": "Shelly Plug E",
    "SHPLG-U1": "Shelly Plug US",
    "SHPLG-S": "Shelly Plug S",
    "SHSW-PM": "Shelly 1PM",
    "SHSW-25": "Shelly 2.5",
    "SHEM": "Shelly EM",
    "SHEM-3": "Shelly 3EM",
}


class BadAnswer(ValueError):
    """The device answered something this poller cannot read (a different device, an API
    change): the message names what is wrong."""


@dataclass(frozen=True)
class DeviceInfo:
    """From `GET /shelly`: the generation (1, 2, 3, 4...), the model (Gen1 `type`, Gen2+
    `model`, the `model` tag), whether it asks for a password, its id (Gen2+ `id`, Gen1 model
    and MAC) and its meter counts (Gen1)."""

    gen: int
    model: str
    auth: bool
    app: str = ""
    device_id: str = ""
    num_meters: int = 0
    num_emeters: int = 0


@dataclass
class ChannelValues:
    """One channel's fields in the data model's units (W, V, A, Hz, kWh) and, per energy
    field, the counter's resolution in kWh (one step of the device's own counter)."""

    channel: str
    fields: dict[str, float] = field(default_factory=dict)
    resolution_kwh: float = 0.0
    meter: bool = False  # an energy meter (EM, 3EM) rather than a plug or a switch


def parse_info(answer: Any) -> DeviceInfo:
    """`GET /shelly` -> DeviceInfo. Gen2+ answers carry `gen`; Gen1 answers have `type` and
    no `gen` (evcc treats a missing or < 2 `gen` as Gen1)."""
    if not isinstance(answer, dict):
        raise BadAnswer("/shelly did not answer a JSON object: not a Shelly device?")
    gen = answer.get("gen")
    if isinstance(gen, int) and not isinstance(gen, bool) and gen >= 2:
        model = answer.get("model")
        if not isinstance(model, str) or not model:
            raise BadAnswer(f"/shelly of a gen {gen} device has no `model`")
        return DeviceInfo(
            gen,
            model,
            answer.get("auth_en") is True,
            str(answer.get("app", "")),
            str(answer.get("id", "")),
        )
    model = answer.get("type")
    if not isinstance(model, str) or not model:
        raise BadAnswer("/shelly has neither `gen` nor `type`: not a Shelly device?")
    return DeviceInfo(
        1,
        model,
        answer.get("auth") is True,
        GEN1_MODELS.get(model, ""),
        _gen1_id(model, answer.get("mac")),
        _count(answer, "num_meters"),
        _count(answer, "num_emeters"),
    )


def _gen1_id(model: str, mac: Any) -> str:
    """A Gen1 device's name as its hostname is built: model and the MAC's last six digits
    (`shplg-s-a1c3`... the docs' `shellyplug-s-DDEEFF` style)."""
    tail = mac[-6:].lower() if isinstance(mac, str) and len(mac) >= 6 else ""
    return f"{model.lower()}-{tail}" if tail else ""


def _count(answer: dict[str, Any], key: str) -> int:
    value = answer.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def number(obj: dict[str, Any], key: str, where: str) -> float | None:
    """`obj[key]` as a finite float; None when absent or null; BadAnswer when not a number."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadAnswer(f"{where}.{key} is {value!r}, not a number")
    return float(value)


def put(values: ChannelValues, name: str, value: float | None, scale: float = 1.0) -> None:
    if value is not None:
        values.fields[name] = round(value * scale, 9)
