"""A three-phase house with solar panels on phase l3, as an Eastron SDM630 reports it: the meter
whose history gives the dashboards' import and export numbers.

The load is the demo source's household (`household_load`, a pure function of time and seed),
spread over the phases (l1 40 %, l2 35 %, l3 25 %); a single-phase inverter on l3 feeds up to
3.5 kW between 07:00 and 17:00 UTC, less on cloudy days. The meter integrates each phase's power
into its import and export counters (per phase, and for the total from the sum of the phases:
net metering), and `energy_total_kwh` is import plus export, as Eastron meters count it
(../shared/reference/meters.md). Reactive energy likewise from the reactive power.

`MeterHistory.image(ts)` is the meter's input-register image at `ts` (the SDM630 template's
addresses, IEEE-754 float32 high word first, zeros in the unmapped gaps the template reads
through). The history is read by the collector's own `ModbusSource` (its request planning,
decoding, counter checks and samples) from `ImageBus`, which answers each planned request from
the image in memory instead of over the serial line: 16 days of five-minute readings in a
second rather than hours at 9600 baud. The emulated line carries the real run that follows,
from the image at the history's end, so the counters run on without a step.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from homewatt_collector.models import Sample
from homewatt_collector.sources.demo.source import household_load
from homewatt_collector.sources.modbus.bus import ModbusBus
from homewatt_collector.sources.modbus.config import MeterConfig, ModbusSourceConfig
from homewatt_collector.sources.modbus.meters import builtin_templates
from homewatt_collector.sources.modbus.plan import Block
from homewatt_collector.sources.modbus.source import ModbusSource
from tests.collector.meters_data import f32_words, sdm630_input_registers

MODEL = "sdm630"
DEVICE_ID = 1
SHARES = {"l1": 0.40, "l2": 0.35, "l3": 0.25}
SOLAR_PEAK_W = 3500.0
STEP_S = 60  # the meter's counters integrate the power minute by minute
# counter (by direction) -> the power it integrates
COUNTED = {"energy_{}_kwh": "power_w", "reactive_energy_{}_kvarh": "reactive_power_var"}


def _clouds(seed: int, day: int) -> float:
    """The day's share of clear sky, 0.3 to 1 (reproducible per seed and day)."""
    digest = hashlib.blake2b(repr((seed, "sun", day)).encode(), digest_size=8).digest()
    return 0.3 + 0.7 * int.from_bytes(digest, "big") / 2**64


def solar_w(t: float, seed: int) -> float:
    """The inverter's output at unix time `t`: a sine from 07:00 to 17:00 UTC, scaled by the
    day's cloud cover (reproducible per day and seed)."""
    hour = (t % 86400) / 3600
    if not 7 <= hour < 17:
        return 0.0
    return SOLAR_PEAK_W * _clouds(seed, int(t // 86400)) * math.sin(math.pi * (hour - 7) / 10)


def instantaneous(t: float, seed: int) -> dict[tuple[str, str], float]:
    """(field, channel) -> value of everything but the counters, at `t`."""
    load = household_load(t, seed)
    sun = solar_w(t, seed)
    values: dict[tuple[str, str], float] = {}
    totals = {"power_w": 0.0, "reactive_power_var": 0.0, "apparent_power_va": 0.0}
    for n, (channel, share) in enumerate(SHARES.items()):
        power = load.power_w * share - (sun if channel == "l3" else 0.0)
        reactive = load.reactive_var * share
        apparent = math.hypot(power, reactive)
        voltage = 230.5 + n * 0.6 + 2.5 * math.sin(2 * math.pi * t / 86400) - 0.002 * power
        values[("voltage_v", channel)] = voltage
        values[("current_a", channel)] = apparent / voltage
        values[("power_w", channel)] = power
        values[("reactive_power_var", channel)] = reactive
        values[("apparent_power_va", channel)] = apparent
        values[("power_factor", channel)] = power / apparent  # negative while exporting
        totals["power_w"] += power
        totals["reactive_power_var"] += reactive
        totals["apparent_power_va"] += apparent
    for name, value in totals.items():
        values[(name, "total")] = value
    values[("power_factor", "total")] = totals["power_w"] / totals["apparent_power_va"]
    values[("phase_angle_deg", "total")] = math.degrees(
        math.atan2(totals["reactive_power_var"], totals["power_w"])
    )
    values[("frequency_hz", "total")] = 50.0 + 0.03 * math.sin(2 * math.pi * t / 613)
    return values


@dataclass
class MeterHistory:
    """The SDM630's state from `start` on; `image(ts)` advances its counters to `ts` (ts never
    goes back) and returns its register image."""

    start: int
    seed: int = 5
    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    _t: int = 0

    def __post_init__(self) -> None:
        self._t = self.start
        # As if installed a few years ago: import well ahead of export.
        for channel, share in SHARES.items():
            self.counters[("energy_import_kwh", channel)] = 9000.0 * share
            self.counters[("energy_export_kwh", channel)] = 1200.0 if channel == "l3" else 0.0
            self.counters[("reactive_energy_import_kvarh", channel)] = 1500.0 * share
            self.counters[("reactive_energy_export_kvarh", channel)] = 0.0
        self.counters[("energy_import_kwh", "total")] = 8500.0
        self.counters[("energy_export_kwh", "total")] = 700.0
        self.counters[("reactive_energy_import_kvarh", "total")] = 1500.0
        self.counters[("reactive_energy_export_kvarh", "total")] = 0.0

    def _advance(self, ts: int) -> None:
        assert ts >= self._t, (ts, self._t)
        while self._t < ts:
            dt = min(STEP_S, ts - self._t)
            now = instantaneous(self._t, self.seed)
            for channel in (*SHARES, "total"):
                for counter, power in COUNTED.items():
                    amount = now[(power, channel)] * dt / 3_600_000  # kWh (kvarh)
                    name = counter.format("import" if amount >= 0 else "export")
                    self.counters[(name, channel)] += abs(amount)
            self._t += dt

    def values(self, ts: int) -> dict[tuple[str, str], float]:
        self._advance(ts)
        values = instantaneous(ts, self.seed) | self.counters
        for channel in (*SHARES, "total"):
            for kind, unit in (("energy", "kwh"), ("reactive_energy", "kvarh")):
                values[(f"{kind}_total_{unit}", channel)] = (
                    self.counters[(f"{kind}_import_{unit}", channel)]
                    + self.counters[(f"{kind}_export_{unit}", channel)]
                )
        return values

    def image(self, ts: int) -> dict[int, int]:
        """The input registers at `ts`: every address the SDM630 template names."""
        values = self.values(ts)
        registers = dict.fromkeys(sdm630_input_registers(), 0)  # the gaps read through
        for spec in builtin_templates().get(MODEL).registers:
            high, low = f32_words(values[(spec.field, spec.channel)])
            registers[spec.address], registers[spec.address + 1] = high, low
        return registers


class ImageBus:
    """Answers the Modbus source's requests (function code 4) from a register image in memory;
    stands in for `ModbusBus` on the serial line."""

    def __init__(self) -> None:
        self.image: dict[int, int] = {}

    def open(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def read(self, block: Block, device_id: int, timeout_s: float, retries: int = 0) -> list[int]:
        assert (block.function, device_id) == (4, DEVICE_ID), (block, device_id)
        return [self.image[a] for a in range(block.start, block.start + block.count)]


def history(device: str, site: str, meter: MeterHistory, steps: range) -> Iterator[Sample]:
    """The collector's Modbus source reading the meter at each of `steps` (unix seconds)."""
    config = ModbusSourceConfig(
        port="/dev/null",  # never opened: ImageBus answers
        meters=[MeterConfig(name=device, model=MODEL, device_id=DEVICE_ID)],
    )
    bus = ImageBus()
    source = ModbusSource(config, site, bus=cast(ModbusBus, bus))  # counters judged by ts
    for ts in steps:
        bus.image = meter.image(ts)
        reading = source.read(ts)
        assert reading.errors == 0, (ts, reading)
        yield from reading.samples
