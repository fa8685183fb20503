"""The demo source: a simulated single-phase meter on a plausible household load.

The load is a pure function of time and seed (so it is reproducible and continues where it was
after a restart): a standby base load, a fridge compressor cycling with its start-up surge,
lighting that follows the time of day, kettle boils, an evening oven on its thermostat, and a
washing machine some days. The meter's energy counter is the integral of that power, as a real
meter's is; voltage sags under load, current and power factor follow from the appliance mix.
On start the counter is set as if the meter had run at the mean load since 2024 (a restart of
the demo may therefore move it a little; a real meter's counter never does).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from homewatt_collector.models import ELECTRICITY, DeviceStatus, Reading, Sample
from homewatt_collector.sources.demo.config import DemoSourceConfig

# Mean power of the load below is about 420 W (3,700 kWh a year): a two-person household.
MEAN_POWER_W = 420.0
# The counter starts as if the meter had run at the mean power since 2024-01-01.
COUNTER_EPOCH = 1_704_067_200


def _unit(seed: int, *key: object) -> float:
    """A reproducible pseudo-random number in [0, 1) for (seed, key)."""
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Load:
    power_w: float
    reactive_var: float  # inductive loads (motor, compressor) draw reactive power


def household_load(t: float, seed: int, utc_offset_h: float = 1.0) -> Load:
    """The household's power at unix time `t` (pure: same inputs, same load)."""
    local = t + utc_offset_h * 3600
    hour = (local % 86400) / 3600
    day = int(local // 86400)
    resistive = 0.0
    reactive = 0.0

    # Standby: router, fridge electronics, chargers: about 95 W with slow wander.
    base = 95 + 10 * math.sin(2 * math.pi * t / 5400) + 4 * math.sin(2 * math.pi * t / 777)
    resistive += base
    reactive += 0.25 * base  # switch-mode supplies

    # Fridge: a 42-minute cycle, compressor on for 16 minutes at 95 W, 450 W surge for 2 s.
    phase = (t + _unit(seed, "fridge") * 2520) % 2520
    if phase < 960:
        surge = 450.0 if phase < 2 else 0.0
        resistive += 95 + surge
        reactive += 70 + surge * 0.6

    # Lighting and entertainment: morning and evening, dimmer at night.
    evening = math.exp(-(((hour - 20.5) / 2.2) ** 2))
    morning = math.exp(-(((hour - 7.2) / 0.9) ** 2))
    lights = 260 * evening + 120 * morning
    resistive += lights
    reactive += 0.15 * lights

    # Kettle: up to four boils a day at 2,200 W for about 3 minutes.
    for n, centre in enumerate((7.3, 12.5, 16.0, 21.0)):
        if _unit(seed, "kettle", day, n) < 0.7:
            start = (centre + (_unit(seed, "kettle-at", day, n) - 0.5) * 1.5) * 3600
            if 0 <= (local % 86400) - start < 150 + 60 * _unit(seed, "kettle-len", day, n):
                resistive += 2200

    # Oven: most evenings, heat up 15 min, then thermostat cycling (2,400 W, ~55 % duty).
    if _unit(seed, "oven", day) < 0.6:
        start = (17.5 + _unit(seed, "oven-at", day)) * 3600
        since = (local % 86400) - start
        if 0 <= since < 900 or (900 <= since < 3600 and (since % 120) < 66):
            resistive += 2400

    # Washing machine, some days: heating 15 min at 2 kW, then the motor at 250 W for 60 min.
    if _unit(seed, "wash", day) < 0.35:
        start = (9 + 8 * _unit(seed, "wash-at", day)) * 3600
        since = (local % 86400) - start
        if 0 <= since < 900:
            resistive += 2000
        elif 900 <= since < 4500:
            resistive += 250
            reactive += 180

    # Measurement noise, reproducible per second.
    second = int(t)
    resistive *= 1 + 0.01 * (_unit(seed, "noise", second) - 0.5)
    return Load(power_w=resistive, reactive_var=reactive)


class DemoSource:
    """A simulated meter: `read(ts)` returns what a real single-phase meter would report."""

    kind = "demo"
    model = "demo"

    def __init__(self, config: DemoSourceConfig, site: str) -> None:
        self.config = config
        self.site = site
        self._energy_kwh: float | None = None
        self._last_t: float | None = None
        self._last_power: float | None = None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _counter_at_start(self, t: float) -> float:
        return MEAN_POWER_W * max(t - COUNTER_EPOCH, 0) / 3_600_000

    def read(self, ts: int) -> Reading:
        t = float(ts)
        load = household_load(t, self.config.seed, self.config.utc_offset_h)
        if self._energy_kwh is None or self._last_t is None or self._last_power is None:
            self._energy_kwh = self._counter_at_start(t)
        else:
            # Trapezoid between readings: the counter is the integral of the power.
            dt = t - self._last_t
            self._energy_kwh += (self._last_power + load.power_w) / 2 * dt / 3_600_000
        self._last_t, self._last_power = t, load.power_w

        voltage = 231.0 + 2.5 * math.sin(2 * math.pi * t / 86400) - 0.0009 * load.power_w
        voltage += 0.4 * (_unit(self.config.seed, "volt", int(t)) - 0.5)
        frequency = (
            50.0 + 0.03 * math.sin(2 * math.pi * t / 613) + 0.01 * (_unit(0, "hz", int(t)) - 0.5)
        )
        apparent = math.hypot(load.power_w, load.reactive_var)
        fields = {
            "power_w": round(load.power_w, 1),
            "reactive_power_var": round(load.reactive_var, 1),
            "apparent_power_va": round(apparent, 1),
            "power_factor": round(load.power_w / apparent, 3),
            "voltage_v": round(voltage, 2),
            "current_a": round(apparent / voltage, 3),
            "frequency_hz": round(frequency, 3),
            "energy_total_kwh": round(self._energy_kwh, 5),
            "energy_import_kwh": round(self._energy_kwh, 5),
        }
        tags = {
            "site": self.site,
            "source": self.kind,
            "device": self.config.device,
            "channel": "total",
            "model": self.model,
        }
        return Reading(
            samples=[Sample(ELECTRICITY, tags, fields, ts)],
            devices=[DeviceStatus(self.config.device, self.model)],
        )
