"""The Modbus source against a pymodbus RTU server on an emulated RS485 line (pty, 8N1).

The meters' register contents are written out by hand from the published register maps
(meters_data.py); a correct reader reports exactly the values listed there. Energy counters are
stored from the BASELINE_READS-th consistent read of a new source on (counters.py): a test of
one or two reads compares the instantaneous values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from homewatt_collector.counters import BASELINE_READS, is_cumulative
from homewatt_collector.models import DeviceStatus, Reading
from homewatt_collector.sources.modbus.config import ModbusSourceConfig
from homewatt_collector.sources.modbus.source import ModbusSource
from tests.collector.conftest import MeterBus
from tests.collector.meters_data import (
    ORNO_WE515_EXPECTED,
    ORNO_WE515_HOLDING,
    orno_with_gap_registers,
    sdm630_expected,
    sdm630_input_registers,
)

pytestmark = pytest.mark.integration

StartBus = Callable[..., MeterBus]
PTY_8N1 = {"baudrate": 9600, "parity": "N", "bytesize": 8, "stopbits": 1}


def line_config(port: str, *meters: dict[str, Any]) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate(
        {"kind": "modbus", "port": port, "serial": PTY_8N1, "meters": list(meters)}
    )


def by_device_channel(reading: Reading) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s.tags["device"], s.tags["channel"]): dict(s.fields) for s in reading.samples}


def instantaneous(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields without the energy counters (not stored before a baseline is taken)."""
    return {name: value for name, value in fields.items() if not is_cumulative(name)}


ORNO_INSTANT = instantaneous(ORNO_WE515_EXPECTED)


def test_orno_and_sdm630_values_are_reported_to_the_last_digit(meter_bus: StartBus) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}, 3: {"input": sdm630_input_registers()}})
    source = ModbusSource(
        line_config(
            bus.port,
            {"name": "main", "model": "orno-we515", "device_id": 1},
            {"name": "heatpump", "model": "sdm630", "device_id": 3},
        ),
        site="home",
    )
    source.open()
    readings = [source.read(1_700_000_000 + n) for n in range(BASELINE_READS)]
    source.close()
    assert [r.errors for r in readings] == [0] * BASELINE_READS
    for taking_baseline in readings[:-1]:
        got = by_device_channel(taking_baseline)
        assert got[("main", "total")] == ORNO_INSTANT
        for channel, fields in sdm630_expected().items():
            assert got[("heatpump", channel)] == instantaneous(fields), channel
    reading = readings[-1]
    got = by_device_channel(reading)
    assert got[("main", "total")] == ORNO_WE515_EXPECTED
    for channel, fields in sdm630_expected().items():
        assert got[("heatpump", channel)] == fields, channel
    sample = next(s for s in reading.samples if s.tags["device"] == "main")
    assert dict(sample.tags) == {
        "site": "home",
        "source": "modbus",
        "device": "main",
        "channel": "total",
        "model": "orno-we515",
    }
    assert sample.ts == 1_700_000_000 + BASELINE_READS - 1


def test_a_meter_that_refuses_reads_across_gaps_is_read_in_contiguous_runs(
    meter_bus: StartBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}})  # 0x130..0x158 has unmapped addresses
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "orno-we515", "device_id": 1}), "h"
    )
    (meter,) = source.meters
    assert len(meter.blocks) == 3, "first try: one read across the instantaneous values"
    with caplog.at_level(logging.INFO):
        first = source.read(1)
    assert first.errors == 0 and by_device_channel(first)[("m", "total")] == ORNO_INSTANT
    assert len(meter.blocks) == 8, "after exception 2: six contiguous runs + two energy blocks"
    assert "refuses reads across unmapped addresses" in caplog.text
    second = source.read(2)
    assert second.errors == 0 and by_device_channel(second)[("m", "total")] == ORNO_INSTANT
    source.close()


def test_a_meter_that_answers_across_gaps_needs_three_requests(meter_bus: StartBus) -> None:
    bus = meter_bus({1: {"holding": orno_with_gap_registers()}})
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "orno-we515", "device_id": 1}), "h"
    )
    before = bus.line.stats.to_meter_bytes
    reading = source.read(1)
    assert reading.errors == 0
    assert by_device_channel(reading)[("m", "total")] == ORNO_INSTANT
    assert len(source.meters[0].blocks) == 3
    assert bus.line.stats.to_meter_bytes - before == 3 * 8, "three 8-byte requests on the wire"
    source.close()


def test_a_silent_meter_is_counted_and_skipped_while_the_others_are_read(
    meter_bus: StartBus,
) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}})
    source = ModbusSource(
        line_config(
            bus.port,
            {"name": "absent", "model": "orno-we515", "device_id": 7, "timeout_s": 0.2},
            {"name": "main", "model": "orno-we515", "device_id": 1},
        ),
        site="h",
    )
    started = time.monotonic()
    reading = source.read(1)
    took = time.monotonic() - started
    assert reading.errors == 1
    assert set(by_device_channel(reading)) == {("main", "total")}
    assert took < 1.0, "the silent meter cost one timeout, not one per request"
    assert reading.devices == [  # for homewatt_device_health
        DeviceStatus("absent", "orno-we515", errors=1, timeouts=1, ok=False),
        DeviceStatus("main", "orno-we515", errors=0, timeouts=0, ok=True),
    ]
    source.close()


def test_a_crc_error_is_counted_and_the_next_cycle_reads_again(meter_bus: StartBus) -> None:
    bus = meter_bus({1: {"holding": orno_with_gap_registers()}})
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "orno-we515", "device_id": 1}), "h"
    )
    bus.line.corrupt_next_responses(1)
    broken = source.read(1)
    assert broken.errors == 1
    fine = source.read(2)
    assert fine.errors == 0
    assert by_device_channel(fine)[("m", "total")] == ORNO_INSTANT
    source.close()


def test_a_garbage_burst_on_the_line_never_crashes_and_reading_recovers(
    meter_bus: StartBus,
) -> None:
    bus = meter_bus({1: {"holding": orno_with_gap_registers()}})
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "orno-we515", "device_id": 1}), "h"
    )
    for cycle in range(5):
        bus.line.noise_before_next_response(37)
        reading = source.read(cycle)  # may or may not resync on the frame: either is fine
        for sample in reading.samples:
            for field, value in sample.fields.items():
                assert value == ORNO_WE515_EXPECTED[field], "noise never becomes a wrong value"
    clean = source.read(10)
    assert clean.errors == 0
    fields = by_device_channel(clean)[("m", "total")]
    assert instantaneous(fields) == ORNO_INSTANT  # and the counters, once a baseline is taken:
    assert all(
        fields[name] == ORNO_WE515_EXPECTED[name] for name in set(fields) - set(ORNO_INSTANT)
    )
    source.close()


def test_an_impossible_value_is_counted_and_left_out(meter_bus: StartBus) -> None:
    registers = dict(orno_with_gap_registers())
    registers[0x0130] = 0xFFFF  # 655.35 Hz: no grid runs at that
    bus = meter_bus({1: {"holding": registers}})
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "orno-we515", "device_id": 1}), "h"
    )
    reading = source.read(1)
    assert reading.errors == 1
    fields = by_device_channel(reading)[("m", "total")]
    assert "frequency_hz" not in fields
    assert fields["voltage_v"] == 230.12
    source.close()


def test_an_exception_answer_is_counted(meter_bus: StartBus) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}})
    # an SDM630 template asks for input registers this meter does not have: exception 2
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "sdm630", "device_id": 1}), "h"
    )
    reading = source.read(1)
    assert reading.samples == []
    # two plain requests refused, and the gap-spanning one split into its five runs, each refused
    assert reading.errors == 2 + 5
    source.close()


def test_an_unplugged_adapter_is_waited_for_and_picked_up_again(
    meter_bus: StartBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus = meter_bus({1: {"holding": orno_with_gap_registers()}})
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "orno-we515", "device_id": 1}), "h"
    )
    assert source.read(1).errors == 0
    with caplog.at_level(logging.INFO):
        bus.line.unplug()
        gone = [source.read(ts) for ts in range(2, 5)]
        assert all(r.errors == 1 and not r.samples for r in gone)
        bus.line.replug()
        back = source.read(5)
    assert back.errors == 0
    assert by_device_channel(back)[("m", "total")] == ORNO_INSTANT
    assert "waiting for it to come back" in caplog.text
    assert "is back" in caplog.text
    assert caplog.text.count("waiting for it to come back") == 1, "logged once, not every cycle"
    source.close()


def test_the_energy_counter_uses_both_words_above_655_35_kwh(meter_bus: StartBus) -> None:
    registers = dict(orno_with_gap_registers())
    registers[0xA000], registers[0xA001] = 0x0001, 0x0000  # exactly 65536 -> 655.36 kWh
    bus = meter_bus({1: {"holding": registers}})
    source = ModbusSource(
        line_config(bus.port, {"name": "m", "model": "orno-we515", "device_id": 1}), "h"
    )
    reading = [source.read(ts) for ts in range(1, BASELINE_READS + 1)][-1]
    assert by_device_channel(reading)[("m", "total")]["energy_total_kwh"] == 655.36
    source.close()
