"""A wrong clock never steers a backup: the run refuses an unsynchronised clock (one line,
exit 1, no health point), and a backup dated in the future (made while the clock was wrong)
never counts as the newest one for kind selection or rotation, locally or remotely. Against
real InfluxDB 1.6.7 and Azurite; the clock jumps through a process whose wall clock is 400
days ahead (faketime), and through the runner's injected clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homewatt_backup.archive import LocalArchives
from homewatt_backup.cli import app
from homewatt_backup.models import Kind
from homewatt_backup.runner import RequestedKind
from homewatt_common import clock as shared_clock
from tests.backup.conftest import (
    DB,
    Site,
    daily_boundary_away_from_now,
    make_site,
    sample_lines,
)
from tests.backup.test_runner import Clock, remote_names, runner
from tests.support.azurite import Azurite
from tests.support.influxdb1 import InfluxDB1

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("homewatt-backup"))


def health_rows(influx: InfluxDB1) -> list[list[object]]:
    results = influx.query("SELECT ok, kind FROM homewatt_backup", db=DB)[0]
    return [row[1:] for s in results.get("series", []) for row in s["values"]]


def run_cli(site: Site, *args: str, ahead_days: int = 0) -> subprocess.CompletedProcess[str]:
    """`homewatt-backup` as its own process; with `ahead_days`, its wall clock that far ahead
    (faketime: the Pi that booted without a battery clock and without NTP yet)."""
    argv = [
        CLI,
        "--config",
        str(site.config_path),
        "--credentials-dir",
        str(site.credentials),
        "--state-dir",
        str(site.state_dir),
        *args,
    ]
    env = dict(os.environ)
    if ahead_days:
        # monotonic time is shifted too: libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC
        # fails Python 3.11's time.sleep (absolute clock_nanosleep) with EINVAL
        faketime = shutil.which("faketime")
        if faketime is None:
            pytest.fail("faketime is missing: scripts/bootstrap installs it")
        argv = [faketime, "-f", f"+{ahead_days}d", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_an_unsynchronised_clock_refuses_the_run_with_one_line_and_no_health_point(
    tmp_path: Path, influxdb1: InfluxDB1, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's answer is replaced here (a test cannot unsynchronise the host's clock)."""
    influxdb1.write(DB, sample_lines(int(datetime.now(UTC).timestamp()) - 600, 10))
    site = make_site(tmp_path / "site", influxdb1)
    site.config["clock"] = {"wait_for_sync": True}  # the default
    site.save()
    monkeypatch.setattr(shared_clock, "clock_synchronized", lambda: False)
    refused = site.cli("run")
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        "homewatt-backup: error: the system clock is not synchronised (no NTP time yet): no "
        "backup runs on a wrong clock, and no health point is written (its time would be wrong; "
        "the missing point is what alerts); the timer tries again next hour. A site without "
        "network time sets clock.wait_for_sync: false"
    ]
    assert health_rows(influxdb1) == []
    assert not (site.state_dir / "archives").exists()
    site.config["clock"] = {"wait_for_sync": False}
    site.save()
    ran = site.cli("run")
    assert ran.exit_code == 0, ran.output
    assert health_rows(influxdb1) == [[1, "daily"]]


def test_a_clock_that_cannot_be_read_is_a_warning_and_the_run_goes_on(
    tmp_path: Path, influxdb1: InfluxDB1, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path / "site", influxdb1)
    site.config["clock"] = {"wait_for_sync": True}
    site.save()
    monkeypatch.setattr(shared_clock, "clock_synchronized", lambda: None)
    ran = CliRunner().invoke(
        app,
        [
            "--config",
            str(site.config_path),
            "--credentials-dir",
            str(site.credentials),
            "--state-dir",
            str(site.state_dir),
            "run",
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert "cannot tell whether the system clock is synchronised" in ran.stderr


def test_a_run_400_days_ahead_never_steers_later_runs_or_rotation(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    """The field fault: a full named for 2028, then every run incremental (the newest full was
    "in the future") and each incremental rotated out right after it was made."""
    influxdb1.write(DB, sample_lines(int(datetime.now(UTC).timestamp()) - 3000, 40, step=60))
    site = make_site(tmp_path / "site", influxdb1, azurite, keep_full=1, local_full=1)
    daily_boundary_away_from_now(site)  # the real runs below: daily, hourly, hourly
    ahead = run_cli(site, "run", ahead_days=400)
    # the SAS (valid 2 h) has "expired" by that clock: the archive stays local
    assert ahead.returncode == 1 and "expired at" in ahead.stderr, ahead.stderr
    archives = LocalArchives(site.state_dir).list()
    assert len(archives) == 1, ahead.stderr
    future = archives[0]
    assert future.id.kind is Kind.DAILY and future.id.timestamp.year >= 2027

    names = []
    for expected in ("daily", "hourly", "hourly"):
        ran = run_cli(site, "run")
        assert ran.returncode == 0, ran.stderr
        assert f"{future.id.name} is dated after now" in ran.stderr  # warned, every run
        assert ran.stdout.startswith(f"{expected} backup home/{expected}/"), ran.stdout
        names.append(ran.stdout.split()[2].rstrip(";"))
    # nothing real was rotated out, locally or remotely; the future archive is kept (and
    # uploaded), never taken as the newest
    local = [b.id.name for b in LocalArchives(site.state_dir).list()]
    assert local == [*names, future.id.name]
    assert remote_names(azurite, site.container) == sorted([*names, future.id.name])


def test_clock_jumps_forward_and_back_keep_kinds_and_chains_right(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    influxdb1.write(DB, sample_lines(int(datetime(2026, 11, 23, tzinfo=UTC).timestamp()), 30, 60))
    site = make_site(tmp_path / "site", influxdb1, azurite, keep_full=2, local_full=2)
    clock = Clock(datetime(2026, 11, 23, 2, 30, tzinfo=UTC))
    kinds: list[Kind] = []

    def run(requested: RequestedKind = RequestedKind.AUTO) -> None:
        result = runner(site, clock).run(requested)
        assert result.ok, result.errors
        kinds.append(result.kind)

    run()  # 02:30 daily (the first)
    clock.advance(hours=1)
    run()  # 03:30 daily (after the daily hour)
    clock.advance(days=400)
    run()  # a year ahead: no full since 03:00 of that day
    future_full = kinds[-1]
    clock.advance(days=-400, hours=1)  # NTP steps the clock back
    for _ in range(3):
        run()  # hourlies: the full made today at 03:30 is the newest that counts
        clock.advance(hours=1)
    clock.advance(hours=20)
    run()  # next day 03:30: a daily again, as if the future one did not exist
    assert future_full is Kind.DAILY
    assert kinds == [Kind.DAILY] * 3 + [Kind.HOURLY] * 3 + [Kind.DAILY]
    remote = remote_names(azurite, site.container)
    future = [n for n in remote if n.split("/")[2] > "2027"]
    assert len(future) == 1  # kept, never deleted
    real = [n for n in remote if n not in future]
    # keep.full = 2: the two newest real fulls (11-23 03:30, 11-24 03:30) and the hourlies
    # between them; the 02:30 full is rotated out as it should be
    assert [n for n in real if "/daily/" in n] == [
        "home/daily/20261123T033000Z.tar",
        "home/daily/20261124T033000Z.tar",
    ]
    assert len([n for n in real if "/hourly/" in n]) == 3
