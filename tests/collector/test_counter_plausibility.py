"""Cumulative energy counters: all-ones, NaN and infinity are never values, and a rise larger
than the meter could count in the time since its last good read (template key max_power_w) is
rejected like a step back; both are counted in read_errors and the good reads around them are
kept.

The ORNO WE-515 template's register map is decoded for real; the bus is a stand-in answering
each request from a register table the test edits between cycles (the emulated RS485 line of
test_modbus_bus.py serves a fixed table), and the clock is injected."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from homewatt_collector.meters import DEFAULT_MAX_POWER_W, RegisterSpec
from homewatt_collector.modbus.decode import decode_block
from homewatt_collector.modbus.plan import Block
from homewatt_collector.models import Reading
from homewatt_collector.sources.modbus import ModbusSource, ModbusSourceConfig
from tests.collector.meters_data import orno_with_gap_registers


class TableBus:
    """Answers every read from `registers` (address -> value), as a meter would."""

    def __init__(self, registers: dict[int, int]) -> None:
        self.registers = registers

    def open(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def read(self, block: Block, device_id: int, timeout_s: float, retries: int = 0) -> list[int]:
        return [self.registers.get(a, 0) for a in range(block.start, block.start + block.count)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def energy(reading: Reading) -> Any:
    [sample] = [s for s in reading.samples if s.tags["channel"] == "total"]
    return sample.fields.get("energy_total_kwh")


def set_energy(registers: dict[int, int], kwh: float) -> None:
    counts = round(kwh * 100)
    registers[0xA000], registers[0xA001] = counts >> 16, counts & 0xFFFF


@pytest.fixture
def meter() -> tuple[ModbusSource, dict[int, int], Clock]:
    registers = orno_with_gap_registers()
    clock = Clock()
    config = ModbusSourceConfig.model_validate(
        {
            "kind": "modbus",
            "port": "/dev/ttyUSB0",
            "meters": [{"name": "m", "model": "orno-we515", "device_id": 1}],
        }
    )
    source = ModbusSource(config, "h", bus=TableBus(registers), clock=clock)  # type: ignore[arg-type]
    return source, registers, clock


def test_one_all_ones_energy_read_is_a_read_error_and_the_good_reads_go_on(
    meter: tuple[ModbusSource, dict[int, int], Clock], caplog: pytest.LogCaptureFixture
) -> None:
    source, registers, clock = meter
    set_energy(registers, 1000.00)
    assert energy(source.read(1)) == 1000.00
    clock.now += 1
    registers[0xA000] = registers[0xA001] = 0xFFFF  # 42,949,672.95 kWh
    garbled = source.read(2)
    assert energy(garbled) is None and garbled.errors == 1
    for second in range(3, 6):
        clock.now += 1
        set_energy(registers, 1000.00 + 0.01 * second)
        good = source.read(second)
        assert (energy(good), good.errors) == (round(1000.00 + 0.01 * second, 2), 0)
    assert "restarted" not in caplog.text, "no counter reset is taken"


def test_a_rise_faster_than_max_power_w_is_rejected_and_a_possible_one_kept(
    meter: tuple[ModbusSource, dict[int, int], Clock],
) -> None:
    source, registers, clock = meter
    set_energy(registers, 500.00)
    source.read(1)
    clock.now += 10  # 10 s at 75.9 kW at most: 0.21 kWh (+ 0.01, one count)
    most = DEFAULT_MAX_POWER_W * 10 / 3_600_000 + 0.01
    set_energy(registers, 500.00 + most + 0.05)
    jump = source.read(2)
    assert energy(jump) is None and jump.errors == 1
    clock.now += 10  # 20 s since the last good read now
    set_energy(registers, 500.00 + most + 0.05)
    kept = source.read(3)
    assert energy(kept) == round(500.00 + most + 0.05, 2) and kept.errors == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_never_values(value: float) -> None:
    """An f32 energy register (as the SDM meters have) that holds NaN or infinity."""
    spec = RegisterSpec.model_validate(
        {"field": "energy_total_kwh", "address": 0x0156, "type": "f32", "scale": 1}
    )
    block = Block(4, 0x0156, 2, (spec,))
    words = list(struct.unpack(">HH", struct.pack(">f", value)))
    values, errors = decode_block(block, words, "big")
    assert values == {}
    assert [str(e) for e in errors] == [f"energy_total_kwh (total) at 0x0156 is {value}"]


def test_an_unsigned_register_of_all_ones_is_never_a_value() -> None:
    spec = RegisterSpec.model_validate(
        {"field": "energy_total_kwh", "address": 0xA000, "type": "u32", "scale": 0.01}
    )
    values, errors = decode_block(Block(3, 0xA000, 2, (spec,)), [0xFFFF, 0xFFFF], "big")
    assert values == {}
    assert [str(e) for e in errors] == [
        "energy_total_kwh (total) at 0xa000 is all ones (a garbled read)"
    ]
