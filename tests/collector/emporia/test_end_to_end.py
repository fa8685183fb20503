"""End to end: the collector process logs in to the Emporia API test server (pyemvue's
simulator login; answers reconstructed, see fixtures/README.md), polls every channel of every
device (a Vue with circuits, two smart plugs nested under circuits, a Utility Connect), and
its samples go through the real outbox into VictoriaMetrics, read back and checked minute by
minute against the server's usage function. The first run's wall clock is 3 hours behind
(faketime, started 1 s into a minute: its first poll is at a minute's edge): the second run,
at the real time, finds a 3-hour gap after its high-water marks and backfills it in time
order, its running sums going on from where the first run stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.collector.conftest import write_config
from tests.support.emporia_cloud import EmporiaCloud, kwh, parse_instant
from tests.support.faketime import wall_clock_from
from tests.support.processes import ServerProcess, wait_until
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration

BEHIND_S = 3 * 3600
# (device tag, channel tag, device gid, channel number): the Vue's mains, a circuit that
# exports (solar), a smart plug nested under circuit 4, and the Utility Connect's mains
CHECKS = [
    ("Home", "total", 1001, "1,2,3"),
    ("Home", "Solar", 1001, "3"),
    ("Home", "Oven", 1001, "1"),
    ("Kettle", "total", 2001, "1,2,3"),
    ("Meter", "total", 3001, "1,2,3"),
]


@pytest.fixture
def cloud() -> Iterator[EmporiaCloud]:
    server = EmporiaCloud().start()
    yield server
    server.stop()


def minutes_stored(victoria: VictoriaMetrics, device: str, channel: str) -> list[int]:
    rows = victoria.samples("electricity_power_w", device=device, channel=channel, interval="1min")
    return [ts for ts, _, _ in rows]


def test_minutes_arrive_and_a_3_hour_gap_is_backfilled_across_a_restart(
    tmp_path: Path,
    cloud: EmporiaCloud,
    victoria: VictoriaMetrics,
    collector_process: Callable[..., ServerProcess],
) -> None:
    account = {"name": "home", "username": "owner@example.invalid", "simulator_url": cloud.url}
    config = write_config(
        tmp_path / "emporia.yaml",
        victoria.url,
        tmp_path / "state",
        unit="emporia",
        source={"kind": "emporia", "accounts": [account]},
    )
    # The first run's wall clock starts BEHIND_S (up to a minute more) behind, 1 s into a
    # minute: unless the process is slow to start, its first poll falls in the minute's first
    # lag_s seconds, where it asks for the minute before the one its clock is in. The wall
    # clock only: a monotonic clock set back by hours stalls the process's waits.
    start = int(time.time()) - BEHIND_S
    start = start - start % 60 - 60 + 1
    behind = wall_clock_from(start)
    first = collector_process(config, env=behind)
    # Home's or the Kettle's: their devices never miss the same minute (is_gap), and a gap
    # would hold the test till the next poll, a minute later
    wait_until(
        lambda: any(minutes_stored(victoria, d, "total") for d in ("Home", "Kettle")),
        60,
        "the first run's minute",
    )
    assert first.stop(timeout=30) == 0, first.log_tail()
    # The first poll's minute: the last full one before its instant (its clock - lag_s), as
    # the server was asked. Not the test's clock: a process that polls in the first lag_s
    # seconds of a minute asks for the minute before the one the test's clock would expect.
    asked = parse_instant(cloud.calls("getDeviceListUsages")[0]["instant"])
    first_minute = int(asked.timestamp()) // 60 * 60 - 60
    second = collector_process(config)
    now = time.time()
    live = int(now - 5) - int(now - 5) % 60 - 60

    def caught_up() -> bool:
        """Every series has its last minute (VictoriaMetrics makes a new series searchable a
        moment after it took its points: energy_export_kwh first appears in this run)."""
        metrics = ("power_w", "energy_total_kwh")
        done = all(
            [ts for ts, _, _ in victoria.samples(f"electricity_{m}", device=d, channel=c)][-1:]
            >= [live]
            for d, c, _, _ in CHECKS
            for m in metrics
        )
        return done and bool(
            victoria.samples("electricity_energy_export_kwh", device="Home", channel="Solar")
        )

    # 90 s: a device that missed the live minute (a gap) has its next at the next poll, up to
    # 60 s + lag_s after the first
    wait_until(caught_up, 90, "the second run's minute after the backfill")
    assert second.stop(timeout=30) == 0, second.log_tail()

    for device, channel, gid, num in CHECKS:
        power = victoria.samples("electricity_power_w", device=device, channel=channel)
        energy = victoria.samples("electricity_energy_total_kwh", device=device, channel=channel)
        stamps = [ts for ts, _, _ in power]
        assert len(stamps) == len(set(stamps)), f"{device} {channel}: a minute twice"
        assert stamps[0] in (first_minute, first_minute + 60), (device, channel, stamps[0])
        expected = [
            m for m in range(stamps[0], stamps[-1] + 60, 60) if kwh(gid, num, m, 60) is not None
        ]
        assert stamps == expected, f"{device} {channel}: every minute with data, no other"
        assert stamps[-1] >= live and stamps[-1] - stamps[0] >= BEHIND_S - 120
        assert power[0][2]["source"] == "emporia" and power[0][2]["site"] == "test"
        total = 0.0
        for (ts, watts, _), (energy_ts, stored, _) in zip(power, energy, strict=True):
            used = kwh(gid, num, ts, 60)
            assert used is not None and energy_ts == ts
            assert watts == pytest.approx(used * 60_000), (device, channel, ts)
            total += max(used, 0.0)
            assert stored == pytest.approx(total, abs=1e-6), (device, channel, ts)
        if num == "3":
            exported = victoria.samples(
                "electricity_energy_export_kwh", device=device, channel=channel
            )
            assert exported and exported[-1][1] > 0

    health = victoria.samples("homewatt_device_health_read_errors", device="Kettle")
    assert health and all(v == 0 for _, v, _ in health)
    # 3 h of minutes in one call (at most 12 h each). A live minute the device missed (a gap)
    # is asked for once more, alone, at the next poll (its data may arrive late).
    backfills = [q for q in cloud.calls("getChartUsage") if q["deviceGid"] == "2001"]
    spans = [parse_instant(q["end"]) - parse_instant(q["start"]) for q in backfills]
    gap_minutes = [s for s in spans if s == timedelta(minutes=1)]
    assert len(spans) - len(gap_minutes) == 1, spans
    assert max(spans) >= timedelta(seconds=BEHIND_S - 120), spans
