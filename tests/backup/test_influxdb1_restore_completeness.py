"""A full restore on InfluxDB 1.6.7 returns only once the restored data is all there.

`influxd restore -portable` uploads each shard over the RPC port and closes the connection
without waiting for an answer (services/snapshotter/client.go, UploadShard); influxd imports it
in its own goroutine. On a loaded machine the CLI has exited before influxd imported the last
shards: they exist, empty and answering. Here a relay between `influxd restore` and influxd's
RPC port (tests/support/tcp_relay.py) holds each shard upload for HOLD_S seconds, so the server
imports after the CLI has exited, every time.
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from homewatt_backup.models import ShardRecord
from tests.backup.conftest import DB, Site, make_site, sample_lines
from tests.support.influxdb1 import InfluxDB1
from tests.support.tcp_relay import TcpRelay

pytestmark = pytest.mark.integration

HOLD_S = 2.0
# influxd's RPC port multiplexes services by a first byte (tcp.Dial writes it): the
# snapshotter's is 3 (services/snapshotter/service.go, MuxHeader); a shard upload's request
# type, the next byte, is RequestShardUpdate, 7 (the RequestType iota in the same file).
SNAPSHOTTER = 3
SHARD_UPDATE = 7
MEASUREMENTS = "/electricity|homewatt_health/"


def shard_upload(first: bytes) -> bool:
    return first[:2] == bytes([SNAPSHOTTER, SHARD_UPDATE])


@pytest.fixture
def relay(influxdb1: InfluxDB1) -> Iterator[TcpRelay]:
    """Shard uploads held HOLD_S seconds on their way to influxd; other requests pass."""
    host, _, port = influxdb1.rpc_address.rpartition(":")
    held = TcpRelay((host, int(port)), hold_s=HOLD_S, hold_when=shard_upload).start()
    try:
        yield held
    finally:
        held.stop()


def three_weeks(influxdb1: InfluxDB1) -> None:
    """Points over three weeks: four of autogen's 7-day shards, so a restore uploads several."""
    start = int(time.time()) - 21 * 86400
    influxdb1.write(DB, sample_lines(start, 64, step=8 * 3600))


def daily_backup(site: Site) -> str:
    result = site.cli("run", "--kind", "daily")
    assert result.exit_code == 0, result.output
    [archive] = (site.state_dir / "archives").rglob("*.tar")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert len(manifest["shards"]) >= 4, manifest["shards"]
    return str(archive.relative_to(site.state_dir / "archives"))


def through(site: Site, relay: TcpRelay) -> None:
    """The restores below reach influxd's RPC through the relay."""
    site.config["influxdb"]["rpc_address"] = relay.address
    site.save()


def test_restore_waits_for_influxd_to_load_shards_uploaded_after_the_cli_exited(
    tmp_path: Path, influxdb1: InfluxDB1, relay: TcpRelay
) -> None:
    three_weeks(influxdb1)
    before = influxdb1.points(DB, MEASUREMENTS)
    site = make_site(tmp_path / "site", influxdb1)
    name = daily_backup(site)
    influxdb1.drop_database(DB)
    through(site, relay)

    restored = site.cli("restore", name)

    assert restored.exit_code == 0, restored.output
    assert sum(shard_upload(f) for f in relay.firsts) >= 4  # every shard upload was held
    assert "waiting for InfluxDB to load the restored shards of homewatt" in restored.stderr
    assert influxdb1.points(DB, MEASUREMENTS) == before


def test_point_in_time_restore_writes_the_hourlies_once_the_full_is_loaded(
    tmp_path: Path, influxdb1: InfluxDB1, relay: TcpRelay
) -> None:
    three_weeks(influxdb1)
    site = make_site(tmp_path / "site", influxdb1)
    daily_backup(site)
    time.sleep(1.1)  # backup names are per second
    influxdb1.write(DB, sample_lines(int(time.time()) - 5, 1))
    assert site.cli("run", "--kind", "hourly").exit_code == 0
    expected = influxdb1.points(DB, MEASUREMENTS)
    influxdb1.drop_database(DB)
    through(site, relay)

    restored = site.cli("restore", "--at", datetime.now(UTC).isoformat())

    assert restored.exit_code == 0, restored.output
    assert "restored 2 backups into" in restored.stdout
    assert influxdb1.points(DB, MEASUREMENTS) == expected


def test_forced_merge_copies_every_measurement_of_shards_loaded_after_the_cli_exited(
    tmp_path: Path, influxdb1: InfluxDB1, relay: TcpRelay
) -> None:
    three_weeks(influxdb1)
    site = make_site(tmp_path / "site", influxdb1)
    name = daily_backup(site)
    backed_up = influxdb1.points(DB, MEASUREMENTS)
    week_ago = int(time.time()) - 7 * 86400
    influxdb1.query(f'DELETE FROM "electricity" WHERE time < {week_ago}s', DB)  # noqa: S608
    influxdb1.write(DB, sample_lines(int(time.time()) - 10, 1))  # newer than the backup
    expected = backed_up | influxdb1.points(DB, MEASUREMENTS)
    through(site, relay)

    forced = site.cli("restore", name, "--force")

    assert forced.exit_code == 0, forced.output
    assert influxdb1.points(DB, MEASUREMENTS) == expected
    assert f"{DB}_restore_" not in " ".join(influxdb1.databases())


def test_an_archive_made_without_counts_still_restores_completely(
    tmp_path: Path, influxdb1: InfluxDB1, relay: TcpRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archives of earlier versions hold no per-shard counts: the restore waits until every
    shard with data in the archive holds points and the counts settle (the weaker check)."""
    three_weeks(influxdb1)
    before = influxdb1.points(DB, MEASUREMENTS)
    site = make_site(tmp_path / "site", influxdb1)
    counted = ShardRecord.to_dict

    def as_before(record: ShardRecord) -> dict[str, Any]:  # what earlier versions wrote
        return {k: v for k, v in counted(record).items() if k in ("id", "state", "file", "size")}

    with monkeypatch.context() as earlier:
        earlier.setattr(ShardRecord, "to_dict", as_before)
        name = daily_backup(site)
    with tarfile.open(site.state_dir / "archives" / name) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert not any("field_values" in shard for shard in manifest["shards"])
    influxdb1.drop_database(DB)
    through(site, relay)

    restored = site.cli("restore", name)

    assert restored.exit_code == 0, restored.output
    assert influxdb1.points(DB, MEASUREMENTS) == before


def test_a_restore_whose_shards_never_load_fails_naming_them_within_the_bound(
    tmp_path: Path, influxdb1: InfluxDB1
) -> None:
    three_weeks(influxdb1)
    site = make_site(tmp_path / "site", influxdb1)
    name = daily_backup(site)
    influxdb1.drop_database(DB)
    host, _, port = influxdb1.rpc_address.rpartition(":")
    # shard uploads held longer than the test lasts (influxd drops them after 30 s of silence)
    never = TcpRelay((host, int(port)), hold_s=600, hold_when=shard_upload).start()
    try:
        through(site, never)
        site.config["influxdb"]["restore_wait_s"] = 3
        site.save()
        started = time.monotonic()
        failed = site.cli("restore", name)
        took = time.monotonic() - started
    finally:
        never.stop()

    assert failed.exit_code == 1
    [line] = failed.stderr.strip().splitlines()[-1:]
    assert line.startswith(
        f"homewatt-backup: error: restore into '{DB}': influxd has not loaded every restored "
        "shard after 3 s (influxdb.restore_wait_s; its log says why): shard "
    ), failed.stderr
    assert "electricity 0 of " in line and "homewatt_health 0 of " in line, line
    assert "Traceback" not in failed.output
    assert took < 3 + 15, took  # the bound, plus the backup's own start and influxd restore
