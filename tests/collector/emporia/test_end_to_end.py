"""End to end: the collector process logs in to the Emporia API test server (pyemvue's
simulator login; answers reconstructed, see fixtures/README.md), polls every channel of every
device (a Vue with circuits, two smart plugs nested under circuits, a Utility Connect), and
its samples go through the real outbox into VictoriaMetrics, read back and checked minute by
minute against the server's usage function. The first run's wall clock is 3 hours behind
(faketime): the second run, at the real time, finds a 3-hour gap after its high-water marks
and backfills it in time order, its running sums going on from where the first run stopped."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.collector.conftest import write_config
from tests.support.emporia_cloud import EmporiaCloud, kwh
from tests.support.processes import ServerProcess, wait_until
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
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
    if not LIBFAKETIME.exists() or shutil.which("faketime") is None:
        pytest.fail("faketime is missing: scripts/bootstrap installs it")
    account = {"name": "home", "username": "owner@example.invalid", "simulator_url": cloud.url}
    config = write_config(
        tmp_path / "emporia.yaml",
        victoria.url,
        tmp_path / "state",
        unit="emporia",
        source={"kind": "emporia", "accounts": [account]},
    )
    # the wall clock only: a monotonic clock set back by hours stalls the process's waits
    behind = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": f"-{BEHIND_S}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    first = collector_process(config, env=behind)
    then = time.time() - BEHIND_S
    first_minute = int(then) - int(then) % 60 - 60
    wait_until(
        lambda: bool(minutes_stored(victoria, "Kettle", "total")), 60, "the first run's minute"
    )
    assert first.stop(timeout=30) == 0, first.log_tail()
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

    wait_until(caught_up, 60, "the second run's minute after the backfill")
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
    backfills = [q for q in cloud.calls("getChartUsage") if q["deviceGid"] == "2001"]
    assert len(backfills) == 1, "3 h of minutes in one call (at most 12 h each)"
