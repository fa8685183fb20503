"""The full cycle on a real InfluxDB 1.6.7 and Azurite, through the CLI as an operator runs it:
data written, backed up, uploaded, database dropped, downloaded, restored, data identical."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from homewatt_backup.ledger import VerificationLedger
from homewatt_backup.models import BackupId, Kind
from tests.backup.conftest import (
    DB,
    SITE,
    daily_boundary_away_from_now,
    make_site,
    sample_lines,
    write_secret,
)
from tests.support.azurite import Azurite
from tests.support.influxdb1 import InfluxDB1

pytestmark = pytest.mark.integration


def now_s() -> int:
    return int(time.time())


def blobs(azurite: Azurite, container: str) -> dict[str, dict[str, str]]:
    return {
        b.name: dict(b.metadata or {})
        for b in azurite.container(container).list_blobs(include=["metadata"])
    }


def test_daily_backup_uploads_then_restores_a_dropped_database_identically(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    start = now_s() - 3 * 3600
    influxdb1.write(DB, sample_lines(start, 600, step=10))
    before = influxdb1.points(DB, "/electricity|homewatt_health/")
    types_before = influxdb1.field_types(DB)
    site = make_site(tmp_path / "site", influxdb1, azurite)

    result = site.cli("run", "--kind", "daily")
    assert result.exit_code == 0, result.output
    assert "daily backup home/daily/" in result.stdout

    remote = blobs(azurite, site.container or "")
    [name] = [n for n in remote if "/daily/" in n]
    assert len(remote[name]["sha256"]) == 64 and "verified" not in remote[name]
    # verified after upload: recorded in the state directory's ledger, not in the blob
    assert VerificationLedger(site.state_dir).verified() == {name: remote[name]["sha256"]}
    assert remote[name]["engine"] == "influxdb1" and remote[name]["engineversion"]

    listing = site.cli("list")
    assert listing.exit_code == 0, listing.output
    assert name in listing.stdout and "uploaded" in listing.stdout and "verified" in listing.stdout

    influxdb1.drop_database(DB)
    shutil.rmtree(site.state_dir / "archives")  # the Pi's SD card died: only Azure is left
    restored = site.cli("restore", name)
    assert restored.exit_code == 0, restored.output
    assert f"restored {name} into {DB}" in restored.stdout
    assert influxdb1.points(DB, "/electricity|homewatt_health/") == before
    assert influxdb1.field_types(DB) == types_before


def test_hourly_incrementals_restore_to_a_point_in_time_on_top_of_the_full(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = daily_boundary_away_from_now(make_site(tmp_path / "site", influxdb1, azurite))
    base = now_s() - 2 * 3600
    influxdb1.write(DB, sample_lines(base, 100, step=5))
    assert site.cli("run", "--kind", "daily").exit_code == 0
    time.sleep(1.1)  # backup names are per second
    influxdb1.write(DB, sample_lines(base + 1000, 100, step=5))
    hourly = site.cli("run")  # auto: the full was made today, so an hourly one
    assert hourly.exit_code == 0, hourly.output
    assert "hourly backup home/hourly/" in hourly.stdout
    expected = influxdb1.points(DB, "/electricity|homewatt_health/")

    names = sorted(blobs(azurite, site.container or ""))
    ids = [BackupId.parse(n) for n in names]
    assert [i.kind for i in ids if i] == [Kind.DAILY, Kind.HOURLY]

    influxdb1.drop_database(DB)
    at = datetime.now(UTC).isoformat()
    restored = site.cli("restore", "--at", at, "--target", "rebuilt")
    assert restored.exit_code == 0, restored.output
    assert "restored 2 backups into rebuilt" in restored.stdout
    assert influxdb1.points("rebuilt", "/electricity|homewatt_health/") == expected
    # restoring an incremental twice is harmless: same series and timestamps overwrite
    again = site.cli("restore", names[1], "--target", "rebuilt", "--force")
    assert again.exit_code == 0, again.output
    assert influxdb1.points("rebuilt", "/electricity|homewatt_health/") == expected


def test_point_in_time_restore_leaves_out_points_after_the_chosen_time(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", influxdb1)  # local archives only
    base = now_s() - 3600
    influxdb1.write(DB, sample_lines(base, 10, step=60))
    assert site.cli("run", "--kind", "daily").exit_code == 0
    time.sleep(2.1)
    later = now_s()  # a point written after the full backup was taken
    influxdb1.write(DB, sample_lines(later, 1))
    time.sleep(1.1)
    assert site.cli("run", "--kind", "hourly").exit_code == 0
    cut = datetime.fromtimestamp(later - 1, UTC).isoformat()
    result = site.cli("restore", "--at", cut, "--target", "past")
    assert result.exit_code == 0, result.output
    restored = influxdb1.points("past", "/electricity/")
    assert len(restored) == 10 * 3  # the full's points, not the later one
    assert max(p[2] for p in restored) < later * 1_000_000_000
    everything = site.cli("restore", "--at", datetime.now(UTC).isoformat(), "--target", "now")
    assert everything.exit_code == 0, everything.output
    assert len(influxdb1.points("now", "/electricity/")) == 11 * 3


def test_restore_refuses_a_database_that_holds_data_unless_forced(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", influxdb1, azurite)
    base = now_s() - 3600
    influxdb1.write(DB, sample_lines(base, 20, step=30))
    assert site.cli("run", "--kind", "daily").exit_code == 0
    [name] = blobs(azurite, site.container or "")
    newer = sample_lines(now_s() - 10, 1)
    influxdb1.write(DB, newer)
    before = influxdb1.points(DB)

    refused = site.cli("restore", name)
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        f"homewatt-backup: error: '{DB}' already holds data: restore into a new name "
        "(--target), or pass --force to merge the backup into it"
    )
    assert influxdb1.points(DB) == before

    forced = site.cli("restore", name, "--force")
    assert forced.exit_code == 0, forced.output
    assert influxdb1.points(DB) == before  # merged: the newer point is still there
    assert f"{DB}_restore_" not in " ".join(influxdb1.databases())


def in_policy(influx: InfluxDB1, db: str, rp: str) -> set[tuple[object, ...]]:
    """Every point of retention policy `rp`, one measurement at a time (a `FROM rp./.*/ GROUP
    BY *` lists each series with the tag keys of every measurement it matched, so two
    snapshots of the same points could differ)."""
    [result] = influx.query("SHOW MEASUREMENTS", db=db)
    names = [row[0] for s in result.get("series", []) for row in s["values"]]
    return set().union(*(influx.points(db, f'"{rp}"."{name}"') for name in names))


def policies(influx: InfluxDB1, db: str) -> dict[str, tuple[str, bool]]:
    """name -> (duration, default)."""
    [series] = influx.query(f'SHOW RETENTION POLICIES ON "{db}"')[0]["series"]
    return {row[0]: (row[1], row[4]) for row in series["values"]}


def test_a_forced_restore_merges_every_retention_policy_and_makes_the_missing_ones(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    """A 1.x database as homewatt lays it out: raw samples in its default policy `raw`, the
    long-term means in `longterm` (kept forever). A merge (--force) used to copy the default
    policy alone: the long-term history was left out without a word."""
    influxdb1.query(f'DROP DATABASE "{DB}"', post=True)
    influxdb1.create_database(DB)
    influxdb1.query(
        f'CREATE RETENTION POLICY "raw" ON "{DB}" DURATION 30d REPLICATION 1 DEFAULT', post=True
    )
    influxdb1.query(
        f'CREATE RETENTION POLICY "longterm" ON "{DB}" DURATION INF REPLICATION 1 '
        "SHARD DURATION 4w",
        post=True,
    )
    base = now_s() - 3600
    influxdb1.write(DB, sample_lines(base, 20, step=30))
    means = [
        f"electricity_1m,site=home,device=main power_w={100 + i}.5 {base + 60 * i}"
        for i in range(20)
    ]
    influxdb1.write(DB, means, rp="longterm")
    backed_up = in_policy(influxdb1, DB, "raw")
    longterm_before = in_policy(influxdb1, DB, "longterm")
    assert len(longterm_before) == 20
    site = make_site(tmp_path / "site", influxdb1, azurite)
    assert site.cli("run", "--kind", "daily").exit_code == 0
    [name] = blobs(azurite, site.container or "")
    raw_before = in_policy(influxdb1, DB, "raw")  # with the run's health point

    # the Pi lost its long-term policy; a newer raw point came in since the backup
    influxdb1.query(f'DROP RETENTION POLICY "longterm" ON "{DB}"', post=True)
    newer = sample_lines(now_s() - 10, 1)
    influxdb1.write(DB, newer)
    forced = site.cli("restore", name, "--force")
    assert forced.exit_code == 0, forced.output
    assert policies(influxdb1, DB) == {
        "autogen": ("0s", False),
        "raw": ("720h0m0s", True),
        "longterm": ("0s", False),  # made again as the backup had it
    }
    assert in_policy(influxdb1, DB, "longterm") == longterm_before
    newer_points = in_policy(influxdb1, DB, "raw") - raw_before
    assert len(newer_points) == len(newer)  # and every point before the restore is kept
    assert raw_before < in_policy(influxdb1, DB, "raw")

    # into another database (default policy autogen): raw into its default, longterm by name
    influxdb1.create_database("other")
    influxdb1.write("other", newer)
    into_other = site.cli("restore", name, "--target", "other", "--force")
    assert into_other.exit_code == 0, into_other.output
    assert policies(influxdb1, "other") == {"autogen": ("0s", True), "longterm": ("0s", False)}
    assert in_policy(influxdb1, "other", "longterm") == longterm_before
    assert in_policy(influxdb1, "other", "autogen") == backed_up | newer_points
    assert not [d for d in influxdb1.databases() if "_restore_" in d]


def test_every_run_writes_a_health_point_and_a_failed_run_exits_non_zero(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = daily_boundary_away_from_now(make_site(tmp_path / "site", influxdb1, azurite))
    influxdb1.write(DB, sample_lines(now_s() - 600, 5))
    ok = site.cli("run")
    assert ok.exit_code == 0, ok.output
    # a SAS without write permission: the local backup is made, the upload fails
    write_secret(site.credentials / "azure-sas", azurite.sas(site.container or "", "rl"))
    time.sleep(1.1)
    failed = site.cli("run")
    assert failed.exit_code == 1
    assert "lacks permission(s) 'cwd'" in failed.stderr
    assert "Traceback" not in failed.output
    rows = influxdb1.query("SELECT * FROM homewatt_backup", db=DB)[0]["series"][0]
    columns = rows["columns"]
    points = [dict(zip(columns, v, strict=True)) for v in rows["values"]]
    assert [(p["kind"], p["ok"], p["site"]) for p in points] == [
        ("daily", 1, SITE),
        ("hourly", 0, SITE),
    ]
    assert points[0]["bytes"] > 0 and points[0]["duration_s"] > 0
    assert points[1]["pending_uploads"] == 1
    # the SAS (valid 2 h, make_site) expires in about 2/24 days: what the alerts watch
    for point in points:
        assert 0.07 < point["sas_expires_in_days"] <= 2 / 24, point
