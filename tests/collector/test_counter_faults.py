"""Energy counters and per-meter health through the real process: `homewatt-collector run` reads
a pymodbus meter on the emulated RS485 line whose total-energy register changes from read to
read (meter_server.py sequences), and what it stores is read back from its outbox (the sink
is down on purpose: everything stays there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from homewatt_collector.outbox import Outbox
from homewatt_collector.sources.modbus.source import TIMEOUTS_TO_BACKOFF
from tests.collector.conftest import MeterBus, wait_for_samples, write_config
from tests.collector.meters_data import orno_with_gap_registers
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.integration

StartBus = Callable[..., MeterBus]
StartCollector = Callable[..., ServerProcess]
PTY_8N1 = {"baudrate": 9600, "parity": "N", "bytesize": 8, "stopbits": 1}
TOTAL = 0xA000  # ORNO WE-515 total active energy, u32 high word first, 0.01 kWh
FFFF_FFFF = [0xFFFF, 0xFFFF]


def kwh(value: float) -> list[int]:
    """The two registers of an ORNO energy counter reading `value` kWh."""
    raw = round(value * 100)
    return [raw >> 16, raw & 0xFFFF]


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    ts: int


def parse(line: str) -> Point:
    """A line the collector wrote (no spaces, commas or quotes in these tags and fields)."""
    series, field_set, ts = line.split(" ")
    measurement, *tags = series.split(",")
    fields: dict[str, Any] = {}
    for item in field_set.split(","):
        key, value = item.split("=", 1)
        fields[key] = int(value[:-1]) if value.endswith("i") else float(value)
    return Point(measurement, dict(t.split("=", 1) for t in tags), fields, int(ts))


def stored_points(outbox: Path) -> list[Point]:
    box = Outbox(outbox, max_bytes=10**9)
    try:
        return [parse(entry.line) for entry in box.peek(100_000)]
    finally:
        box.close()


def modbus_source(port: str, *meters: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "modbus", "port": port, "serial": PTY_8N1, "meters": list(meters)}


MAIN = {"name": "main", "model": "orno-we515", "device_id": 1}


class Instance:
    """One collector instance (config, state directory, outbox) run as a real process."""

    def __init__(self, tmp_path: Path, start: StartCollector) -> None:
        self.tmp_path = tmp_path
        self.state = tmp_path / "state"
        self.outbox = self.state / "outbox-local.sqlite"
        self.sink = f"http://127.0.0.1:{free_port()}"  # nothing listens: all stays in the outbox
        self._start = start

    def run_cycles(self, source: dict[str, Any], points: int) -> ServerProcess:
        """Start the collector, wait until `points` samples are stored, stop it (SIGTERM)."""
        config = write_config(self.tmp_path / "main.yaml", self.sink, self.state, source=source)
        collector = self._start(config)
        wait_for_samples(self.outbox, points, timeout=60)
        assert collector.stop(timeout=30) == 0, collector.log_tail()
        return collector

    def energy(self) -> list[float]:
        """main's stored energy_total_kwh values, in time order."""
        return [
            p.fields["energy_total_kwh"]
            for p in sorted(stored_points(self.outbox), key=lambda p: p.ts)
            if p.measurement == "electricity" and "energy_total_kwh" in p.fields
        ]


def health(points: list[Point], measurement: str, field: str, **tags: str) -> int:
    return sum(
        int(p.fields[field])
        for p in points
        if p.measurement == measurement and all(p.tags.get(k) == v for k, v in tags.items())
    )


def test_one_ffff_ffff_answer_of_the_orno_total_is_never_stored_and_the_good_reads_after_it_are_kept(  # noqa: E501
    tmp_path: Path, meter_bus: StartBus, collector_process: StartCollector
) -> None:
    good_before = [1234.56, 1234.56, 1234.57, 1234.57]
    good_after = [1234.58, 1234.58, 1234.59]
    sequence = [kwh(v) for v in good_before] + [FFFF_FFFF] + [kwh(v) for v in good_after]
    bus = meter_bus(
        {1: {"holding": orno_with_gap_registers()}}, sequences={1: {"holding": {TOTAL: sequence}}}
    )
    instance = Instance(tmp_path, collector_process)
    # per cycle: electricity, homewatt_health and homewatt_device_health; 12 cycles
    collector = instance.run_cycles(modbus_source(bus.port, MAIN), points=3 * 12)

    energy = instance.energy()
    assert 42_949_672.95 not in energy
    assert energy == sorted(energy), "monotonic"
    assert set(energy) <= set(good_before + good_after)
    assert energy[-1] == 1234.59
    assert 1234.58 in energy, "the good reads after the garbled one are kept"
    points = stored_points(instance.outbox)
    garbled_cycle = [
        p for p in points if p.measurement == "electricity" and "energy_total_kwh" not in p.fields
    ]
    assert garbled_cycle, "the cycle of the garbled read"
    assert all(p.fields["energy_t1_kwh"] == 700.0 for p in garbled_cycle[-1:]), "its block kept"
    read_errors = health(points, "homewatt_health", "read_errors")
    timeouts = health(points, "homewatt_device_health", "timeouts", device="main")
    assert read_errors - timeouts == 1, "the garbled read is counted once (timeouts: the load)"
    assert health(points, "homewatt_device_health", "read_errors", device="main") == read_errors
    log = collector.log_tail(200)
    assert log.count("energy_total_kwh (total) at 0xa000 is all ones (a garbled read)") == 1, log
    assert "restarted" not in log and "went back" not in log


def test_a_replaced_meter_is_absorbed_by_a_persisted_offset_and_a_restart_checks_its_first_read(
    tmp_path: Path, meter_bus: StartBus, collector_process: StartCollector
) -> None:
    old_meter = [1234.56, 1234.56, 1234.56, 1234.57]
    new_meter = [0.05, 0.06, 0.07, 0.08]
    bus = meter_bus(
        {1: {"holding": orno_with_gap_registers()}},
        sequences={1: {"holding": {TOTAL: [kwh(v) for v in old_meter + new_meter]}}},
    )
    instance = Instance(tmp_path, collector_process)
    first = instance.run_cycles(modbus_source(bus.port, MAIN), points=3 * 11)
    energy = instance.energy()
    # 1234.56 from the third read; 0.05 and 0.06 rejected; 0.07 the new baseline, stored
    # as 1234.57 + (0.07 - 0.05): the series goes on from its last stored value
    assert energy[:4] == [1234.56, 1234.57, 1234.59, 1234.60], energy
    assert set(energy[4:]) == {1234.60}
    log = first.log_tail(200)
    assert log.count("energy_total_kwh (total) restarted at 0.05 (replaced or reset?)") == 1, log
    assert (instance.state / "counters.json").exists()
    bus.stop()

    # After a restart: a garbled first read (a flipped high-word bit: +167,772.16 kWh) is
    # checked against the baseline kept on disk, the next read is stored at once (no new
    # baseline), and with the offset: the series goes on, from 1234.60.
    again = meter_bus(
        {1: {"holding": orno_with_gap_registers()}},
        sequences={1: {"holding": {TOTAL: [[0x0100, 8], kwh(0.09), kwh(0.10)]}}},
    )
    stored_before = len(stored_points(instance.outbox))
    second = instance.run_cycles(modbus_source(again.port, MAIN), points=stored_before + 3 * 4)
    after = instance.energy()[len(energy) :]
    assert after[:2] == [1234.61, 1234.62], after
    assert set(after[2:]) <= {1234.62}
    assert "restarted" not in second.log_tail(200)
    assert "more than max_power_w 25300 W allows" in second.log_tail(200)


def test_each_meter_on_the_line_reports_its_own_health_every_cycle(
    tmp_path: Path, meter_bus: StartBus, collector_process: StartCollector
) -> None:
    """`main` answers, falls silent for two cycles (the line drops its requests), answers
    again; `garage` never answers (backed off after its 3rd timeout). Each gets its own
    homewatt_device_health point per cycle."""
    bus = meter_bus({1: {"holding": orno_with_gap_registers()}})
    main = {**MAIN, "timeout_s": 0.2}
    absent = {"name": "garage", "model": "sdm120", "device_id": 7, "timeout_s": 0.2}
    instance = Instance(tmp_path, collector_process)
    config = write_config(
        tmp_path / "main.yaml",
        instance.sink,
        instance.state,
        source=modbus_source(bus.port, main, absent),
    )
    collector = collector_process(config)
    wait_for_samples(instance.outbox, 4 * 3, timeout=60)  # 3 cycles of 4 points
    bus.line.silent_ids.add(1)
    # 2 silent cycles (3 points each), fewer than would back it off (TIMEOUTS_TO_BACKOFF)
    wait_for_samples(instance.outbox, 4 * 3 + 3 * 2, timeout=60)
    bus.line.silent_ids.discard(1)
    wait_for_samples(instance.outbox, 4 * 3 + 3 * 2 + 4 * 3, timeout=60)
    assert collector.stop(timeout=30) == 0, collector.log_tail()

    points = sorted(stored_points(instance.outbox), key=lambda p: p.ts)
    cycles = sorted({p.ts for p in points if p.measurement == "homewatt_health"})
    devices = [p for p in points if p.measurement == "homewatt_device_health"]
    assert len(devices) == 2 * len(cycles), "one point per device per cycle"
    tags = {tuple(sorted(p.tags.items())) for p in devices}
    assert tags == {
        (("device", "garage"), ("model", "sdm120"), ("site", "test"), ("source", "modbus")),
        (("device", "main"), ("model", "orno-we515"), ("site", "test"), ("source", "modbus")),
    }
    garage = [p.fields for p in devices if p.tags["device"] == "garage"]
    asked = garage[:TIMEOUTS_TO_BACKOFF]
    assert all(f["read_errors"] == f["timeouts"] == 1 for f in asked)
    assert [f["backoff"] for f in asked] == [0] * (TIMEOUTS_TO_BACKOFF - 1) + [1]
    # then only probed every 30 s (none within this test): no request, no error, backoff=1
    backed_off = garage[TIMEOUTS_TO_BACKOFF:]
    assert backed_off, "the test ran past the backoff"
    assert all(f["read_errors"] == f["timeouts"] == 0 and f["backoff"] == 1 for f in backed_off)
    assert all("last_ok_age_s" not in f for f in garage), "never answered: no age"
    main_fields = [p.fields for p in devices if p.tags["device"] == "main"]
    silent = [f for f in main_fields if f["timeouts"] == 1]
    assert len(silent) >= 2, main_fields
    assert all(f["backoff"] == 0 for f in main_fields), "2 silent cycles do not back it off"
    assert all(f["read_errors"] == 1 for f in silent)
    ages = [f["last_ok_age_s"] for f in silent]
    assert ages == sorted(ages) and ages[0] > 0, "the age of its last good read grows"
    assert main_fields[0]["last_ok_age_s"] == main_fields[-1]["last_ok_age_s"] == 0
    assert main_fields[-1]["read_errors"] == 0, "answering again"
    for ts in cycles:
        [cycle] = [p for p in points if p.measurement == "homewatt_health" and p.ts == ts]
        at_ts = [p for p in devices if p.ts == ts]
        assert cycle.fields["read_errors"] == sum(p.fields["read_errors"] for p in at_ts)
        assert "device" not in cycle.tags, "homewatt_health stays one point per cycle"
