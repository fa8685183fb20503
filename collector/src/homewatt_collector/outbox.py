"""The outbox: every sample on disk (SQLite, WAL) until its sink has acknowledged it.

- A sample is committed before `put` returns. With WAL and synchronous=NORMAL a commit is in the
  OS's page cache, so it survives a crash or SIGKILL of this process; the WAL is fsynced by a
  checkpoint every `checkpoint_interval_s` (about 10 s), which bounds what a power cut can take
  and spares the SD card an fsync per sample.
- Order is insertion order (the integer primary key); a sample's identity is a 64-bit hash of
  its series key and timestamp, and a second sample with the same identity is ignored.
- Bounded: when the file holds more than `max_bytes`, the oldest samples not in flight are
  dropped (and counted) to make room. Points a server refused are kept in `quarantine`.
- Thread-safe: one connection behind one lock (the source loop puts, the forwarder peeks/acks).
- A damaged file (SQLITE_CORRUPT, SQLITE_NOTADB: what a power cut can do to an SD card) is
  moved aside at open and a fresh outbox started (`moved_aside` names the copy; one log line);
  `salvage()` then puts back what can still be read (salvage.py). At most 3 copies are kept,
  and they count against the bound.
- One process at a time: an exclusive flock on `<path>.lock` (the service holds it while it runs).
- Opened by root in a directory that belongs to the service's user (`sudo homewatt-collector
  outbox replay`), every file it creates there is handed to that user, so the service can open
  the outbox again: its lock file here (SQLite already gives its -wal and -shm the database
  file's owner).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from homewatt_collector.errors import CollectorError, OutboxBusy
from homewatt_collector.models import Sample
from homewatt_collector.salvage import (
    damaged_bytes,
    is_damage,
    move_aside,
    prune_damaged,
    read_damaged,
)
from homewatt_common.lineprotocol import encode_line, series_key, series_of_line
from homewatt_common.ownership import hand_over

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COUNTERS = ("enqueued", "duplicates", "delivered", "dropped", "quarantined", "salvaged")
# When full, drop down to this fraction of the bound, so drops come in batches, not per sample.
REFILL_FRACTION = 0.9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
  id INTEGER PRIMARY KEY,
  ident INTEGER NOT NULL UNIQUE,  -- hash of (series key, ts): the sample's identity
  ts INTEGER NOT NULL,
  line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  line TEXT NOT NULL,
  status INTEGER NOT NULL,
  reason TEXT NOT NULL,
  quarantined_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    ts: int
    line: str


@dataclass(frozen=True, slots=True)
class QuarantinedEntry:
    ts: int
    line: str
    status: int
    reason: str
    quarantined_at: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    oldest_ts: int | None
    quarantined_now: int
    size_bytes: int
    max_bytes: int
    counters: dict[str, int]


def identity(series: str, ts: int) -> int:
    digest = hashlib.blake2b(f"{series} {ts}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Outbox:
    def __init__(
        self,
        path: Path,
        max_bytes: int,
        checkpoint_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        lock: bool = True,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if lock:
                self._lock_file = _take_flock(path.with_name(path.name + ".lock"))
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except OSError as exc:
            raise CollectorError(f"outbox {path}: {exc.strerror or exc}") from exc
        self.moved_aside: Path | None = None  # the damaged file this one replaced
        self._salvaged = False
        try:
            try:
                self._open()
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                self._db.close()
                self.moved_aside = move_aside(path)
                log.error(
                    "outbox %s is damaged (%s): moved aside to %s; collecting into a fresh"
                    " outbox, what can still be read is salvaged into it",
                    path,
                    exc,
                    self.moved_aside.name,
                )
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._open()
        except (sqlite3.Error, OSError) as exc:  # a full or read-only disk: one clear line
            self.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CollectorError(
                f"outbox {path}: cannot open it: {reason} (free space in {path.parent}?)"
            ) from exc
        # Moved-aside copies count against the bound, the one waiting for salvage() not yet.
        self._damaged_bytes = damaged_bytes(path)
        if self.moved_aside is not None:
            self._damaged_bytes = max(0, self._damaged_bytes - _size(self.moved_aside))
        self._inflight_upto = 0  # ids <= this are being sent: never dropped to make room
        self._last_checkpoint = clock()

    def _open(self) -> None:
        """Settings, schema, counters; a damaged file shows here (sqlite3.DatabaseError), not
        in the middle of a run: `PRAGMA quick_check` reads every page (on a Pi's SD card
        about a second per 25 MB, once per start)."""
        path = self.path
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints (the fsyncs) happen on our schedule, not every 1000 pages.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute("PRAGMA busy_timeout=10000")
        problem = str(self._db.execute("PRAGMA quick_check(1)").fetchone()[0])
        if problem != "ok":
            damaged = sqlite3.DatabaseError(f"database disk image is malformed: {problem}")
            damaged.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
            raise damaged
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        for name in COUNTERS:
            self._db.execute("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", (name,))
        hand_over(
            [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock"))],
            path.parent,
        )
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._backlog = int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])
        self._db.execute("SELECT count(*) FROM quarantine").fetchone()
        self._counters = {
            str(name): int(value)
            for name, value in self._db.execute("SELECT name, value FROM counters").fetchall()
        }

    # -- producer side -------------------------------------------------------------------------

    def put(self, samples: Iterable[Sample]) -> int:
        """Commit samples (in order); returns how many were new. Duplicates are ignored.

        LineProtocolError (nothing stored) when a sample cannot be written as line protocol:
        the caller checks samples first (homewatt_common.lineprotocol.point_problem)."""
        rows = []
        for sample in samples:
            line = encode_line(sample.measurement, sample.tags, sample.fields, sample.ts)
            series = series_key(sample.measurement, sample.tags)
            rows.append((identity(series, sample.ts), sample.ts, line))
        if not rows:
            return 0
        with self._lock, self._transaction():
            cursor = self._db.executemany(
                "INSERT OR IGNORE INTO pending (ident, ts, line) VALUES (?, ?, ?)", rows
            )
            added = max(cursor.rowcount, 0)
            self._bump("enqueued", added)
            self._bump("duplicates", len(rows) - added)
            self._backlog_delta += added
        self._enforce_bound()
        self.maybe_checkpoint()
        return added

    # -- consumer side -------------------------------------------------------------------------

    def peek(self, limit: int) -> list[Entry]:
        """The oldest `limit` pending entries, marked in flight (safe from drop-oldest)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, ts, line FROM pending ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            if rows:
                self._inflight_upto = rows[-1][0]
        return [Entry(*row) for row in rows]

    def ack(self, entries: Sequence[Entry]) -> int:
        """The sink has these entries (a contiguous run from `peek`): delete them."""
        if not entries:
            return 0
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "DELETE FROM pending WHERE id BETWEEN ? AND ?", (entries[0].id, entries[-1].id)
            )
            deleted = cursor.rowcount
            self._bump("delivered", deleted)
            self._backlog_delta -= deleted
        self.maybe_checkpoint()
        return deleted

    def quarantine(self, entry: Entry, status: int, reason: str) -> None:
        """The server refused this point: keep it aside, counted, out of the delivery queue."""
        with self._lock, self._transaction():
            deleted = self._db.execute("DELETE FROM pending WHERE id = ?", (entry.id,)).rowcount
            if deleted:
                self._db.execute(
                    "INSERT INTO quarantine (ts, line, status, reason, quarantined_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (entry.ts, entry.line, status, reason[:500], int(time.time())),
                )
                self._bump("quarantined", 1)
                self._backlog_delta -= 1

    def salvage(self) -> int:
        """Put what can still be read from the damaged file this outbox replaced back into
        the queue (counted as `salvaged`); one log line. Returns how many samples."""
        if self.moved_aside is None or self._salvaged:
            return 0
        self._salvaged = True
        rows, how = read_damaged(self.moved_aside)
        with self._lock, self._transaction():
            added = 0
            for ts, line in rows:
                added += self._db.execute(
                    "INSERT OR IGNORE INTO pending (ident, ts, line) VALUES (?, ?, ?)",
                    (identity(series_of_line(line), ts), ts, line),
                ).rowcount
            self._bump("salvaged", added)
            self._backlog_delta += added
        log.info(
            "outbox %s: salvaged %d samples from %s (%s)",
            self.path,
            added,
            self.moved_aside.name,
            how,
        )
        for deleted in prune_damaged(self.path, self.max_bytes // 2):
            log.warning(
                "outbox %s: deleted %s (damaged copies past half the bound)",
                self.path,
                deleted.name,
            )
        self._damaged_bytes = damaged_bytes(self.path)
        self._enforce_bound()
        return added

    def release_inflight(self) -> None:
        with self._lock:
            self._inflight_upto = 0

    # -- operations ----------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return self._backlog

    def counter(self, name: str) -> int:
        """A lifetime counter (enqueued, duplicates, delivered, dropped, quarantined, salvaged)."""
        return self._counters[name]

    def stats(self) -> OutboxStats:
        with self._lock:
            oldest = self._db.execute("SELECT ts FROM pending ORDER BY id LIMIT 1").fetchone()
            quarantined = self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
            size = self._used_bytes()
        return OutboxStats(
            backlog=self._backlog,
            oldest_ts=oldest[0] if oldest else None,
            quarantined_now=int(quarantined),
            size_bytes=size,
            max_bytes=self.max_bytes,
            counters=dict(self._counters),
        )

    def quarantined(self, limit: int = 20) -> list[QuarantinedEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT ts, line, status, reason, quarantined_at FROM quarantine"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [QuarantinedEntry(*row) for row in rows]

    def requeue_quarantined(self) -> int:
        """Put quarantined points back into the queue (after the cause was fixed)."""
        with self._lock, self._transaction():
            rows = self._db.execute("SELECT ts, line FROM quarantine ORDER BY id").fetchall()
            moved = 0
            for ts, line in rows:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO pending (ident, ts, line) VALUES (?, ?, ?)",
                    (identity(series_of_line(line), ts), ts, line),
                )
                moved += cursor.rowcount
            self._db.execute("DELETE FROM quarantine")
            self._backlog_delta += moved
        return moved

    def maybe_checkpoint(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_checkpoint < self.checkpoint_interval_s:
            return
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._last_checkpoint = now

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- internals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        self._uncommitted: dict[str, int] = {}
        self._backlog_delta = 0
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        for name, by in self._uncommitted.items():
            self._counters[name] += by
        self._backlog += self._backlog_delta

    def _bump(self, name: str, by: int) -> None:
        """Count inside the current transaction; the in-memory copy follows on commit."""
        if by:
            self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))
            self._uncommitted[name] = self._uncommitted.get(name, 0) + by

    def _used_bytes(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size + self._damaged_bytes

    def _enforce_bound(self) -> None:
        """Over the bound: drop the oldest pending samples not in flight (then quarantined ones)."""
        with self._lock:
            used = self._used_bytes()
            if used <= self.max_bytes:
                return
            quarantined = int(self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
            rows = max(self._backlog + quarantined, 1)
            excess = used - self.max_bytes * REFILL_FRACTION
            to_drop = max(1, math.ceil(excess / (used / rows)))
            with self._transaction():
                dropped = self._db.execute(
                    "DELETE FROM pending WHERE id IN"
                    " (SELECT id FROM pending WHERE id > ? ORDER BY id LIMIT ?)",
                    (self._inflight_upto, to_drop),
                ).rowcount
                self._backlog_delta -= dropped
                if dropped < to_drop:
                    dropped += self._db.execute(
                        "DELETE FROM quarantine WHERE id IN"
                        " (SELECT id FROM quarantine ORDER BY id LIMIT ?)",
                        (to_drop - dropped,),
                    ).rowcount
                self._bump("dropped", dropped)


def _size(path: Path) -> int:
    """Bytes of a database file with its -wal and -shm (0 for what is not there)."""
    total = 0
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            total += file.stat().st_size
    return total


def _take_flock(path: Path) -> IO[bytes]:
    handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OutboxBusy(
            f"outbox {path.with_suffix('')} is in use by another process"
            " (the running collector service?): stop it first"
        ) from None
    return handle
