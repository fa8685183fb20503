"""A damaged outbox (a power cut on an SD card: a zeroed header, a torn page) never stops
collection: the outbox moves it aside and starts a fresh one (outbox.py); what can still be
read is salvaged into the fresh one after the service is up.

- `is_damage(exc)`: SQLite's SQLITE_CORRUPT or SQLITE_NOTADB ("database disk image is
  malformed", "file is not a database"); anything else (a full disk, a lock) is not damage.
- `move_aside(path)`: renames the file and its -wal and -shm to `<name>.damaged-<UTC time to
  the microsecond>` (+ -wal, -shm: SQLite still pairs them), keeping at most KEEP_DAMAGED such
  files (the oldest are deleted); the kept ones count against the outbox bound, and once
  salvaged, `prune_damaged` keeps them within half of it.
- `read_damaged(path)`: the pending samples that can still be read, as (ts, line): with the
  `sqlite3` CLI's `.recover` when it is installed (Debian: package sqlite3; it reads around a
  damaged page), otherwise row by row, by id, with what SELECT returns. Either reads a copy
  whose 100-byte header was written anew when the file's own is unreadable (a zeroed start:
  the rest of page 1, the schema, is usually intact).
Sources: sqlite.org/rescode.html (result codes), sqlite.org/recovery.html (.recover),
sqlite.org/wal.html (a WAL file belongs to the database of the same name + "-wal").
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

KEEP_DAMAGED = 3
_DAMAGE_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
SIDE_FILES = ("-wal", "-shm")
RECOVER_TIMEOUT_S = 600.0
_MAGIC = b"SQLite format 3\x00"
_PAGE_SIZES = {2**n for n in range(9, 17)}


def is_damage(exc: sqlite3.Error) -> bool:
    """Is this SQLite error a damaged file (not a full disk, a lock, a bug)?"""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE_CODES


def damaged_files(path: Path) -> list[Path]:
    """The moved-aside copies of outbox `path`, oldest first (without their -wal, -shm)."""
    return sorted(
        p for p in path.parent.glob(f"{path.name}.damaged-*") if not p.name.endswith(SIDE_FILES)
    )


def damaged_bytes(path: Path) -> int:
    """Bytes the moved-aside copies of `path` take, -wal and -shm included."""
    total = 0
    for kept in damaged_files(path):
        for file in (kept, *(kept.with_name(kept.name + s) for s in SIDE_FILES)):
            with contextlib.suppress(OSError):
                total += file.stat().st_size
    return total


def prune_damaged(path: Path, max_bytes: int) -> list[Path]:
    """Delete moved-aside copies of `path`, oldest first, until they take at most `max_bytes`
    (half the outbox bound: the copies must not crowd out new samples); the deleted ones."""
    deleted = []
    for old in damaged_files(path):
        if damaged_bytes(path) <= max_bytes:
            break
        for file in (old, *(old.with_name(old.name + s) for s in SIDE_FILES)):
            file.unlink(missing_ok=True)
        deleted.append(old)
    return deleted


def move_aside(path: Path) -> Path:
    """Rename the damaged outbox (and its -wal, -shm) aside; keep the newest KEEP_DAMAGED."""
    while True:  # microseconds: names sort in time order (a same-name clash only in a test)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = path.with_name(f"{path.name}.damaged-{stamp}")
        if not target.exists():
            break
    path.rename(target)
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).rename(target.with_name(target.name + suffix))
    for old in damaged_files(path)[:-KEEP_DAMAGED]:
        for file in (old, *(old.with_name(old.name + s) for s in SIDE_FILES)):
            file.unlink(missing_ok=True)
    return target


def read_damaged(path: Path) -> tuple[list[tuple[int, str]], str]:
    """The pending samples still readable in damaged outbox `path` as (ts, line), in order,
    and how they were read ("sqlite3 .recover" or "row by row"; "header rebuilt" added when
    the file's first 100 bytes were unreadable)."""
    with tempfile.TemporaryDirectory(prefix=".salvage-", dir=path.parent) as tmp:
        rebuilt = _rebuilt_header_copy(path, Path(tmp))
        source = rebuilt or path
        note = ", header rebuilt" if rebuilt else ""
        cli = shutil.which("sqlite3")
        if cli is not None:
            recovered = Path(tmp) / "recovered.sqlite"
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                dump = subprocess.run(
                    [cli, "-readonly", str(source), ".recover"],
                    capture_output=True,
                    timeout=RECOVER_TIMEOUT_S,
                    check=False,
                )
                subprocess.run(
                    [cli, str(recovered)],
                    input=dump.stdout,
                    capture_output=True,
                    timeout=RECOVER_TIMEOUT_S,
                    check=False,
                )
                rows = list(_rows_by_id(recovered))
                if rows:
                    return rows, f"sqlite3 .recover{note}"
        return list(_rows_by_id(source)), f"row by row{note}"


def _rebuilt_header_copy(path: Path, directory: Path) -> Path | None:
    """A copy of `path` (and its -wal) with the 100-byte SQLite header written anew, when the
    header is unreadable (zeroed, overwritten); None when it is intact. The outbox's header is
    predictable: WAL mode, UTF-8, schema format 4, the page size of its WAL (else 4096); the
    page count comes from the file's size. (Source: sqlite.org/fileformat2.html, 1.3.)"""
    with path.open("rb") as file:
        header = file.read(100)
    if header.startswith(_MAGIC):
        return None
    wal = path.with_name(path.name + "-wal")
    page_size = 4096
    with contextlib.suppress(OSError):
        with wal.open("rb") as file:
            wal_header = file.read(32)
        if len(wal_header) == 32:
            size = int.from_bytes(wal_header[8:12], "big")
            page_size = size if size in _PAGE_SIZES else page_size
    pages = max(1, path.stat().st_size // page_size)
    fields = bytearray(100)
    fields[0:16] = _MAGIC
    fields[16:18] = (page_size if page_size < 65536 else 1).to_bytes(2, "big")
    fields[18:24] = bytes((2, 2, 0, 64, 32, 32))  # WAL read/write versions, payload fractions
    fields[24:28] = (1).to_bytes(4, "big")  # change counter
    fields[28:32] = pages.to_bytes(4, "big")
    fields[40:44] = (1).to_bytes(4, "big")  # schema cookie: any value makes SQLite read it
    fields[44:48] = (4).to_bytes(4, "big")  # schema format
    fields[56:60] = (1).to_bytes(4, "big")  # UTF-8
    fields[92:96] = (1).to_bytes(4, "big")  # valid for change counter 1
    fields[96:100] = (3_040_001).to_bytes(4, "big")  # "written by SQLite 3.40.1": informational
    copy = directory / path.name
    shutil.copyfile(path, copy)
    with copy.open("r+b") as file:
        file.write(fields)
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
    return copy


def _rows_by_id(path: Path) -> Iterator[tuple[int, str]]:
    """(ts, line) of every row of `pending` that SELECT can read, one id at a time."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return
    try:
        try:
            last = db.execute("SELECT max(id) FROM pending").fetchone()[0]
        except sqlite3.Error:
            return
        for row_id in range(1, int(last or 0) + 1):
            try:
                row = db.execute("SELECT ts, line FROM pending WHERE id = ?", (row_id,)).fetchone()
            except sqlite3.Error:
                continue
            if row is not None and isinstance(row[0], int) and isinstance(row[1], str):
                yield row[0], row[1]
    finally:
        db.close()
