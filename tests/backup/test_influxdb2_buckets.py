"""Backups of several InfluxDB 2 buckets (`influxdb.extra_buckets`: homewatt's long-term bucket
beside the raw one), against the repository's InfluxDB 2 stand-in (tests/support/influxdb2),
NOT a real InfluxDB 2 (none can run here; each test name says so): daily and hourly backups of
both buckets, a point-in-time restore of both, a missing bucket refused, and an archive made by
the single-bucket version (the branch's fork point, run from `git archive`) still restored."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from homewatt_backup.archive import LocalArchives
from homewatt_backup.models import Kind
from tests.backup.conftest import Site, make_influxdb2_site
from tests.backup.test_influxdb2_http import BUCKET, ORG, TOKEN, create_bucket, points, write
from tests.support.azurite import Azurite
from tests.support.influxdb2 import InfluxDB2StandIn

REPO = Path(__file__).resolve().parents[2]
LONGTERM = "homewatt_longterm"
# The commit this feature was built on: its homewatt-backup knows one bucket only.
SINGLE_BUCKET_VERSION = "6a3968e877ed24dfb8ba7fd35474fcd8c273471f"


@pytest.fixture
def influx2(tmp_path: Path) -> Any:
    server = InfluxDB2StandIn(tmp_path / "standin").start()
    try:
        server.setup(org=ORG, bucket=BUCKET, token=TOKEN)
        create_bucket(server, LONGTERM)
        yield server
    finally:
        server.stop()


def raw_lines(start: int, count: int) -> list[str]:
    """1 s samples of the collector's data model, `count` seconds from `start`."""
    return [
        f"electricity,channel=l1,device=meter1 power_w={230 + i % 7},energy_total_kwh="
        f"{1000 + i / 1000} {start + i}"
        for i in range(count)
    ]


def longterm_lines(start: int, minutes: int) -> list[str]:
    """What the long-term task writes: 1-minute means and the cost, from `start` on."""
    lines = []
    for i in range(minutes):
        ts = start + 60 * i
        lines.append(f"electricity,channel=l1,device=meter1 power_w_mean={231 + i % 5}.5 {ts}")
        lines.append(f'energy_cost,tariff=peak cost_eur={0.25 + i / 100},currency="EUR" {ts}')
    return lines


def two_bucket_site(root: Path, server: InfluxDB2StandIn, azurite: Azurite | None = None) -> Site:
    site = make_influxdb2_site(
        root, server.url, org=ORG, bucket=BUCKET, token=TOKEN, azurite=azurite
    )
    site.config["influxdb"]["extra_buckets"] = [LONGTERM]
    site.config["health"] = False  # the buckets hold only what the test wrote
    return site.save()


def run(site: Site, kind: str) -> None:
    done = site.cli("run", "--kind", kind)
    assert done.exit_code == 0, done.output


@pytest.mark.integration
def test_a_daily_and_hourlies_of_two_buckets_restore_to_a_point_in_time_not_run_against_a_real_influxdb2(  # noqa: E501
    tmp_path: Path, influx2: InfluxDB2StandIn, azurite: Azurite
) -> None:
    site = two_bucket_site(tmp_path / "site", influx2, azurite)
    now = int(time.time())
    # three weeks of long-term means (older than the raw bucket keeps), an hour of raw samples
    write(influx2, LONGTERM, longterm_lines(now - 21 * 86400, 60))
    write(influx2, BUCKET, raw_lines(now - 3600, 600))
    run(site, "daily")
    write(influx2, LONGTERM, longterm_lines(now - 1800, 10))
    write(influx2, BUCKET, raw_lines(now - 1200, 300))
    run(site, "hourly")
    first_hourly = LocalArchives(site.state_dir).list()[1].id.timestamp
    t1 = int(first_hourly.timestamp())
    while time.time() < t1 + 2:  # points stamped after the first hourly, before the second
        time.sleep(0.2)
    write(influx2, LONGTERM, [f'energy_cost,tariff=peak cost_eur=9.5,currency="EUR" {t1 + 1}'])
    write(influx2, BUCKET, raw_lines(t1 + 1, 1))
    run(site, "hourly")
    at = datetime.now(UTC)
    originals = {BUCKET: points(influx2, BUCKET), LONGTERM: points(influx2, LONGTERM)}
    local = LocalArchives(site.state_dir).list()
    assert [b.id.kind for b in local] == [Kind.DAILY, Kind.HOURLY, Kind.HOURLY]
    daily, hourly = local[0].record.manifest, local[2].record.manifest
    assert [e.bucket for e in daily.extra_buckets] == [LONGTERM]
    assert {s.bucket for s in daily.shards} == {BUCKET, LONGTERM}
    [extra] = hourly.extra_buckets
    assert extra.member == f"data/{LONGTERM}.lp.gz"
    assert extra.field_values is not None and extra.lines is not None
    # the hourly reaches 7 h back (overlap 6 h): all ten minutes and the last cost point
    assert extra.field_values.archived == {"electricity": 10, "energy_cost": 22}
    assert extra.field_values.before == extra.field_values.archived
    assert hourly.field_values is not None
    assert hourly.field_values.archived == {"electricity": 2 * (600 + 300 + 1)}
    assert {f.name for f in hourly.files} == {"data.lp.gz", f"data/{LONGTERM}.lp.gz"}
    metadata = {
        b.name: b.metadata
        for b in azurite.container(site.container or "").list_blobs(include=["metadata"])
    }
    assert {m.get("extrabuckets") for m in metadata.values()} == {LONGTERM}

    # into the live names: both hold data, refused before anything is written
    refused = site.cli("restore", "--at", at.isoformat())
    assert refused.exit_code == 1
    assert f"'{BUCKET}' already holds data" in refused.stderr
    # a rebuilt Pi: nothing local, every backup from Azure, the chain's buckets from metadata
    shutil.rmtree(site.state_dir / "archives")
    restored = site.cli("restore", "--at", at.isoformat(), "--target", "fresh")
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.startswith(
        f"restored 3 backups into fresh; extra bucket {LONGTERM} into fresh_{LONGTERM}: "
    )
    assert points(influx2, "fresh") == originals[BUCKET]
    assert points(influx2, f"fresh_{LONGTERM}") == originals[LONGTERM]
    # the state at the first hourly: the second one's points stamped after it are left out
    earlier = site.cli("restore", "--at", first_hourly.isoformat(), "--target", "early")
    assert earlier.exit_code == 0, earlier.output
    for bucket, target in ((BUCKET, "early"), (LONGTERM, f"early_{LONGTERM}")):
        expected = [p for p in originals[bucket] if int(p.rpartition(" ")[2]) <= t1]
        assert len(expected) < len(originals[bucket])  # the points stamped t1 + 1
        assert points(influx2, target) == expected


@pytest.mark.integration
def test_a_restore_refuses_when_an_extra_buckets_target_holds_data_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    site = two_bucket_site(tmp_path / "site", influx2)
    now = int(time.time())
    write(influx2, LONGTERM, longterm_lines(now - 86400, 5))
    write(influx2, BUCKET, raw_lines(now - 600, 5))
    run(site, "daily")
    [daily] = LocalArchives(site.state_dir).list()
    create_bucket(influx2, f"fresh_{LONGTERM}")
    write(influx2, f"fresh_{LONGTERM}", ["m f=1 1795435200"])
    refused = site.cli("restore", daily.id.name, "--target", "fresh")
    assert refused.exit_code == 1
    assert f"'fresh_{LONGTERM}' already holds data" in refused.stderr
    assert influx2.calls("POST", "/api/v2/restore/bucketMetadata") == []  # nothing written
    merged = site.cli("restore", daily.id.name, "--target", "fresh", "--force")
    assert merged.exit_code == 0, merged.output
    assert merged.stdout.strip() == (
        f"restored {daily.id.name} into fresh; extra bucket {LONGTERM} into fresh_{LONGTERM}"
    )
    assert set(points(influx2, LONGTERM)) < set(points(influx2, f"fresh_{LONGTERM}"))


def test_a_missing_extra_bucket_is_one_clear_error_with_nothing_kept_not_run_against_a_real_influxdb2(  # noqa: E501
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    site = two_bucket_site(tmp_path / "site", influx2)
    site.config["influxdb"]["extra_buckets"] = [LONGTERM, "homewatt_yearly"]
    site.save()
    write(influx2, BUCKET, raw_lines(int(time.time()) - 60, 5))
    daily = site.cli("run", "--kind", "daily")
    assert daily.exit_code == 1
    [line] = daily.stderr.strip().splitlines()
    assert line.startswith(
        "homewatt-backup: error: full backup: bucket 'homewatt_yearly' of org 'homewatt' is not"
        " in InfluxDB's backup metadata (influxdb.bucket, influxdb.extra_buckets): the backup is"
        " not kept (daily backup none;"
    ), line
    hourly = site.cli("run", "--kind", "hourly")
    assert hourly.exit_code == 1
    [line] = [t for t in hourly.stderr.splitlines() if t.startswith("homewatt-backup: error:")]
    assert line.startswith(
        "homewatt-backup: error: InfluxDB: count field values of bucket 'homewatt_yearly' of org"
        " 'homewatt': not found (404): "
    ), line
    assert 'could not find bucket \\"homewatt_yearly\\"' in line, line
    archives = site.state_dir / "archives"
    assert [p for p in archives.rglob("*") if p.is_file()] == []
    assert list((site.state_dir / "tmp").iterdir()) == []
    assert influx2.calls("GET", "/api/v2/backup/shards/") == []  # stopped before any shard


def old_homewatt_backup(tmp_path: Path) -> list[str]:
    """The command line of homewatt-backup as it was before extra buckets (its source from
    git, run with this venv's libraries)."""
    present = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{SINGLE_BUCKET_VERSION}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if present.returncode != 0:
        pytest.skip(f"needs the repository's history ({SINGLE_BUCKET_VERSION}): a shallow clone")
    tree = tmp_path / "single-bucket-version"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", SINGLE_BUCKET_VERSION, "backup/src", "common/src"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return [
        "env",
        f"PYTHONPATH={tree / 'backup' / 'src'}:{tree / 'common' / 'src'}",
        sys.executable,
        "-c",
        "import sys; from homewatt_backup.cli import app; sys.argv[0] = 'homewatt-backup'; app()",
    ]


@pytest.mark.integration
def test_an_archive_of_the_single_bucket_version_still_restores_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    site = make_influxdb2_site(tmp_path / "site", influx2.url, org=ORG, bucket=BUCKET, token=TOKEN)
    site.config["health"] = False
    site.save()
    now = int(time.time())
    write(influx2, BUCKET, raw_lines(now - 3600, 120))
    old = old_homewatt_backup(tmp_path)
    where = ["--config", str(site.config_path), "--credentials-dir", str(site.credentials)]
    where += ["--state-dir", str(site.state_dir)]
    for kind in ("daily", "hourly"):
        made = subprocess.run(
            [*old, *where, "run", "--kind", kind], capture_output=True, text=True, check=False
        )
        assert made.returncode == 0, made.stderr
        time.sleep(1)
    original = points(influx2, BUCKET)
    daily, hourly = LocalArchives(site.state_dir).list()
    assert daily.record.manifest.extra_buckets == () and hourly.record.manifest.extra_buckets == ()
    assert daily.record.manifest.shards
    assert all(s.bucket is None for s in daily.record.manifest.shards)
    # this version, now configured with the long-term bucket too, restores it as it was
    site.config["influxdb"]["extra_buckets"] = [LONGTERM]
    site.save()
    one = site.cli("restore", daily.id.name, "--target", "fromdaily")
    assert one.exit_code == 0, one.output
    assert one.stdout.strip() == f"restored {daily.id.name} into fromdaily"
    assert points(influx2, "fromdaily") == original
    chain = site.cli("restore", "--at", datetime.now(UTC).isoformat(), "--target", "fromchain")
    assert chain.exit_code == 0, chain.output
    assert chain.stdout.startswith("restored 2 backups into fromchain: ")
    assert points(influx2, "fromchain") == original
    verified = site.cli("list")
    assert verified.exit_code == 0, verified.output
