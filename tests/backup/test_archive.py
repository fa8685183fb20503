"""Local archives: written atomically, never overwritten, every corruption detected, and a
failure leaves nothing half-written."""

from __future__ import annotations

import errno
import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from homewatt_backup.archive import LocalArchives, check_archive, write_archive
from homewatt_backup.errors import ArchiveError, CorruptArchiveError
from homewatt_backup.models import MANIFEST_MEMBER, Engine, Kind, Manifest

CREATED = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def manifest(kind: Kind = Kind.HOURLY) -> Manifest:
    return Manifest(
        "home", kind, CREATED, Engine.INFLUXDB1, "1.6.7", "homewatt", None, CREATED, "s", ()
    )


def payload(tmp_path: Path) -> list[tuple[str, Path]]:
    one, two = tmp_path / "one.bin", tmp_path / "two.bin"
    one.write_bytes(os.urandom(5000))
    two.write_bytes(b"line protocol\n" * 100)
    return [("data.lp.gz", one), ("influxdb1/x.manifest", two)]


def test_an_archive_holds_the_manifest_first_and_verifies_and_extracts(tmp_path: Path) -> None:
    archives = LocalArchives(tmp_path / "state")
    archives.prepare()
    backup = archives.write(manifest(), payload(tmp_path))
    path = archives.path_for(backup.id)
    assert path == tmp_path / "state/archives/home/hourly/20261123T190000Z.tar"
    with tarfile.open(path) as tar:
        assert tar.getnames() == [MANIFEST_MEMBER, "data.lp.gz", "influxdb1/x.manifest"]
    assert [b.id for b in archives.list()] == [backup.id]
    out = tmp_path / "out"
    out.mkdir()
    checked = check_archive(path, backup.record.sha256, out)
    assert [f.name for f in checked.files] == ["data.lp.gz", "influxdb1/x.manifest"]
    assert (out / "data.lp.gz").read_bytes() == (tmp_path / "one.bin").read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600  # holds all the data: owner only


def test_an_archive_is_never_overwritten(tmp_path: Path) -> None:
    archives = LocalArchives(tmp_path / "state")
    archives.prepare()
    first = archives.write(manifest(), payload(tmp_path))
    original = archives.path_for(first.id).read_bytes()
    with pytest.raises(ArchiveError, match="already exists: an archive is never overwritten"):
        archives.write(manifest(), payload(tmp_path))
    assert archives.path_for(first.id).read_bytes() == original
    assert sorted(p.name for p in archives.path_for(first.id).parent.iterdir()) == [
        "20261123T190000Z.tar",
        "20261123T190000Z.tar.json",
    ]


def test_a_flipped_byte_anywhere_is_detected_by_the_whole_file_checksum(tmp_path: Path) -> None:
    archives = LocalArchives(tmp_path / "state")
    archives.prepare()
    backup = archives.write(manifest(), payload(tmp_path))
    path = archives.path_for(backup.id)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError, match="does not match the recorded"):
        check_archive(path, backup.record.sha256)


def test_a_tampered_member_is_detected_by_the_manifest_and_nothing_is_extracted(
    tmp_path: Path,
) -> None:
    items = payload(tmp_path)
    path = tmp_path / "a.tar"
    write_archive(path, manifest(), items)
    items[1][1].write_bytes(b"something else")
    forged = tmp_path / "forged.tar"
    with tarfile.open(path) as src, tarfile.open(forged, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            if member.name == "influxdb1/x.manifest":
                member.size = len(b"something else")
                dst.addfile(member, items[1][1].open("rb"))
            else:
                dst.addfile(member, data)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(
        CorruptArchiveError, match=r"member 'influxdb1/x\.manifest' does not match its manifest "
    ):
        check_archive(forged, None, out)
    assert list(out.rglob("*.bin")) == [] and not (out / "data.lp.gz").exists()


def test_a_truncated_archive_is_not_readable(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    write_archive(path, manifest(), payload(tmp_path))
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(CorruptArchiveError):
        check_archive(path)


def test_a_full_disk_while_writing_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archives = LocalArchives(tmp_path / "state")
    archives.prepare()
    items = payload(tmp_path)
    real_fsync = os.fsync

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(ArchiveError, match=r"^no space left on device while writing the archive"):
        archives.write(manifest(), items)
    monkeypatch.setattr(os, "fsync", real_fsync)
    leftovers = [p for p in (tmp_path / "state/archives").rglob("*") if p.is_file()]
    assert leftovers == []


def test_prepare_clears_leftovers_of_an_interrupted_run(tmp_path: Path) -> None:
    archives = LocalArchives(tmp_path / "state")
    archives.prepare()
    kept = archives.write(manifest(Kind.DAILY), payload(tmp_path))
    folder = archives.path_for(kept.id).parent
    (folder / ".20261123T200000Z.tar.99.partial").write_bytes(b"half")
    (folder / "20261123T200000Z.tar.json").write_bytes(b"{}")  # record of a never-made archive
    (archives.tmp / "daily-x").mkdir()
    archives.prepare()
    assert sorted(p.name for p in folder.iterdir()) == [
        "20261123T190000Z.tar",
        "20261123T190000Z.tar.json",
    ]
    assert list(archives.tmp.iterdir()) == []
