"""The verification ledger: which remote backups were downloaded again and found intact.

A blob is never written to after its create-only upload (an immutability policy refuses Set
Blob Metadata, and with versioning every write leaves a version behind), so a successful
verification (after upload, or by `homewatt-backup verify`) is recorded here, in the state
directory, instead of in the blob.

`<state_dir>/verified.jsonl`: one JSON object per line, appended and fsynced,
    {"name": "<site>/<kind>/<ts>.tar", "sha256": "<hex>", "verified": "<ISO 8601 UTC>"}
A later line for the same name wins. A torn last line (a crash mid-append) is ignored and
never glued to the next entry. Pruning (names no longer in the remote listing) rewrites the
file atomically (temp file, fsync, rename, fsync of the directory). Appends and rewrites hold
an exclusive flock on the state directory itself, so a `verify` running beside a backup run
never loses an entry. Run as root (an operator's `sudo homewatt-backup verify`), a file it
creates gets the state directory's owner, so the service's own user can still write it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from homewatt_backup.archive import fsync_dir
from homewatt_backup.errors import from_oserror
from homewatt_backup.models import iso
from homewatt_common.ownership import hand_over

LEDGER_NAME = "verified.jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    name: str
    sha256: str
    verified: str

    def to_line(self) -> bytes:
        data = {"name": self.name, "sha256": self.sha256, "verified": self.verified}
        return json.dumps(data, sort_keys=True).encode() + b"\n"


def _parse(line: bytes) -> LedgerEntry | None:
    try:
        data = json.loads(line)
        entry = LedgerEntry(str(data["name"]), str(data["sha256"]), str(data["verified"]))
    except (ValueError, KeyError, TypeError):
        return None
    return entry if entry.name and entry.sha256 else None


def _latest(raw: bytes) -> dict[str, LedgerEntry]:
    latest: dict[str, LedgerEntry] = {}
    # the part after the last newline is empty or a torn append: never an entry
    for line in raw.split(b"\n")[:-1]:
        entry = _parse(line) if line.strip() else None
        if entry is not None:
            latest.pop(entry.name, None)  # the latest entry, at its place in the file
            latest[entry.name] = entry
    return latest


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
        """name -> its latest entry (in the order of those entries)."""
        return _latest(self._raw() or b"")

    def verified(self) -> dict[str, str]:
        """name -> SHA-256 verified last (what RemoteBackup.is_verified takes)."""
        return {name: e.sha256 for name, e in self.entries().items()}

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
        entry = LedgerEntry(name, sha256, iso(when) or "")
        with self._locked(f"recording the verification of {name} in {self.path}"):
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                prefix = b""
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    prefix = b"\n"  # end a torn line first: it stays unparseable on its own
                data = prefix + entry.to_line()
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
            latest = _latest(raw)
            kept = [e for name, e in latest.items() if name in names]
            content = b"".join(e.to_line() for e in kept)
            if content == raw:
                return []
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
            return sorted(set(latest) - names)
