"""The verification ledger: which remote backups were downloaded again and found intact.

A blob is never written to after its create-only upload (an immutability policy refuses Set
Blob Metadata, and with versioning every write leaves a version behind), so a successful
verification (after upload, or by `homewatt-backup verify`) is recorded here, in the state
directory, instead of in the blob.

`<state_dir>/verified.jsonl`: one JSON object per line, appended and fsynced,
    {"name": "<site>/<kind>/<ts>.tar", "sha256": "<hex>", "verified": "<ISO 8601 UTC>"}
or, when a later download found the blob corrupt, its revocation:
    {"name": ..., "sha256": "<hex the blob claims>", "revoked": "<ISO 8601 UTC>", "reason": ...}
A later line for the same name wins: a revoked blob is no longer verified, whatever came
before (and whatever legacy metadata it carries). A torn last line (a crash mid-append) is
ignored, and cut off by the next append (never glued to the next entry). Any other line that
is not an entry means the file is damaged: it is moved aside
(`verified.jsonl.damaged-<UTC timestamp>-<pid>`, one warning naming both files) and rewritten
from the entries it still holds; the runner then adds back what the local `.uploaded` markers
say (see Runner.reconcile). Pruning (names no longer in the remote
listing) rewrites the file atomically (temp file, fsync, rename, fsync of the directory).
Appends and rewrites hold an exclusive flock on the state directory itself, so a `verify`
running beside a backup run never loses an entry. Run as root (an operator's `sudo
homewatt-backup verify`), a file it creates gets the state directory's owner, so the service's
own user can still write it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from homewatt_backup.archive import fsync_dir
from homewatt_backup.errors import from_oserror
from homewatt_backup.models import iso, utc_now
from homewatt_common.ownership import hand_over

LEDGER_NAME = "verified.jsonl"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerEntry:
    """One verdict on one blob: verified (intact) or revoked (a download found it corrupt,
    `reason` says how), at `when` (ISO 8601 UTC)."""

    name: str
    sha256: str
    when: str
    revoked: bool = False
    reason: str = ""

    def to_line(self) -> bytes:
        data = {"name": self.name, "sha256": self.sha256}
        if self.revoked:
            data.update(revoked=self.when, reason=self.reason)
        else:
            data["verified"] = self.when
        return json.dumps(data, sort_keys=True).encode() + b"\n"


def _parse(line: bytes) -> LedgerEntry | None:
    try:
        data = json.loads(line)
        name, sha256 = str(data["name"]), str(data["sha256"])
        if "revoked" in data:
            entry = LedgerEntry(name, sha256, str(data["revoked"]), True, str(data["reason"]))
        else:
            entry = LedgerEntry(name, sha256, str(data["verified"]))
    except (ValueError, KeyError, TypeError):
        return None
    return entry if entry.name else None


def _latest(raw: bytes) -> tuple[dict[str, LedgerEntry], int]:
    """The latest entry per name, and how many complete lines were not entries (damage)."""
    latest: dict[str, LedgerEntry] = {}
    damaged = 0
    # the part after the last newline is empty or a torn append: never an entry
    for line in raw.split(b"\n")[:-1]:
        if not line.strip():
            continue
        entry = _parse(line)
        if entry is None:
            damaged += 1
            continue
        latest.pop(entry.name, None)  # the latest entry, at its place in the file
        latest[entry.name] = entry
    return latest, damaged


class VerificationLedger:
    """The ledger of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LEDGER_NAME

    # ---- reading
    def _raw(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise from_oserror(exc, f"reading the verification ledger {self.path}") from None

    def entries(self) -> dict[str, LedgerEntry]:
        """name -> its latest entry (in the order of those entries). A damaged file is set
        aside and rewritten first (see the module docstring)."""
        raw = self._raw() or b""
        latest, damaged = _latest(raw)
        if damaged:
            self._set_aside(raw, damaged)
            latest, _ = _latest(self._raw() or b"")
        return latest

    def verified(self) -> dict[str, str]:
        """name -> SHA-256 verified last, revoked ones left out (RemoteBackup.is_verified)."""
        return {name: e.sha256 for name, e in self.entries().items() if not e.revoked}

    def revoked(self) -> dict[str, LedgerEntry]:
        """name -> its revocation, for every name whose latest verdict is a revocation."""
        return {name: e for name, e in self.entries().items() if e.revoked}

    def _set_aside(self, raw: bytes, damaged: int) -> None:
        with self._locked(f"setting the damaged verification ledger {self.path} aside"):
            if self.path.read_bytes() != raw:
                return  # rewritten meanwhile by another process
            stamp = (iso(utc_now()) or "").replace(":", "").replace("-", "")
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{os.getpid()}")
            aside.unlink(missing_ok=True)
            os.link(self.path, aside)
            self._rewrite(b"".join(e.to_line() for e in _latest(raw)[0].values()))
        log.warning(
            "the verification ledger %s held %d unreadable line(s): moved aside to %s and "
            "rewritten from its readable entries",
            self.path,
            damaged,
            aside,
        )

    # ---- writing
    @contextlib.contextmanager
    def _locked(self, action: str) -> Iterator[None]:
        """Hold the ledger's lock; an OSError inside becomes one clear error naming `action`."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise from_oserror(exc, action) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            except OSError as exc:
                raise from_oserror(exc, action) from None
        finally:
            os.close(fd)  # releases the lock

    def _own(self, path: Path) -> None:
        """Root creating a file in a state directory owned by the service's user: hand it over
        (else the service could no longer append to or rewrite it)."""
        hand_over([path], self.state_dir)

    def record(self, name: str, sha256: str, when: datetime) -> None:
        """Append `name` as verified with this SHA-256 (durable when this returns)."""
        self._append(LedgerEntry(name, sha256, iso(when) or ""), "verification")

    def revoke(self, name: str, sha256: str, when: datetime, reason: str) -> None:
        """Append `name` as revoked: a download found it corrupt (`reason`, one line)."""
        self._append(LedgerEntry(name, sha256, iso(when) or "", True, reason), "revocation")

    def _append(self, entry: LedgerEntry, what: str) -> None:
        with self._locked(f"recording the {what} of {entry.name} in {self.path}"):
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # a torn append (a crash mid-write): cut it off, it never was an entry
                    os.ftruncate(fd, os.pread(fd, size, 0).rfind(b"\n") + 1)
                data = entry.to_line()
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                self._own(self.path)
                fsync_dir(self.state_dir)

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Drop every name not in `keep` (the remote listing), and duplicates and torn lines
        with them; the file is replaced atomically, and only when something changes. Returns
        the names dropped."""
        names = set(keep)
        with self._locked(f"pruning the verification ledger {self.path}"):
            for leftover in self.state_dir.glob(f".{self.path.name}.*.partial"):
                leftover.unlink()  # of a rewrite cut short: the ledger itself is intact
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return []
            latest, _ = _latest(raw)
            kept = [e for name, e in latest.items() if name in names]
            content = b"".join(e.to_line() for e in kept)
            if content == raw:
                return []
            self._rewrite(content)
            return sorted(set(latest) - names)

    def _rewrite(self, content: bytes) -> None:
        """Replace the ledger with `content` atomically (the caller holds the lock)."""
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            self._own(temp)
            temp.replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        fsync_dir(self.state_dir)
