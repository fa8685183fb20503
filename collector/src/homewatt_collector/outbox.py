"""The outbox: every sample on disk (SQLite, WAL) until its sink has acknowledged it.

- A sample is committed before `put` returns. With WAL and synchronous=NORMAL a commit is in the
  OS's page cache, so it survives a crash or SIGKILL of this process; the WAL is fsynced by a
  checkpoint every `checkpoint_interval_s` (about 10 s), which bounds what a power cut can take
  and spares the SD card an fsync per sample.
- Order is insertion order (the integer primary key); a sample's identity is a 64-bit hash of
  its series key and timestamp, and a second sample with the same identity is ignored.
- Bounded: every file of the outbox together (the database, its -wal and -shm, the moved-aside
  damaged copies) stays within `max_bytes`. The WAL may take `wal_limit` of it (1/8 of the
  bound, between 64 KiB and 16 MiB): a write transaction touches at most half of that (puts,
  acks, drops and salvage go in chunks of `rows_per_transaction`), and a checkpoint that
  truncates the WAL follows as soon as it holds more than half. The database's live pages get
  the rest (`data_budget`); past it the oldest samples are dropped, in flight or not (a
  dropped sample that was in flight is simply not there to acknowledge), counted in `dropped`
  and logged once a minute. New files use `auto_vacuum=INCREMENTAL`, so a file larger than its
  budget (a bound lowered in the config) gives its free pages back. Points a server refused
  are kept in `quarantine` (dropped, oldest first, only when no pending sample is left).
- Thread-safe: one connection behind one lock (the source loop puts, the forwarder peeks/acks).
- A damaged file (SQLITE_CORRUPT, SQLITE_NOTADB: what a power cut can do to an SD card) is
  moved aside at open and a fresh outbox started (`moved_aside` names the copy; one log line);
  `salvage()` then puts back what can still be read (salvage.py). At most 3 copies are kept,
  and they count against the bound from the moment they are moved aside.
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
    SIDE_FILES,
    damaged_bytes,
    is_damage,
    move_aside,
    prune_damaged,
    read_damaged,
)
from homewatt_collector.throttle import LogThrottle
from homewatt_common.lineprotocol import encode_line, series_key, series_of_line
from homewatt_common.ownership import hand_over

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
COUNTERS = ("enqueued", "duplicates", "delivered", "dropped", "quarantined", "salvaged")
# When full, drop down to this fraction of the data budget, so drops come in batches.
REFILL_FRACTION = 0.9
# The WAL's share of the bound: the most it holds before a truncating checkpoint (half of it)
# plus one write transaction (the other half). Source for sizes: sqlite.org/walformat.html
# (a 32-byte header, then a 24-byte header per page frame; the -shm index takes 32 KiB per
# 4096 frames).
WAL_SHARE = 8
MIN_WAL_BYTES = 64 * 1024
MAX_WAL_BYTES = 16 * 2**20  # plenty for batches of 5,000 (about 1,000 rows a transaction)
_WAL_HEADER = 32
_FRAME_HEADER = 24
_SHM_BLOCK = 32 * 1024
_SHM_FRAMES = 4096
# Pages a write transaction touches besides its rows: counters, page 1 (the freelist count), a
# freelist trunk, B-tree splits and merges (measured: 4 was exceeded by a few hundred bytes).
_TXN_OVERHEAD_PAGES = 8

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
    ident: int  # with `id`, names the row an ack deletes (ids of dropped rows can come again)


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
    size_bytes: int  # every file: database, -wal, -shm, moved-aside copies
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
        self._wal_path = path.with_name(path.name + "-wal")  # stat()ed after every write
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
        self._drops = LogThrottle(clock=clock)
        self._dropped_unlogged = 0
        self._last_checkpoint = clock()
        # Samples dropped while opening (a bound lowered in the config since the last run):
        # the service reports them in its first homewatt_health point.
        self.dropped_at_open = 0
        if lock:  # the owner of the file, not a status reader beside the service
            with self._lock:
                self._checkpoint()  # what opening wrote (a new file's schema: ~30 pages)
            self._shrink_legacy_file()
            before = self.counter("dropped")
            self._enforce_bound()
            self.dropped_at_open = self.counter("dropped") - before

    def _open(self) -> None:
        """Settings, schema, counters; a damaged file shows here (sqlite3.DatabaseError), not
        in the middle of a run: `PRAGMA quick_check` reads every page (on a Pi's SD card
        about a second per 25 MB, once per start)."""
        path = self.path
        path.chmod(0o600)
        # Takes effect only in a file without tables yet (a new one); see _shrink_legacy_file.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
        self._db.execute(f"PRAGMA journal_size_limit={self.wal_limit}")
        self._backlog = int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])
        self._db.execute("SELECT count(*) FROM quarantine").fetchone()
        self._counters = {
            str(name): int(value)
            for name, value in self._db.execute("SELECT name, value FROM counters").fetchall()
        }

    # -- producer side -------------------------------------------------------------------------

    def put(self, samples: Iterable[Sample]) -> int:
        """Commit samples (in order, in chunks of `rows_per_transaction`: a transaction's WAL
        must fit the bound); returns how many were new. Duplicates are ignored.

        LineProtocolError (nothing stored) when a sample cannot be written as line protocol:
        the caller checks samples first (homewatt_common.lineprotocol.point_problem)."""
        rows = []
        for sample in samples:
            line = encode_line(sample.measurement, sample.tags, sample.fields, sample.ts)
            series = series_key(sample.measurement, sample.tags)
            rows.append((identity(series, sample.ts), sample.ts, line))
        added = 0
        for start in range(0, len(rows), self.rows_per_transaction):
            chunk = rows[start : start + self.rows_per_transaction]
            with self._lock, self._transaction():
                cursor = self._db.executemany(
                    "INSERT OR IGNORE INTO pending (ident, ts, line) VALUES (?, ?, ?)", chunk
                )
                self._bump("enqueued", cursor.rowcount)
                self._bump("duplicates", len(chunk) - cursor.rowcount)
                self._backlog_delta += cursor.rowcount
                added += cursor.rowcount
            self._after_write()
            self._enforce_bound()
        self.maybe_checkpoint()
        return added

    # -- consumer side -------------------------------------------------------------------------

    def peek(self, limit: int) -> list[Entry]:
        """The oldest `limit` pending entries. They stay droppable while they are sent: a full
        outbox drops the oldest samples, in flight or not."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, ts, line, ident FROM pending ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [Entry(*row) for row in rows]

    def ack(self, entries: Sequence[Entry]) -> int:
        """The sink has these entries (from `peek`): delete them; returns how many were still
        there (one dropped to make room while it was sent is not, and is not counted twice).
        In chunks of `rows_per_transaction`, so the WAL stays within its share of the bound."""
        deleted = 0
        for start in range(0, len(entries), self.rows_per_transaction):
            chunk = entries[start : start + self.rows_per_transaction]
            with self._lock, self._transaction():
                cursor = self._db.executemany(
                    "DELETE FROM pending WHERE id = ? AND ident = ?",
                    [(entry.id, entry.ident) for entry in chunk],
                )
                self._bump("delivered", cursor.rowcount)
                self._backlog_delta -= cursor.rowcount
                deleted += cursor.rowcount
            self._after_write()
        self.maybe_checkpoint()
        return deleted

    def quarantine(self, entry: Entry, status: int, reason: str) -> None:
        """The server refused this point: keep it aside, counted, out of the delivery queue."""
        with self._lock, self._transaction():
            deleted = self._db.execute(
                "DELETE FROM pending WHERE id = ? AND ident = ?", (entry.id, entry.ident)
            ).rowcount
            if deleted:
                self._db.execute(
                    "INSERT INTO quarantine (ts, line, status, reason, quarantined_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (entry.ts, entry.line, status, reason[:500], int(time.time())),
                )
                self._bump("quarantined", 1)
                self._backlog_delta -= 1
        self._after_write()

    def salvage(self) -> int:
        """Put what can still be read from the damaged file this outbox replaced back into
        the queue (counted as `salvaged`); one log line. Returns how many samples."""
        if self.moved_aside is None or self._salvaged:
            return 0
        self._salvaged = True
        rows, how = read_damaged(self.moved_aside)
        # The copies are read: keep them (for inspection) within half the bound before the
        # salvaged rows take room of their own.
        for deleted in prune_damaged(self.path, self.max_bytes // 2):
            log.warning(
                "outbox %s: deleted %s (damaged copies past half the bound)",
                self.path,
                deleted.name,
            )
        self._damaged_bytes = damaged_bytes(self.path)
        added = 0
        for start in range(0, len(rows), self.rows_per_transaction):
            with self._lock, self._transaction():
                cursor = self._db.executemany(
                    "INSERT OR IGNORE INTO pending (ident, ts, line) VALUES (?, ?, ?)",
                    [
                        (identity(series_of_line(line), ts), ts, line)
                        for ts, line in rows[start : start + self.rows_per_transaction]
                    ],
                )
                self._bump("salvaged", cursor.rowcount)
                self._backlog_delta += cursor.rowcount
                added += cursor.rowcount
            self._after_write()
            self._enforce_bound()
        log.info(
            "outbox %s: salvaged %d samples from %s (%s)",
            self.path,
            added,
            self.moved_aside.name,
            how,
        )
        return added

    # -- operations ----------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return self._backlog

    def counter(self, name: str) -> int:
        """A lifetime counter (enqueued, duplicates, delivered, dropped, quarantined, salvaged)."""
        return self._counters[name]

    @property
    def wal_limit(self) -> int:
        """Bytes the -wal file may reach: 1/8 of the bound, at least 64 KiB, at most 16 MiB."""
        return min(max(self.max_bytes // WAL_SHARE, MIN_WAL_BYTES), MAX_WAL_BYTES)

    @property
    def rows_per_transaction(self) -> int:
        """Rows one write transaction may insert or delete: each touches at most a page of the
        identity index and one of the table (rows are appended in id order, so far fewer),
        and the transaction must fit in half of `wal_limit`."""
        frames = (self.wal_limit // 2 - _WAL_HEADER) // (self._page_size + _FRAME_HEADER)
        return max(1, (frames - _TXN_OVERHEAD_PAGES) // 2)

    @property
    def data_budget(self) -> int:
        """Bytes the database's live pages may take: the bound less the WAL's share, the -shm
        index for it, the moved-aside copies and a few pages of one transaction's slack."""
        frames = self.wal_limit // (self._page_size + _FRAME_HEADER) + 1
        shm = _SHM_BLOCK * (frames // _SHM_FRAMES + 1)
        slack = _TXN_OVERHEAD_PAGES * self._page_size
        return self.max_bytes - self.wal_limit - shm - self._damaged_bytes - slack

    def live_bytes(self) -> int:
        """Bytes of the database's pages in use (what `data_budget` bounds)."""
        with self._lock:
            return self._live_bytes()

    def disk_bytes(self) -> int:
        """Bytes every file of the outbox takes now: database, -wal, -shm, moved-aside copies."""
        return _size(self.path) + self._damaged_bytes

    def stats(self) -> OutboxStats:
        with self._lock:
            oldest = self._db.execute("SELECT ts FROM pending ORDER BY id LIMIT 1").fetchone()
            quarantined = self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
            size = self.disk_bytes()
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
        self._after_write()
        self._enforce_bound()
        return moved

    def maybe_checkpoint(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_checkpoint < self.checkpoint_interval_s:
            return
        with self._lock:
            self._checkpoint()
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

    def _checkpoint(self) -> None:
        """Write the WAL into the database, fsync, and truncate the WAL to 0 bytes (under
        the lock). Costs an fsync of both files; see bench/README.md for the figures."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _after_write(self) -> None:
        """After each write transaction: a WAL past half its limit is checkpointed and
        truncated, so the next transaction (at most the other half) keeps it within it."""
        with contextlib.suppress(OSError):
            frame = self._page_size + _FRAME_HEADER
            # a B-tree rebalance can touch a few pages more than a transaction's estimate
            if self._wal_path.stat().st_size > self.wal_limit // 2 - _TXN_OVERHEAD_PAGES * frame:
                with self._lock:
                    self._checkpoint()
                self._last_checkpoint = self._clock()

    def _live_bytes(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _enforce_bound(self) -> None:
        """Over the data budget: drop the oldest pending samples, in flight or not (then the
        oldest quarantined ones), in chunks; then give free pages back when the file itself
        is larger than the budget."""
        with self._lock:
            used = self._live_bytes()
            budget = max(self.data_budget, 0)
            if used <= budget:
                to_drop = 0
            else:
                quarantined = int(self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
                rows = max(self._backlog + quarantined, 1)
                excess = used - budget * REFILL_FRACTION
                to_drop = max(1, math.ceil(excess / (used / rows)))
        dropped = 0
        while dropped < to_drop:
            chunk = min(to_drop - dropped, self.rows_per_transaction)
            with self._lock, self._transaction():
                gone = self._db.execute(
                    "DELETE FROM pending WHERE id IN (SELECT id FROM pending ORDER BY id LIMIT ?)",
                    (chunk,),
                ).rowcount
                self._backlog_delta -= gone
                if gone < chunk:
                    gone += self._db.execute(
                        "DELETE FROM quarantine WHERE id IN"
                        " (SELECT id FROM quarantine ORDER BY id LIMIT ?)",
                        (chunk - gone,),
                    ).rowcount
                self._bump("dropped", gone)
            self._after_write()
            if gone == 0:
                break
            dropped += gone
        if dropped:
            self._log_drop(dropped)
        self._give_back_free_pages()

    def _log_drop(self, dropped: int) -> None:
        """One WARNING a minute at most, with the count since the last one."""
        self._dropped_unlogged += dropped
        if self._drops.ready("dropped"):
            log.warning(
                "outbox %s is full (%.1f MB of %.1f MB with its WAL): dropped the %d oldest"
                " samples since the last such line; is the sink down?",
                self.path,
                self.disk_bytes() / 2**20,
                self.max_bytes / 2**20,
                self._dropped_unlogged,
            )
            self._dropped_unlogged = 0

    def _give_back_free_pages(self) -> None:
        """A database file larger than its budget (the bound was lowered, copies were moved
        aside) returns its free pages to the file system, in WAL-sized steps."""
        step = self.rows_per_transaction
        while True:
            with self._lock:
                # The file may pass the budget by the slack: live pages do, for a transaction,
                # between a put and the drop that follows it.
                slack = _TXN_OVERHEAD_PAGES * self._page_size
                over = _file_size(self.path) - max(self.data_budget, 0) - slack
                free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
                vacuum = int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0])
                if over <= 0 or free == 0 or vacuum != 2:  # 2: INCREMENTAL
                    return
                pages = min(free, step, math.ceil(over / self._page_size))
                self._db.execute(f"PRAGMA incremental_vacuum({pages})").fetchall()
                self._checkpoint()  # the file shrinks when the WAL is written into it

    def _shrink_legacy_file(self) -> None:
        """An outbox created before auto_vacuum=INCREMENTAL is converted (VACUUM) when that
        fits in the bound: VACUUM writes a copy and a WAL as large as the live data."""
        with self._lock:
            if int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:
                return
            live = self._live_bytes()
            if 3 * live + _file_size(self.path) > self.max_bytes:
                log.info(
                    "outbox %s: made before free pages were given back; converted at a start"
                    " when it holds less than a third of the bound (%.1f MB now)",
                    self.path,
                    live / 2**20,
                )
                return
            log.info("outbox %s: converting it to give free pages back (VACUUM)", self.path)
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")
            self._checkpoint()


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _size(path: Path) -> int:
    """Bytes of a database file with its -wal and -shm (0 for what is not there)."""
    files = (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES))
    return sum(_file_size(file) for file in files)


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
