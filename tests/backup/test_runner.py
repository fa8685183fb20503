"""Backup runs against real InfluxDB 1.6.7 and Azurite: the upload backlog, remote and local
rotation, and each bad input ending as one clear error with nothing partial left behind."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from typer.testing import CliRunner

from homewatt_backup.archive import LocalArchives
from homewatt_backup.cli import app
from homewatt_backup.engines import make_engine
from homewatt_backup.ledger import LEDGER_NAME, VerificationLedger
from homewatt_backup.models import LEGACY_VERIFIED_KEY, BackupId, Kind
from homewatt_backup.runner import RequestedKind, Runner, health_line, sas_expires_in_days
from homewatt_backup.store import AzureBlobStore, Progress
from tests.backup.conftest import DB, SITE, Site, make_site, sample_lines
from tests.support.azurite import DEV_ACCOUNT, Azurite
from tests.support.faultproxy import FaultProxy
from tests.support.influxdb1 import InfluxDB1

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)


class Clock:
    """The runner's clock, moved by the test; `sleep` moves it too (and notes the wait) unless
    `stuck`."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.slept: list[float] = []
        self.stuck = False

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if not self.stuck:
            self.advance(seconds=seconds)


class EtagRecordingStore(AzureBlobStore):
    """The real adapter, plus a note of each blob's ETag right after its upload returned."""

    uploaded_etags: dict[str, str]

    def upload(
        self,
        name: str,
        path: Path,
        metadata: dict[str, str],
        md5_b64: str,
        progress: Progress | None = None,
    ) -> None:
        super().upload(name, path, metadata, md5_b64)
        self.uploaded_etags[name] = self._blob(name).get_blob_properties().etag


def runner(
    site: Site,
    clock: Clock,
    *,
    account_url: str | None = None,
    retries: int = 0,
    etags: dict[str, str] | None = None,
) -> Runner:
    settings = site.settings()
    engine = make_engine(settings.config.influxdb, settings.secrets)
    store = None
    azure = settings.config.azure
    if azure is not None and settings.secrets.sas is not None:
        store_type = AzureBlobStore if etags is None else EtagRecordingStore
        store = store_type(
            account_url or azure.account_url,
            azure.container,
            settings.secrets.sas,
            azure.sas_source,
            retries=retries,
            retry_backoff=0,
        )
        if isinstance(store, EtagRecordingStore) and etags is not None:
            store.uploaded_etags = etags
    return Runner(settings, engine, store, clock, sleep=clock.sleep)


def ledger(site: Site) -> dict[str, str]:
    """What the state directory's verification ledger holds: name -> SHA-256."""
    return VerificationLedger(site.state_dir).verified()


def remote_blobs(azurite: Azurite, container: str | None) -> dict[str, Any]:
    """name -> BlobProperties (metadata included), read with the account key."""
    blobs = azurite.container(container or "").list_blobs(include=["metadata"])
    return {b.name: b for b in blobs}


def requests_per_blob(log: list[tuple[str, str]], container: str) -> dict[str, list[str]]:
    """From the fault proxy's request log: per blob, its requests as "METHOD comp" in order."""
    prefix = f"/{DEV_ACCOUNT}/{container}/"
    out: dict[str, list[str]] = {}
    for method, target in log:
        url = urlsplit(target)
        if not url.path.startswith(prefix):
            continue  # container-level: list
        comp = parse_qs(url.query).get("comp", [""])[0]
        out.setdefault(unquote(url.path.removeprefix(prefix)), []).append(
            f"{method} {comp}".strip()
        )
    return out


def inject_blob(
    azurite: Azurite, site: Site, source: str, name: str, **metadata: str
) -> dict[str, str]:
    """Copy blob `source` to `name` with the account key (not through the app), its metadata
    with `metadata` on top: a backup uploaded elsewhere, or by an older version."""
    container = azurite.container(site.container or "")
    blob = container.get_blob_client(source)
    merged = {**blob.get_blob_properties().metadata, **metadata}
    container.get_blob_client(name).upload_blob(
        blob.download_blob().readall(), metadata=merged, overwrite=True
    )
    return merged


def remote_names(azurite: Azurite, container: str | None) -> list[str]:
    return sorted(b.name for b in azurite.container(container or "").list_blobs())


def local_names(site: Site) -> list[str]:
    return [b.id.name for b in LocalArchives(site.state_dir).list()]


def no_partial_files(site: Site) -> bool:
    """Nothing half-written: no *.partial, nothing in the staging directory."""
    files = [p.relative_to(site.state_dir) for p in site.state_dir.rglob("*") if p.is_file()]
    return [f for f in files if f.name.endswith(".partial") or f.parts[0] == "tmp"] == []


@pytest.fixture
def data(influxdb1: InfluxDB1) -> InfluxDB1:
    influxdb1.write(DB, sample_lines(int(T0.timestamp()) - 7200, 50, step=60))
    return influxdb1


def test_auto_makes_a_daily_full_once_a_day_and_hourly_incrementals_otherwise(
    tmp_path: Path, data: InfluxDB1
) -> None:
    site = make_site(tmp_path / "site", data)
    clock = Clock()
    kinds = []
    for _ in range(26):
        result = runner(site, clock).run()
        assert result.ok, result.errors
        kinds.append(result.kind)
        clock.advance(hours=1)
    # 02:30 first run (no full yet), 03:30 first run after 03:00 UTC, next day 03:30 again
    assert [i for i, k in enumerate(kinds) if k is Kind.DAILY] == [0, 1, 25]


def test_a_failed_upload_stays_pending_and_the_backlog_goes_oldest_first_next_run(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite, azurite_proxy: FaultProxy
) -> None:
    site = make_site(tmp_path / "site", data, azurite)
    clock = Clock()
    via_proxy = azurite.account_url_via(azurite_proxy.port)
    azurite_proxy.down()
    for _ in range(3):
        result = runner(site, clock, account_url=via_proxy).run()
        assert not result.ok and "unreachable" in result.errors[0]
        assert result.backup is not None  # the local backup is made regardless
        clock.advance(hours=1)
    assert result.pending == 3
    assert remote_names(azurite, site.container) == []
    azurite_proxy.up()
    result = runner(site, clock, account_url=via_proxy).run()
    assert result.ok, result.errors
    assert [i.name for i in result.uploaded] == local_names(site)  # oldest first
    assert [b.id for b in LocalArchives(site.state_dir).list() if not b.uploaded] == []
    assert len(remote_names(azurite, site.container)) == 4


def test_an_upload_cut_mid_transfer_fails_the_run_leaves_no_blob_and_is_retried_next_run(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite, azurite_proxy: FaultProxy
) -> None:
    site = make_site(tmp_path / "site", data, azurite)
    clock = Clock()
    via_proxy = azurite.account_url_via(azurite_proxy.port)
    azurite_proxy.cut_next_request_after(2048)
    result = runner(site, clock, account_url=via_proxy).run()
    assert not result.ok
    assert "broke mid-transfer" in result.errors[0]
    assert remote_names(azurite, site.container) == []
    assert no_partial_files(site)
    clock.advance(hours=1)
    result = runner(site, clock, account_url=via_proxy).run()
    assert result.ok, result.errors
    assert len(result.uploaded) == 2
    blobs = remote_blobs(azurite, site.container)
    assert ledger(site) == {name: blob.metadata["sha256"] for name, blob in blobs.items()}
    assert all("verified" not in blob.metadata for blob in blobs.values())


def test_remote_rotation_keeps_the_last_n_full_chains_in_azurite(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", data, azurite, keep_full=2, local_full=1)
    clock = Clock(datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    for _ in range(4):  # four days, each a daily and two hourlies
        for kind in (RequestedKind.DAILY, RequestedKind.HOURLY, RequestedKind.HOURLY):
            result = runner(site, clock).run(kind)
            assert result.ok, result.errors
            clock.advance(hours=1)
        clock.advance(hours=21)
    remote = [BackupId.parse(n) for n in remote_names(azurite, site.container)]
    days = sorted({i.timestamp.day for i in remote if i})
    assert days == [22, 23]  # the last two fulls and their incrementals
    assert len(remote) == 6
    local = [BackupId.parse(n) for n in local_names(site)]
    assert sorted({i.timestamp.day for i in local if i}) == [23]  # keep.local_full = 1


def test_lifecycle_retention_never_deletes_remotely(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(
        tmp_path / "site", data, azurite, retention="lifecycle", keep_full=1, local_full=1
    )
    clock = Clock()
    for _ in range(3):
        result = runner(site, clock).run(RequestedKind.DAILY)
        assert result.ok, result.errors
        assert result.deleted_remote == []
        clock.advance(days=1)
    assert len(remote_names(azurite, site.container)) == 3
    assert len(local_names(site)) == 1


def test_without_azure_local_copies_stay_bounded(tmp_path: Path, data: InfluxDB1) -> None:
    site = make_site(tmp_path / "site", data, local_full=2)
    clock = Clock()
    for _ in range(4):
        for kind in (RequestedKind.DAILY, RequestedKind.HOURLY):
            assert runner(site, clock).run(kind).ok
            clock.advance(hours=1)
        clock.advance(hours=22)
    assert len(local_names(site)) == 4  # two chains of a full and an hourly


def test_the_local_backlog_is_bounded_while_azure_is_unreachable(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite, azurite_proxy: FaultProxy
) -> None:
    site = make_site(tmp_path / "site", data, azurite, keep_full=2, local_full=1)
    clock = Clock()
    azurite_proxy.down()
    for _ in range(5):
        runner(site, clock, account_url=azurite.account_url_via(azurite_proxy.port)).run(
            RequestedKind.DAILY
        )
        clock.advance(days=1)
    # never uploaded, but older than what the remote rotation keeps: not kept forever
    assert len(local_names(site)) == 2


def test_an_unreachable_influxdb_is_one_clear_error_and_earlier_backups_are_untouched(
    tmp_path: Path, data: InfluxDB1
) -> None:
    site = make_site(tmp_path / "site", data)
    assert site.cli("run").exit_code == 0
    before = {p: p.read_bytes() for p in (site.state_dir / "archives").rglob("*.tar")}
    data.stop()
    failed = site.cli("run", "--kind", "hourly")
    assert failed.exit_code == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"homewatt-backup: error: InfluxDB ping: InfluxDB at {data.url} is "
        "unreachable (connection failed)"
    )
    assert "Traceback" not in failed.output
    assert {p: p.read_bytes() for p in (site.state_dir / "archives").rglob("*.tar")} == before
    assert no_partial_files(site)


def test_influxd_backup_failing_is_one_clear_error(tmp_path: Path, data: InfluxDB1) -> None:
    site = make_site(tmp_path / "site", data)
    site.config["influxdb"]["rpc_address"] = "127.0.0.1:9"  # nothing listens there
    site.save()
    failed = site.cli("run", "--kind", "daily")
    assert failed.exit_code == 1
    assert (
        "homewatt-backup: error: full backup: influxd's backup RPC at 127.0.0.1:9 is "
        "unreachable (Connection refused): InfluxDB 1.x must listen there"
    ) in failed.stderr
    assert local_names(site) == [] and no_partial_files(site)


def test_a_missing_influxdb_password_is_a_config_error_before_anything_starts(
    tmp_path: Path, data: InfluxDB1
) -> None:
    site = make_site(tmp_path / "site", data)
    site.config["influxdb"].update(username="backup", password_credential="influxdb-password")
    site.save()
    failed = site.cli("run")
    assert failed.exit_code == 1
    line = next(
        n
        for n, text in enumerate(site.config_path.read_text().splitlines(), 1)
        if "password_credential:" in text
    )
    assert failed.stderr.strip() == (
        f"homewatt-backup: error: {site.config_path}:{line}: influxdb.password_credential: "
        f"{site.credentials / 'influxdb-password'}: does not exist"
    )
    assert not (site.state_dir / "archives").exists()


def test_a_full_disk_is_one_clear_error_and_leaves_no_partial_file(
    tmp_path: Path, data: InfluxDB1, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path / "site", data)
    assert site.cli("run", "--kind", "daily").exit_code == 0
    before = local_names(site)

    def full_disk(self: tarfile.TarFile, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tarfile.TarFile, "addfile", full_disk)  # the disk fills mid-archive
    failed = site.cli("run", "--kind", "hourly")
    monkeypatch.undo()
    assert failed.exit_code == 1
    assert (
        "homewatt-backup: error: no space left on device while writing the archive" in failed.stderr
    )
    assert local_names(site) == before
    assert no_partial_files(site)


@pytest.fixture
def tiny_state_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount rights; CI runs as root)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip()}); the injected ENOSPC "
            "test covers the same path"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_really_full_file_system_is_one_clear_error(
    tmp_path: Path, influxdb1: InfluxDB1, tiny_state_fs: Path
) -> None:
    rnd = random.Random(5)
    start = int(datetime.now(UTC).timestamp()) - 3 * 3600
    influxdb1.write(
        DB,
        [
            f"electricity,device=m power_w={rnd.random()},voltage_v={rnd.random()},"
            f"current_a={rnd.random()} {start + i}"
            for i in range(6000)
        ],
    )
    site = make_site(tmp_path / "site", influxdb1)
    site.config["state_dir"] = str(tiny_state_fs)
    site.save()
    failed = CliRunner().invoke(
        app,
        [
            "--config",
            str(site.config_path),
            "--credentials-dir",
            str(site.credentials),
            "run",
            "--kind",
            "hourly",
        ],
    )
    assert failed.exit_code == 1
    assert "homewatt-backup: error: no space left on device while writing the" in failed.stderr
    assert [p for p in tiny_state_fs.rglob("*") if p.is_file() and p.name != "lock"] == []


def test_a_corrupted_local_archive_is_never_uploaded_and_is_set_aside(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", data, azurite)
    clock = Clock()
    result = runner(site, clock).run(RequestedKind.DAILY, upload=False)
    assert result.ok and result.backup is not None
    path = LocalArchives(site.state_dir).path_for(result.backup.id)
    raw = bytearray(path.read_bytes())
    raw[600] ^= 0xFF
    path.write_bytes(bytes(raw))
    clock.advance(hours=1)
    result = runner(site, clock).run(RequestedKind.HOURLY)
    assert not result.ok
    assert "no longer matches its SHA-256" in result.errors[0]
    assert path.with_name(path.name + ".corrupt").exists()
    remote = [BackupId.parse(n) for n in remote_names(azurite, site.container)]
    assert [i.kind for i in remote if i] == [Kind.HOURLY]


def corrupt_blob(azurite: Azurite, container: str, name: str) -> dict[str, str]:
    """Replace the blob's content, keeping its metadata (bit rot, or tampering); returns it."""
    blob = azurite.container(container).get_blob_client(name)
    metadata = dict(blob.get_blob_properties().metadata)
    content = bytearray(blob.download_blob().readall())
    content[700] ^= 0xFF
    blob.upload_blob(bytes(content), overwrite=True, metadata=metadata)
    return metadata


def list_states(site: Site) -> dict[str, tuple[str, str]]:
    listed = site.cli("list")
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    return {row[0]: (row[-2], row[-1]) for row in rows}


def test_verify_detects_a_corrupted_remote_archive_and_names_the_blob(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", data, azurite)
    assert site.cli("run", "--kind", "daily").exit_code == 0
    [name] = remote_names(azurite, site.container)
    ok = site.cli("verify", name)
    assert ok.exit_code == 0, ok.output
    assert f"{name}: OK" in ok.stdout
    metadata = corrupt_blob(azurite, site.container or "", name)
    bad = site.cli("verify", name)
    assert bad.exit_code == 1
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith(f"homewatt-backup: error: blob {name}: SHA-256 "), line
    assert line.endswith(
        f"does not match the recorded {metadata['sha256']}: the archive is corrupt; revoked"
    ), line
    # restore refuses it too, and leaves the target untouched
    data.drop_database(DB)
    shutil.rmtree(site.state_dir / "archives")
    refused = site.cli("restore", name)
    assert refused.exit_code == 1
    assert f"blob {name} failed verification at " in refused.stderr
    assert "not restored from it" in refused.stderr
    assert DB not in data.databases()


def test_a_failed_verify_revokes_the_blob_for_list_rotation_and_the_local_copy(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    """The field fault: after `verify` exited 1, `list` still said `uploaded verified` and
    rotation kept the corrupt blob as the newest good backup (so an older good one could go)."""
    data.write(DB, sample_lines(int(T0.timestamp()) - 1800, 30, step=60))
    site = make_site(tmp_path / "site", data, azurite)
    clock = Clock()
    assert runner(site, clock).run(RequestedKind.DAILY).ok
    [first] = remote_names(azurite, site.container)
    blob = corrupt_blob(azurite, site.container or "", first)
    assert list_states(site)[first] == ("uploaded", "verified")  # not checked since
    verified = site.cli("verify", "--all")
    assert verified.exit_code == 1 and f"blob {first}: SHA-256" in verified.stderr
    assert list_states(site)[first] == ("pending", "revoked")  # one truth, both places
    ledger = VerificationLedger(site.state_dir)
    assert first in ledger.revoked() and first not in ledger.verified()
    store = AzureBlobStore(
        azurite.account_url,
        site.container or "",
        azurite.sas(site.container or "", "rcwdl", timedelta(hours=1)),
        "test SAS",
    )
    [remote] = store.list(f"{SITE}/")
    legacy = replace(remote, metadata={**blob, LEGACY_VERIFIED_KEY: "2026-11-23T02:30:00Z"})
    assert not legacy.is_verified(ledger.verified(), ledger.revoked())  # no "good" for rotation

    # the next run uploads the archive again as `.r1` (create-only: the revoked blob cannot be
    # replaced), verifies it, and in rotation mode then deletes the revoked blob
    clock.advance(hours=1)
    result = runner(site, clock).run(RequestedKind.HOURLY)
    assert result.ok, result.errors
    replacement = first.replace(".tar", ".r1.tar")
    remote = remote_names(azurite, site.container)
    assert replacement in remote and first not in remote
    states = list_states(site)
    assert states[replacement] == ("uploaded", "verified")
    assert all(state == ("uploaded", "verified") for state in states.values()), states

    # the whole cycle ends in a restore from the replacement, every point back
    expected = data.points(DB, "electricity")
    assert len(expected) == 80 * 3  # 50 + 30 timestamps, 3 electricity series
    data.drop_database(DB)
    shutil.rmtree(site.state_dir / "archives")  # a rebuilt Pi: only the blobs are left
    restored = site.cli("restore", "--at", "2026-11-23T03:45:00Z")
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.split(": ")[1].split(", ")[0] == first  # the backup, from its .r1
    assert data.points(DB, "electricity") == expected


def test_a_revoked_blob_is_kept_in_lifecycle_mode_and_restore_uses_its_replacement(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    data.write(DB, sample_lines(int(T0.timestamp()) - 1800, 30, step=60))
    site = make_site(tmp_path / "site", data, azurite, retention="lifecycle")
    clock = Clock()
    assert runner(site, clock).run(RequestedKind.DAILY).ok
    [first] = remote_names(azurite, site.container)
    corrupt_blob(azurite, site.container or "", first)
    assert site.cli("verify", first).exit_code == 1
    clock.advance(hours=1)
    assert runner(site, clock).run(RequestedKind.HOURLY).ok
    replacement = first.replace(".tar", ".r1.tar")
    states = list_states(site)
    assert states[first] == ("uploaded", "revoked")  # no delete right: it stays, ignored
    assert states[replacement] == ("uploaded", "verified")
    expected = data.points(DB, "electricity")
    data.drop_database(DB)
    shutil.rmtree(site.state_dir / "archives")
    restored = site.cli("restore", first, "--target", DB)
    assert restored.exit_code == 0, restored.output
    assert data.points(DB, "electricity") == expected  # from the .r1 copy


def test_restore_at_skips_a_revoked_blob(tmp_path: Path, data: InfluxDB1, azurite: Azurite) -> None:
    data.write(DB, sample_lines(int(T0.timestamp()) - 1800, 30, step=60))
    site = make_site(tmp_path / "site", data, azurite)
    clock = Clock()
    assert runner(site, clock).run(RequestedKind.DAILY).ok
    clock.advance(hours=1)
    assert runner(site, clock).run(RequestedKind.DAILY).ok
    older, newer = remote_names(azurite, site.container)
    corrupt_blob(azurite, site.container or "", newer)
    assert site.cli("verify", newer).exit_code == 1
    shutil.rmtree(site.state_dir / "archives")  # a rebuilt Pi: only the blobs are left
    at = (clock() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    restored = site.cli("restore", "--at", at, "--target", "restored")
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.strip() == f"restored 1 backups into restored: {older}"


def test_an_unusable_state_directory_fails_the_run_and_still_writes_the_health_point(
    tmp_path: Path, data: InfluxDB1
) -> None:
    site = make_site(tmp_path / "site", data)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(site.config_path),
            "--credentials-dir",
            str(site.credentials),
            "--state-dir",
            str(blocker),
            "run",
        ],
    )
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"homewatt-backup: error: opening the state directory {blocker} failed")
    )
    [series] = data.query("SELECT ok, kind FROM homewatt_backup", db=DB)[0]["series"]
    assert [row[1:] for row in series["values"]] == [[0, "hourly"]]


def test_a_second_run_while_one_holds_the_lock_is_refused(tmp_path: Path, data: InfluxDB1) -> None:
    site = make_site(tmp_path / "site", data)
    site.state_dir.mkdir(parents=True)
    with (site.state_dir / "lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = site.cli("run")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"homewatt-backup: error: another homewatt-backup run holds {site.state_dir / 'lock'}"
    )
    assert not (site.state_dir / "archives").exists()


def test_a_run_in_the_second_of_an_existing_archive_waits_for_a_free_second(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    """Archives are named to the second and never overwritten. A run in the same second as the
    last one (CI saw a run finish within its second and the next start in it: "already exists",
    exit 1), or on a clock stepped back onto earlier runs' seconds, waits for a free second."""
    site = make_site(tmp_path / "site", data, azurite)
    clock = Clock(T0 + timedelta(microseconds=250_000))
    for _ in range(2):
        result = runner(site, clock).run()
        assert result.ok, result.errors
    assert clock.slept == [0.75]  # to the next second, not a whole one
    clock.now = T0 + timedelta(microseconds=500)  # NTP steps back onto both runs' seconds
    result = runner(site, clock).run()
    assert result.ok, result.errors
    assert clock.slept == [0.75, 0.9995, 1.0]
    stamps = sorted(
        b.id.timestamp.replace(microsecond=0) for b in LocalArchives(site.state_dir).list()
    )
    assert stamps == [T0 + timedelta(seconds=s) for s in (0, 1, 2)]
    assert len(remote_names(azurite, site.container)) == 3


def test_a_stuck_clock_on_a_taken_second_is_one_clear_error_and_nothing_is_overwritten(
    tmp_path: Path, data: InfluxDB1
) -> None:
    site = make_site(tmp_path / "site", data)
    clock = Clock()
    assert runner(site, clock).run().ok
    before = {p: p.stat().st_mtime_ns for p in site.state_dir.rglob("*.tar")}
    clock.stuck = True
    result = runner(site, clock).run()
    assert result.errors == [
        "no free second to name this run's archive: 20261123T023000Z is still taken by an "
        "existing archive after 3 waits for the next second; is the system clock stuck?"
    ]
    assert len(clock.slept) == 3
    assert {p: p.stat().st_mtime_ns for p in site.state_dir.rglob("*.tar")} == before
    assert no_partial_files(site)


# --- verification: recorded locally, never by writing to the blob --------------------------------


def test_a_blob_is_never_written_to_after_its_create_only_upload(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite, azurite_proxy: FaultProxy
) -> None:
    """No Set Blob Metadata (refused on an immutable blob, a new version where versioning is
    on) and no second write of any kind: every request the app sends to a blob, as the fault
    proxy saw it, is one PUT (the upload) followed by reads; the ETag taken right after the
    upload is the blob's ETag after the run."""
    site = make_site(tmp_path / "site", data, azurite, retention="lifecycle")
    clock = Clock()
    via_proxy = azurite.account_url_via(azurite_proxy.port)
    etags: dict[str, str] = {}
    for kind in (RequestedKind.DAILY, RequestedKind.HOURLY):
        result = runner(site, clock, account_url=via_proxy, etags=etags).run(kind)
        assert result.ok, result.errors
        clock.advance(hours=1)
    blobs = remote_blobs(azurite, site.container)
    assert len(blobs) == 2 and set(etags) == set(blobs)
    per_blob = requests_per_blob(azurite_proxy.stats.log, site.container or "")
    assert set(per_blob) == set(blobs)
    for name, requests in per_blob.items():
        assert requests[0] == "PUT", (name, requests)  # Put Blob, create-only
        assert all(r.startswith(("GET", "HEAD")) for r in requests[1:]), (name, requests)
        now = azurite.container(site.container or "").get_blob_client(name).get_blob_properties()
        assert now.etag == etags[name], name
        assert "verified" not in blobs[name].metadata
    assert not any("comp=metadata" in target for _, target in azurite_proxy.stats.log)
    # verified all the same: in the ledger, with the SHA-256 the upload stored
    assert ledger(site) == {name: blob.metadata["sha256"] for name, blob in blobs.items()}


def test_the_verification_state_survives_a_restart_through_the_ledger(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", data, azurite)
    ran = site.cli("run", "--kind", "daily")
    assert ran.exit_code == 0, ran.output
    [name] = remote_blobs(azurite, site.container)
    listing = site.cli("list")  # a new process: nothing but the state directory carries over
    assert listing.exit_code == 0, listing.output
    [row] = [line.split() for line in listing.stdout.splitlines() if line.startswith(name)]
    assert row[-2:] == ["uploaded", "verified"]
    # the blob itself says nothing about it: without the ledger it is unverified
    (site.state_dir / LEDGER_NAME).rename(tmp_path / "ledger-away")
    listing = site.cli("list")
    [row] = [line.split() for line in listing.stdout.splitlines() if line.startswith(name)]
    assert row[-2:] == ["uploaded", "unverified"]


def test_verify_records_an_intact_backup_in_the_ledger_and_a_corrupt_one_not(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", data, azurite)
    assert site.cli("run", "--kind", "daily").exit_code == 0
    [name] = remote_blobs(azurite, site.container)
    # an unverified copy of it under another name, and no ledger (a new SD card, say)
    made = BackupId.parse(name)
    assert made is not None
    other = BackupId(made.timestamp - timedelta(hours=1), made.kind, made.site).name
    sha = inject_blob(azurite, site, name, other)["sha256"]
    (site.state_dir / LEDGER_NAME).unlink()
    checked = site.cli("verify", "--all")
    assert checked.exit_code == 0, checked.output
    assert ledger(site) == {name: sha, other: sha}
    listing = site.cli("list")
    assert listing.stdout.count(" verified") == 2 and "unverified" not in listing.stdout
    # a corrupt blob is not recorded
    (site.state_dir / LEDGER_NAME).unlink()
    blob = azurite.container(site.container or "").get_blob_client(other)
    metadata = blob.get_blob_properties().metadata
    content = bytearray(blob.download_blob().readall())
    content[700] ^= 0xFF
    blob.upload_blob(bytes(content), overwrite=True, metadata=metadata)
    assert site.cli("verify", other).exit_code == 1
    assert site.cli("verify", name).exit_code == 0
    assert ledger(site) == {name: sha}


def test_rotation_counts_a_full_as_good_only_through_the_ledger(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    """keep.full = 1 with newer fulls unverified: the older full in the ledger is the newest
    good full and stays; once the ledger revokes it, nothing protects it."""
    site = make_site(tmp_path / "site", data, azurite, keep_full=1, local_full=1)
    clock = Clock(datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    result = runner(site, clock).run(RequestedKind.DAILY)
    assert result.ok and result.backup is not None
    first = result.backup.id.name
    unverified = [first.replace("20261120", day) for day in ("20261121", "20261122")]
    for name in unverified:  # uploaded, never verified (e.g. by a run that died right then)
        inject_blob(azurite, site, first, name)
    clock.now = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    result = runner(site, clock).run(RequestedKind.HOURLY)
    assert result.ok, result.errors
    assert result.backup is not None
    hourly = result.backup.id.name
    # kept: the newest full, the newest verified full (in the ledger), the hourly after them
    assert sorted(remote_blobs(azurite, site.container)) == sorted([first, unverified[1], hourly])
    assert [i.name for i in result.deleted_remote] == [unverified[0]]

    # a verify that found it corrupt revokes it (pruning its entry would not do: the local
    # archive's `.uploaded` marker records it again, see Runner.reconcile), and with no local
    # copy left to upload again, nothing protects it
    VerificationLedger(site.state_dir).revoke(first, "00" * 32, clock(), "found corrupt")
    first_id = BackupId.parse(first)
    assert first_id is not None
    LocalArchives(site.state_dir).delete(first_id)
    clock.advance(hours=1)
    result = runner(site, clock).run(RequestedKind.HOURLY)
    assert result.ok, result.errors
    assert first not in remote_blobs(azurite, site.container)


def test_a_blob_verified_by_an_older_version_still_counts_through_its_metadata(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    """Blobs made before the ledger carry `verified` in their metadata: still good."""
    site = make_site(tmp_path / "site", data, azurite, keep_full=1, local_full=1)
    clock = Clock(datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    result = runner(site, clock).run(RequestedKind.DAILY)
    assert result.ok and result.backup is not None
    first = result.backup.id.name
    legacy = first.replace("T03", "T01")  # as the old code left it: metadata `verified`
    inject_blob(azurite, site, first, legacy, verified="2026-11-20T01:00:09Z")
    newer = first.replace("20261120", "20261122")
    inject_blob(azurite, site, first, newer)  # a newer full, unverified
    azurite.container(site.container or "").delete_blob(first)
    (site.state_dir / LEDGER_NAME).unlink()
    listing = site.cli("list")
    states = {line.split()[0]: line.split()[-1] for line in listing.stdout.splitlines()[1:]}
    assert states[legacy] == "verified" and states[newer] == "unverified"
    clock.now = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    result = runner(site, clock).run(RequestedKind.HOURLY)
    assert result.ok, result.errors
    assert result.deleted_remote == []  # the legacy-verified full is the newest good full
    assert legacy in remote_blobs(azurite, site.container)


def test_the_ledger_is_pruned_of_backups_gone_from_the_container(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", data, azurite, retention="lifecycle")
    clock = Clock()
    for kind in (RequestedKind.DAILY, RequestedKind.HOURLY):
        assert runner(site, clock).run(kind).ok
        clock.advance(hours=1)
    [daily] = [name for name in ledger(site) if "/daily/" in name]
    [hourly] = [name for name in ledger(site) if "/hourly/" in name]
    azurite.container(site.container or "").delete_blob(daily)  # the lifecycle policy's doing
    result = runner(site, clock).run(RequestedKind.HOURLY)
    assert result.ok, result.errors
    assert set(ledger(site)) == set(remote_blobs(azurite, site.container))
    assert daily not in ledger(site) and hourly in ledger(site)


def test_a_damaged_ledger_is_set_aside_and_rebuilt_from_the_local_markers(
    tmp_path: Path, data: InfluxDB1, azurite: Azurite
) -> None:
    data.write(DB, sample_lines(int(T0.timestamp()) - 1800, 30, step=60))
    site = make_site(tmp_path / "site", data, azurite)
    clock = Clock()
    assert runner(site, clock).run(RequestedKind.DAILY).ok
    [first] = remote_names(azurite, site.container)
    ledger = site.state_dir / LEDGER_NAME
    ledger.write_bytes(b"\x00" * 37 + b"\n" + b'{"name": trunc\n')  # a bad block, a cut write
    clock.advance(hours=1)
    result = runner(site, clock).run(RequestedKind.HOURLY)
    assert result.ok, result.errors
    [aside] = site.state_dir.glob(f"{LEDGER_NAME}.damaged-*")
    assert aside.read_bytes().startswith(b"\x00" * 37)
    states = list_states(site)
    assert states[first] == ("uploaded", "verified")  # re-recorded from its marker
    assert len(states) == 2 and all(s == ("uploaded", "verified") for s in states.values())


def test_the_health_point_carries_the_days_until_the_sas_expires_only_with_azure() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    sas = "sv=2024-08-04&sr=c&sp=rcwl&se=2026-12-23T15%3A00%3A00Z&sig=abc%3D"
    assert sas_expires_in_days(sas, now) == 30.5
    assert sas_expires_in_days("?" + sas, now + timedelta(days=31)) == -0.5  # expired
    assert sas_expires_in_days(None, now) is None
    assert sas_expires_in_days("sv=2024-08-04&sp=rl&sig=abc", now) is None  # no se=
    line = health_line(
        "home",
        Kind.HOURLY,
        ok=True,
        duration_s=1.5,
        size=10,
        pending=0,
        timestamp=1,
        sas_expires_in_days=30.5,
    )
    assert line == (
        "homewatt_backup,kind=hourly,site=home bytes=10i,duration_s=1.5,ok=1i,"
        "pending_uploads=0i,sas_expires_in_days=30.5 1"
    )
