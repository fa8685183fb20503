"""The shelly Source in process against the Shelly test devices: real HTTP and real threads.

Concurrency: a slow and an unreachable device never delay the others and are counted per
device; backoff. Counters: a reboot that resets a device's counters is absorbed by an offset,
and the baselines survive the source's restart (the instance's state directory)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homewatt_collector.counters import BASELINE_READS
from homewatt_collector.models import Reading
from homewatt_collector.scheduler import Slot
from homewatt_collector.sources.shelly.config import ShellySourceConfig
from homewatt_collector.sources.shelly.poller import DevicePoller, PollResult
from homewatt_collector.sources.shelly.source import ShellySource
from tests.support.processes import unreachable_address
from tests.support.shelly_devices import FakeShelly


def config(*devices: dict[str, Any]) -> ShellySourceConfig:
    return ShellySourceConfig.model_validate({"kind": "shelly", "devices": list(devices)})


@pytest.fixture
def plugs() -> Iterator[list[FakeShelly]]:
    devices = [FakeShelly("gen2-plus-plug-s", f"127.0.0.{31 + i}").start() for i in range(3)]
    devices.append(FakeShelly("gen1-plug", "127.0.0.34", delay_s=2.5).start())
    yield devices
    for device in devices:
        device.stop()


def test_a_slow_and_an_unreachable_device_never_delay_the_others(
    plugs: list[FakeShelly],
) -> None:
    with unreachable_address("127.0.0.35") as dead:
        entries = [
            {"name": f"plug{i}", "host": d.address, "interval_s": 1, "timeout_s": 1}
            for i, d in enumerate(plugs)
        ]
        entries.append({"name": "dead", "host": dead, "interval_s": 1, "timeout_s": 0.5})
        source = ShellySource(config(*entries), "test", {})
        source.open()
        readings: list[Reading] = []
        try:
            for _ in range(6):
                time.sleep(1)
                readings.append(source.read(0))
        finally:
            source.close()
    samples = [s for r in readings for s in r.samples]
    for name in ("plug0", "plug1", "plug2"):
        slots = sorted(s.ts for s in samples if s.tags["device"] == name)
        assert len(slots) >= 5, f"{name} was polled every second: {slots}"
        assert slots == list(range(slots[0], slots[0] + len(slots))), "no slot skipped"
    statuses = [d for r in readings for d in r.devices]
    slow = [d for d in statuses if d.device == "plug3"]
    assert slow and all(d.timeouts >= 1 and not d.ok for d in slow)
    down = [d for d in statuses if d.device == "dead"]
    assert down and all(d.errors >= 1 and d.timeouts >= 1 and not d.ok for d in down)
    # homewatt_device_health's backoff: 1 for the failing devices, 0 for those answering
    assert all(d.backoff for d in slow + down)
    assert not any(d.backoff for d in statuses if d.device in ("plug0", "plug1", "plug2"))
    assert sum(r.errors for r in readings) == sum(d.errors for d in statuses)


def test_an_unreachable_device_is_retried_with_backoff() -> None:
    with unreachable_address("127.0.0.36") as dead:
        device = config({"name": "dead", "host": dead, "interval_s": 1, "timeout_s": 0.2})
        results: queue.Queue[PollResult] = queue.Queue()
        stop = threading.Event()
        poller = DevicePoller(device.devices[0], None, results, stop)
        poller.start()
        time.sleep(7.5)
        stop.set()
        poller.join(2)
    attempts = results.qsize()
    assert all(results.get_nowait().backoff for _ in range(attempts)), "each says: backed off"
    # at 1 s intervals 7 or 8 attempts; backing off 1, 2, 4 s after each failure: 3 or 4
    assert 3 <= attempts <= 4, attempts


def poll(poller: DevicePoller, ts: int) -> PollResult:
    return poller.poll(Slot(index=0, ts=ts, lateness_s=0.0, skipped=0))


def energy(reading: Reading, channel: str, field: str) -> float | None:
    values = [s.fields.get(field) for s in reading.samples if s.tags["channel"] == channel]
    return values[0] if values else None


def test_a_reboot_that_resets_the_counters_is_absorbed_by_an_offset(tmp_path: Path) -> None:
    device = FakeShelly("gen1-3em", "127.0.0.37").start()
    try:
        source_config = config({"name": "3em", "host": device.address})
        source = ShellySource(source_config, "test", {}, tmp_path)
        poller = DevicePoller(source_config.devices[0], None, source.results, source.stop)
        stored = []
        ts = 1_800_000_000
        for _ in range(BASELINE_READS + 2):
            ts += 5
            stored.append(energy(source.reading([poll(poller, ts)]), "l3", "energy_export_kwh"))
        before = stored[-1]
        assert before is not None and before >= 3345.6782
        device.reboot()
        rejected = 0
        after = []
        for _ in range(BASELINE_READS + 2):
            ts += 5
            reading = source.reading([poll(poller, ts)])
            rejected += reading.errors
            after.append(energy(reading, "l3", "energy_export_kwh"))
        served = [
            s.body["emeters"][2]["total_returned"] / 1000 for s in device.served[-len(after) :]
        ]
        # the first reads after the reset are held back (BASELINE_READS agreeing reads make
        # the new baseline), then every value is the device's plus one constant offset
        kept = [(a, s) for a, s in zip(after, served, strict=True) if a is not None]
        assert len(kept) == 3
        # five counters went back (l2 never exported: 0 stays 0), each held back twice
        assert rejected == 5 * (BASELINE_READS - 1)
        offset = kept[0][0] - kept[0][1]
        assert offset == pytest.approx(before - served[0], abs=1e-9)
        assert all(a == pytest.approx(s + offset, abs=1e-9) for a, s in kept)
        stored_after = [before] + [a for a, _ in kept]
        assert stored_after == sorted(stored_after), "monotonic across the reboot"
        source.close()
    finally:
        device.stop()


def test_the_counter_baselines_survive_a_restart_of_the_source(tmp_path: Path) -> None:
    device = FakeShelly("gen2-plus-plug-s", "127.0.0.38", password="pw").start()
    try:
        source_config = config({"name": "plug", "host": device.address})
        ts = 1_800_000_000
        for restart in range(2):
            source = ShellySource(source_config, "test", {"plug": "pw"}, tmp_path)
            poller = DevicePoller(source_config.devices[0], "pw", source.results, source.stop)
            ts += 5
            first = source.reading([poll(poller, ts)])
            if restart == 0:
                assert energy(first, "switch0", "energy_total_kwh") is None  # no baseline yet
                for _ in range(BASELINE_READS - 1):
                    ts += 5
                    source.reading([poll(poller, ts)])
            else:
                assert energy(first, "switch0", "energy_total_kwh") is not None
            source.close()
            poller.client.close()
        assert (tmp_path / "counters.json").exists()
    finally:
        device.stop()
