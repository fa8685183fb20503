"""Local archives: one tar file per backup, a manifest as its first member, a JSON record
beside it (the whole file's SHA-256, size, MD5), written atomically and never overwritten.

Layout under the state directory:
    archives/<site>/<kind>/<YYYYMMDDTHHMMSSZ>.tar            the archive (complete when present)
    archives/<site>/<kind>/<YYYYMMDDTHHMMSSZ>.tar.json       its record (written before the tar)
    archives/<site>/<kind>/<YYYYMMDDTHHMMSSZ>.tar.uploaded   marker: uploaded and verified
    tmp/                                                     staging, emptied at every run
    verified.jsonl                                           the verification ledger (ledger.py)
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import IO

from homewatt_backup.errors import ArchiveError, CorruptArchiveError, from_oserror
from homewatt_backup.models import (
    MANIFEST_MEMBER,
    ArchiveRecord,
    BackupId,
    FileEntry,
    LocalBackup,
    Manifest,
)

CHUNK = 1 << 20


def file_digests(path: Path) -> tuple[str, str, int]:
    """(SHA-256 hex, MD5 base64, size) of a file, read once."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), base64.b64encode(md5.digest()).decode(), size


def sha256_file(path: Path) -> str:
    return file_digests(path)[0]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _safe_member_name(name: str) -> bool:
    pure = PurePosixPath(name)
    return bool(name) and not pure.is_absolute() and ".." not in pure.parts


def _create_private(path: Path) -> IO[bytes]:
    """A new file (never an existing one) readable by its owner only: backups hold all data."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _write_tar(temp: Path, manifest: Manifest, items: list[tuple[str, Path]]) -> None:
    raw = manifest.to_json()
    mtime = int(manifest.created.timestamp())
    with _create_private(temp) as handle:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(MANIFEST_MEMBER)
            info.size, info.mode, info.mtime = len(raw), 0o600, mtime
            tar.addfile(info, io.BytesIO(raw))
            for (name, path), entry in zip(items, manifest.files, strict=True):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = entry.size, 0o600, mtime
                with path.open("rb") as source:
                    tar.addfile(info, source)
        handle.flush()
        os.fsync(handle.fileno())


def _write_record(temp: Path, record: ArchiveRecord) -> None:
    with _create_private(temp) as handle:
        handle.write(record.to_json())
        handle.flush()
        os.fsync(handle.fileno())


def write_archive(
    final: Path, manifest: Manifest, payload: Iterable[tuple[str, Path]]
) -> ArchiveRecord:
    """Write `final` (temp + fsync + link: never overwrites) and its record beside it.

    `payload` is (name in archive, local file). On any failure nothing is left behind.
    """
    record_path = final.with_name(final.name + ".json")
    if final.exists() or record_path.exists():
        raise ArchiveError(f"{final} already exists: an archive is never overwritten")
    items = list(payload)
    temp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    temp_record = final.with_name(f".{final.name}.{os.getpid()}.json.partial")
    created: list[Path] = []
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        entries = []
        for name, path in items:
            if not _safe_member_name(name):
                raise ArchiveError(f"unsafe archive member name {name!r}")
            sha, _, size = file_digests(path)
            entries.append(FileEntry(name, size, sha))
        manifest = replace(manifest, files=tuple(entries))
        created.append(temp)
        _write_tar(temp, manifest, items)
        sha, md5, size = file_digests(temp)
        record = ArchiveRecord(manifest, sha, size, md5)
        created.append(temp_record)
        _write_record(temp_record, record)
        os.link(temp_record, record_path)  # fails if it exists: never overwrite
        created.append(record_path)
        os.link(temp, final)
        created.append(final)
        for path in (temp, temp_record):
            path.unlink()
        fsync_dir(final.parent)
        return record
    except FileExistsError:
        _remove(created)
        raise ArchiveError(f"{final} already exists: an archive is never overwritten") from None
    except OSError as exc:
        _remove(created)
        raise from_oserror(exc, f"writing the archive {final}") from None
    except BaseException:
        _remove(created)
        raise


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _hash_stream(source: IO[bytes], sink: IO[bytes] | None) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        sha.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return sha.hexdigest(), size


def _check_members(
    tar: tarfile.TarFile,
    first: tarfile.TarInfo,
    manifest: Manifest,
    label: str,
    *,
    extract_to: Path | None,
    made: list[Path],
) -> None:
    expected = {f.name: f for f in manifest.files}
    seen: set[str] = set()
    for member in tar:
        if member is first:
            continue
        name = member.name
        if not member.isfile() or not _safe_member_name(name) or name not in expected:
            raise CorruptArchiveError(f"{label}: unexpected member {name!r}")
        if name in seen:
            raise CorruptArchiveError(f"{label}: member {name!r} appears twice")
        seen.add(name)
        source = tar.extractfile(member)
        assert source is not None
        if extract_to is not None:
            target = extract_to / name
            target.parent.mkdir(parents=True, exist_ok=True)
            made.append(target)
            with target.open("xb") as sink:
                sha, size = _hash_stream(source, sink)
        else:
            sha, size = _hash_stream(source, None)
        entry = expected[name]
        if sha != entry.sha256 or size != entry.size:
            raise CorruptArchiveError(
                f"{label}: member {name!r} does not match its "
                "manifest checksum: the archive is corrupt"
            )
    missing = sorted(set(expected) - seen)
    if missing:
        raise CorruptArchiveError(f"{label}: members missing: {', '.join(missing)}")


def check_archive(
    path: Path,
    expected_sha256: str | None = None,
    extract_to: Path | None = None,
    label: str | None = None,
) -> Manifest:
    """Verify an archive (whole-file SHA-256 if given, then every member against the manifest)
    and optionally extract it. Raises CorruptArchiveError naming what does not match, in
    full, about `label` (what the archive is to the user, e.g. `blob home/daily/….tar`; by
    default the file's path); a failed extraction leaves nothing in `extract_to`."""
    label = label or str(path)
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CorruptArchiveError(
                f"{label}: SHA-256 {actual} does not match the "
                f"recorded {expected_sha256}: the archive is corrupt"
            )
    made: list[Path] = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST_MEMBER or not first.isfile():
                raise CorruptArchiveError(f"{label}: no manifest as the first member")
            handle = tar.extractfile(first)
            assert handle is not None
            try:
                manifest = Manifest.from_json(handle.read())
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptArchiveError(f"{label}: unreadable manifest ({exc})") from None
            _check_members(tar, first, manifest, label, extract_to=extract_to, made=made)
            return manifest
    except (tarfile.TarError, EOFError) as exc:
        _remove(made)
        raise CorruptArchiveError(f"{label}: not a readable archive ({exc})") from None
    except OSError as exc:
        _remove(made)
        raise from_oserror(exc, f"reading the archive {path}") from None
    except BaseException:
        _remove(made)
        raise


class LocalArchives:
    """The archives kept in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "archives"
        self.tmp = state_dir / "tmp"

    def path_for(self, backup_id: BackupId) -> Path:
        return self.root / backup_id.name

    def _marker(self, backup_id: BackupId) -> Path:
        path = self.path_for(backup_id)
        return path.with_name(path.name + ".uploaded")

    def _record_path(self, backup_id: BackupId) -> Path:
        path = self.path_for(backup_id)
        return path.with_name(path.name + ".json")

    def prepare(self) -> None:
        """Create the layout, empty tmp/ and drop leftovers of an interrupted run."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir(mode=0o700)
            for leftover in self.root.rglob(".*.partial"):
                leftover.unlink()
            for record in self.root.rglob("*.tar.json"):
                if not record.with_name(record.name.removesuffix(".json")).exists():
                    record.unlink()  # a record whose archive was never completed
        except OSError as exc:
            raise from_oserror(exc, f"preparing the state directory {self.state_dir}") from None

    def list(self) -> list[LocalBackup]:
        """Complete local archives, oldest first."""
        out: list[LocalBackup] = []
        try:
            if not self.root.is_dir():
                return out
            paths = list(self.root.rglob("*.tar"))
        except OSError as exc:
            raise from_oserror(exc, f"reading the local archives in {self.root}") from None
        for path in paths:
            backup_id = BackupId.parse(path.relative_to(self.root).as_posix())
            if backup_id is None:
                continue
            try:
                record = ArchiveRecord.from_json(self._record_path(backup_id).read_bytes())
            except (OSError, ValueError, KeyError) as exc:
                raise CorruptArchiveError(
                    f"{path}: its record is missing or unreadable ({exc})"
                ) from None
            out.append(LocalBackup(backup_id, record, self._marker(backup_id).exists()))
        return sorted(out, key=lambda b: b.id)

    def write(self, manifest: Manifest, payload: Iterable[tuple[str, Path]]) -> LocalBackup:
        record = write_archive(self.path_for(manifest.backup_id), manifest, payload)
        return LocalBackup(manifest.backup_id, record, uploaded=False)

    def unmark_uploaded(self, backup_id: BackupId) -> None:
        """Its blob was revoked: the archive is no longer uploaded and verified."""
        _remove([self._marker(backup_id)])

    def mark_uploaded(self, backup_id: BackupId, when: str) -> None:
        marker = self._marker(backup_id)
        temp = marker.with_name(f".{marker.name}.partial")
        try:
            temp.write_text(when + "\n")
            temp.replace(marker)
        except OSError as exc:
            raise from_oserror(exc, f"recording the upload of {backup_id.name}") from None

    def delete(self, backup_id: BackupId) -> None:
        path = self.path_for(backup_id)
        # the archive first: a record or marker without it is cleaned by prepare()
        _remove([path, self._marker(backup_id), self._record_path(backup_id)])

    def staging(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(mode=0o700, parents=True, exist_ok=False)
        return path


@contextlib.contextmanager
def temporary_dir(parent: Path | None, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def open_text_gzip(path: Path) -> IO[str]:
    """A new gzip file (level 6) for writing UTF-8 text with "\n" line ends."""
    return io.TextIOWrapper(gzip.open(path, "wb", compresslevel=6), encoding="utf-8", newline="\n")
