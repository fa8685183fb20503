"""The stand-in's state in one SQLite file: metadata (orgs, users, buckets, authorizations,
DBRP mappings, tasks), shard groups, and points per shard.

Where it lives: `standin.sqlite` in the directory of INFLUXD_BOLT_PATH (default
/var/lib/influxdb2, the real image's data volume), so it survives a container recreate with
its volume; in-process, a test's temporary directory. It is NOT InfluxDB's BoltDB/TSM
storage: a real influxd cannot read it, and a backup's "kv"/"sql" parts and shard archives
made from it are the stand-in's own formats (documented in backup_snapshot below).

Reconstructed behaviour (influxdb v2.7.12):
- IDs are 16 hex digits (kit/platform/id.go); tokens are 64 random bytes, URL-safe base64
  (rand/token.go).
- Shard groups: a point goes to the group covering its time; a new group starts at the time
  truncated to the group duration since Go's zero time (0001-01-01) and lasts one duration
  (v1/services/meta/data.go CreateShardGroup); the default duration follows the retention
  (shardGroupDuration: 1h under 2 days, 1d under 180 days, else 7d; NormalisedShardDuration).
  One shard per group; shard and group IDs count up from 1.
- Writes: points older than now - retention are dropped and reported as a partial write
  (v1/coordinator/points_writer.go MapShards, SummariseDropped); a field whose type differs
  from the type already stored for it in that shard drops its point ("field type conflict",
  tsdb/field_validator.go); the same series, field and time overwrites.
- Retention enforcement drops shard groups whose end + retention is before now
  (ExpiredShardGroups), every INFLUXD_STORAGE_RETENTION_CHECK_INTERVAL (30m by default).
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import sqlite3
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .lineprotocol import MIN_NANO, Point, format_line, parse

HOUR = 3_600_000_000_000
DAY = 24 * HOUR
MIN_RETENTION = HOUR
GO_ZERO_TIME_OFFSET_NS = 62_135_596_800 * 1_000_000_000  # 0001-01-01 to 1970-01-01
STATE_FILE = "standin.sqlite"
META_KINDS = (
    "orgs",
    "users",
    "passwords",
    "buckets",
    "authorizations",
    "dbrps",
    "dbrp_defaults",
    "tasks",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS shard_groups (id INTEGER PRIMARY KEY, shard_id INTEGER NOT NULL UNIQUE,
    bucket_id TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    deleted_ns INTEGER);
CREATE TABLE IF NOT EXISTS fields (shard_id INTEGER NOT NULL, measurement TEXT NOT NULL,
    field TEXT NOT NULL, type TEXT NOT NULL, PRIMARY KEY (shard_id, measurement, field));
CREATE TABLE IF NOT EXISTS points (shard_id INTEGER NOT NULL, series TEXT NOT NULL,
    measurement TEXT NOT NULL, tags TEXT NOT NULL, field TEXT NOT NULL, type TEXT NOT NULL,
    time_ns INTEGER NOT NULL, value, PRIMARY KEY (shard_id, series, field, time_ns))
    WITHOUT ROWID;
"""


def new_id() -> str:
    """A platform.ID as text: 16 lowercase hex digits, never all zero."""
    while True:
        value = secrets.randbits(64)
        if value:
            return f"{value:016x}"


def new_token() -> str:
    """rand.TokenGenerator(64): 64 random bytes, URL-safe base64 (88 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(64)).decode()


def default_shard_group_duration(retention_ns: int) -> int:
    """meta.shardGroupDuration for a retention period (0 = infinite)."""
    if retention_ns == 0 or retention_ns >= 180 * DAY:
        return 7 * DAY
    if retention_ns >= 2 * DAY:
        return DAY
    return HOUR


def normalised_shard_group_duration(sgd_ns: int, retention_ns: int) -> int:
    """meta.NormalisedShardDuration."""
    if sgd_ns == 0:
        return default_shard_group_duration(retention_ns)
    if sgd_ns < MIN_RETENTION:
        return default_shard_group_duration(MIN_RETENTION)
    return sgd_ns


def truncate_go(ts_ns: int, duration_ns: int) -> int:
    """time.Time.Truncate(d): round down to a multiple of d since Go's zero time."""
    return ts_ns - (ts_ns + GO_ZERO_TIME_OFFSET_NS) % duration_ns


@dataclass(frozen=True)
class ShardGroup:
    id: int
    shard_id: int
    bucket_id: str
    start_ns: int
    end_ns: int
    deleted_ns: int | None


@dataclass(frozen=True)
class Row:
    """One stored value: a field of a series at a time."""

    series: str
    measurement: str
    tags: tuple[tuple[str, str], ...]
    field: str
    type: str
    time_ns: int
    value: object


@dataclass
class WriteResult:
    written: int
    retention_dropped: list[Point]
    retention_bound_ns: int
    conflict_reason: str | None
    conflict_dropped: int


class Store:
    """Thread-safe state: every call holds one lock and commits before it returns."""

    def __init__(self, directory: Path, now_ns: Callable[[], int] = time.time_ns) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / STATE_FILE
        self.now_ns = now_ns
        self.lock = threading.RLock()
        if not self.path.exists():  # 0600 like influxd's BoltDB file (bolt.Open(path, 0600))
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # ------------------------------------------------------------------ metadata
    def get(self, kind: str, id_: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(
                "SELECT doc FROM meta WHERE kind = ? AND id = ?", (kind, id_)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every document of a kind, in ID order (bolt's key order)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT doc FROM meta WHERE kind = ? ORDER BY id", (kind,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def put(self, kind: str, doc: dict[str, Any], id_: str | None = None) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO meta (kind, id, doc) VALUES (?, ?, ?)",
                (kind, id_ or doc["id"], json.dumps(doc, sort_keys=True)),
            )

    def delete(self, kind: str, id_: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM meta WHERE kind = ? AND id = ?", (kind, id_))

    def onboarded(self) -> bool:
        """IsOnboarding's inverse: any user or org exists."""
        with self.lock:
            row = self.db.execute(
                "SELECT 1 FROM meta WHERE kind IN ('users', 'orgs') LIMIT 1"
            ).fetchone()
        return row is not None

    def _next(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        value = (row[0] if row else 0) + 1
        self.db.execute(
            "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value)
        )
        return value

    # ------------------------------------------------------------------ shard groups
    def shard_groups(self, bucket_id: str | None = None) -> list[ShardGroup]:
        with self.lock:
            if bucket_id is None:
                rows = self.db.execute("SELECT * FROM shard_groups ORDER BY id").fetchall()
            else:
                rows = self.db.execute(
                    "SELECT * FROM shard_groups WHERE bucket_id = ? ORDER BY id", (bucket_id,)
                ).fetchall()
        return [ShardGroup(*r) for r in rows]

    def shard(self, shard_id: int) -> ShardGroup | None:
        with self.lock:
            row = self.db.execute(
                "SELECT * FROM shard_groups WHERE shard_id = ? AND deleted_ns IS NULL",
                (shard_id,),
            ).fetchone()
        return ShardGroup(*row) if row else None

    def _group_for(self, bucket: dict[str, Any], ts: int) -> int:
        row = self.db.execute(
            "SELECT shard_id FROM shard_groups WHERE bucket_id = ? AND deleted_ns IS NULL "
            "AND start_ns <= ? AND ? < end_ns ORDER BY id LIMIT 1",
            (bucket["id"], ts, ts),
        ).fetchone()
        if row:
            return int(row[0])
        duration = int(bucket["shardGroupDuration"])
        start = truncate_go(ts, duration)
        return self.create_shard_group(bucket["id"], start, start + duration)

    def create_shard_group(self, bucket_id: str, start_ns: int, end_ns: int) -> int:
        with self.lock:
            group_id, shard_id = self._next("shard_group"), self._next("shard")
            self.db.execute(
                "INSERT INTO shard_groups VALUES (?, ?, ?, ?, ?, NULL)",
                (group_id, shard_id, bucket_id, start_ns, end_ns),
            )
        return shard_id

    def drop_bucket_data(self, bucket_id: str) -> None:
        with self.lock:
            self.db.execute("BEGIN")
            shards = [g.shard_id for g in self.shard_groups(bucket_id)]
            for sid in shards:
                self.db.execute("DELETE FROM points WHERE shard_id = ?", (sid,))
                self.db.execute("DELETE FROM fields WHERE shard_id = ?", (sid,))
            self.db.execute("DELETE FROM shard_groups WHERE bucket_id = ?", (bucket_id,))
            self.db.execute("COMMIT")

    def drop_shard(self, shard_id: int) -> None:
        """Delete one shard and its group (what retention enforcement does)."""
        with self.lock:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM points WHERE shard_id = ?", (shard_id,))
            self.db.execute("DELETE FROM fields WHERE shard_id = ?", (shard_id,))
            self.db.execute("DELETE FROM shard_groups WHERE shard_id = ?", (shard_id,))
            self.db.execute("COMMIT")

    def enforce_retention(self) -> list[int]:
        """Drop every shard group that ended more than its bucket's retention ago."""
        now = self.now_ns()
        dropped = []
        buckets = {b["id"]: b for b in self.all("buckets")}
        for group in self.shard_groups():
            retention = int(buckets.get(group.bucket_id, {}).get("retentionPeriod", 0))
            if retention and group.end_ns + retention < now:
                self.drop_shard(group.shard_id)
                dropped.append(group.shard_id)
        return dropped

    # ------------------------------------------------------------------ points
    def write(self, bucket: dict[str, Any], points: list[Point]) -> WriteResult:
        """Store points; report those dropped by retention and by field type conflicts."""
        retention = int(bucket.get("retentionPeriod", 0))
        bound = self.now_ns() - retention if retention else MIN_NANO
        result = WriteResult(0, [], bound, None, 0)
        with self.lock:
            self.db.execute("BEGIN")
            try:
                for point in points:
                    if point.time_ns < bound:
                        result.retention_dropped.append(point)
                        continue
                    shard_id = self._group_for(bucket, point.time_ns)
                    conflict = self._conflict(shard_id, point)
                    if conflict:
                        result.conflict_reason = result.conflict_reason or conflict
                        result.conflict_dropped += 1
                        continue
                    self._insert(shard_id, point)
                    result.written += 1
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return result

    def _conflict(self, shard_id: int, point: Point) -> str | None:
        for name, kind, _ in point.fields:
            row = self.db.execute(
                "SELECT type FROM fields WHERE shard_id = ? AND measurement = ? AND field = ?",
                (shard_id, point.measurement, name),
            ).fetchone()
            if row and row[0] != kind:
                return (
                    f'field type conflict: input field "{name}" on measurement '
                    f'"{point.measurement}" is type {kind}, already exists as type {row[0]}'
                )
        return None

    def _insert(self, shard_id: int, point: Point) -> None:
        key = point.series_key
        tags = json.dumps(point.tags)
        for name, kind, value in point.fields:
            if name == "time":  # tsdb drops fields named time
                continue
            self.db.execute(
                "INSERT OR IGNORE INTO fields VALUES (?, ?, ?, ?)",
                (shard_id, point.measurement, name, kind),
            )
            stored = int(value) if kind == "boolean" else value  # type: ignore[call-overload]
            if kind == "unsigned" and int(value) >= 2**63:  # type: ignore[call-overload]
                stored = str(value)  # SQLite integers are signed 64-bit
            self.db.execute(
                "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (shard_id, key, point.measurement, tags, name, kind, point.time_ns, stored),
            )

    def rows(
        self,
        bucket_id: str,
        start_ns: int,
        stop_ns: int,
        *,
        measurement: str | None = None,
        fields: Iterable[str] | None = None,
    ) -> list[Row]:
        """Stored values with start <= time < stop, by series, field, then time."""
        sql = (
            "SELECT p.series, p.measurement, p.tags, p.field, p.type, p.time_ns, p.value "
            "FROM points p JOIN shard_groups g ON g.shard_id = p.shard_id "
            "WHERE g.bucket_id = ? AND g.deleted_ns IS NULL AND p.time_ns >= ? AND p.time_ns < ?"
        )
        args: list[Any] = [bucket_id, start_ns, stop_ns]
        if measurement is not None:
            sql += " AND p.measurement = ?"
            args.append(measurement)
        wanted = list(fields) if fields is not None else None
        if wanted is not None:
            sql += f" AND p.field IN ({','.join('?' * len(wanted))})"
            args += wanted
        sql += " ORDER BY p.series, p.field, p.time_ns"
        with self.lock:
            found = self.db.execute(sql, args).fetchall()
        return [_row(*r) for r in found]

    def measurements(self, bucket_id: str) -> list[str]:
        with self.lock:
            rows = self.db.execute(
                "SELECT DISTINCT f.measurement FROM fields f JOIN shard_groups g "
                "ON g.shard_id = f.shard_id WHERE g.bucket_id = ? ORDER BY 1",
                (bucket_id,),
            ).fetchall()
        return [r[0] for r in rows]

    def field_types(self, bucket_id: str, measurement: str) -> list[tuple[str, str]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT DISTINCT f.field, f.type FROM fields f JOIN shard_groups g "
                "ON g.shard_id = f.shard_id WHERE g.bucket_id = ? AND f.measurement = ? "
                "ORDER BY 1, 2",
                (bucket_id, measurement),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def tag_keys(self, bucket_id: str, measurement: str) -> list[str]:
        with self.lock:
            rows = self.db.execute(
                "SELECT DISTINCT p.tags FROM points p JOIN shard_groups g "
                "ON g.shard_id = p.shard_id WHERE g.bucket_id = ? AND p.measurement = ?",
                (bucket_id, measurement),
            ).fetchall()
        return sorted({k for (tags,) in rows for k, _ in json.loads(tags)})

    # ------------------------------------------------------------------ backup and restore
    def shard_points(self, shard_id: int) -> Iterator[Point]:
        with self.lock:
            rows = self.db.execute(
                "SELECT series, measurement, tags, field, type, time_ns, value FROM points "
                "WHERE shard_id = ? ORDER BY series, time_ns, field",
                (shard_id,),
            ).fetchall()
        for r in rows:
            row = _row(*r)
            yield Point(row.measurement, row.tags, ((row.field, row.type, row.value),), row.time_ns)

    def shard_archive(self, shard_id: int) -> bytes:
        """The stand-in's shard backup: a tar holding one line-protocol file (real InfluxDB
        sends the shard's TSM files). Deterministic: same data, same bytes."""
        group = self.shard(shard_id)
        assert group is not None
        lines = "".join(format_line(p) + "\n" for p in self.shard_points(shard_id)).encode()
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"{group.bucket_id}/autogen/{shard_id}/standin-points.lp")
            info.size = len(lines)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(lines))
        return out.getvalue()

    def restore_shard(self, shard_id: int, archive: bytes) -> int:
        """Load a shard archive made by shard_archive into an existing shard."""
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            members = [m for m in tar.getmembers() if m.name.endswith("standin-points.lp")]
            if not members:
                raise ValueError("no standin-points.lp in the shard archive")
            extracted = tar.extractfile(members[0])
            assert extracted is not None
            body = extracted.read()
        points = parse(body, "ns", self.now_ns())
        with self.lock:
            self.db.execute("BEGIN")
            try:
                for point in points:
                    self._insert(shard_id, point)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return len(points)

    def kv_snapshot(self) -> bytes:
        """The "kv" part of a backup: this stand-in's metadata as JSON (real: a BoltDB file)."""
        doc = {
            "format": "homewatt influxdb2 stand-in metadata snapshot (not a BoltDB file)",
            "meta": {kind: self.all(kind) for kind in META_KINDS},
            "shardGroups": [g.__dict__ for g in self.shard_groups()],
            "counters": dict(self.db.execute("SELECT name, value FROM counters").fetchall()),
        }
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    def restore_kv(self, snapshot: bytes) -> None:
        """Replace all metadata with a kv_snapshot and drop all shard data (as a real KV
        restore does: engine.RestoreKVStore removes existing shard data)."""
        doc = json.loads(snapshot)
        if "meta" not in doc or "shardGroups" not in doc:
            raise ValueError("not a stand-in metadata snapshot")
        with self.lock:
            self.db.execute("BEGIN")
            for table in ("meta", "counters", "shard_groups", "fields", "points"):
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names)
            for kind, docs in doc["meta"].items():
                for item in docs:
                    key = item["id"] if "id" in item else item["_key"]
                    self.db.execute(
                        "INSERT INTO meta VALUES (?, ?, ?)",
                        (kind, key, json.dumps(item, sort_keys=True)),
                    )
            for g in doc["shardGroups"]:
                self.db.execute(
                    "INSERT INTO shard_groups VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        g["id"],
                        g["shard_id"],
                        g["bucket_id"],
                        g["start_ns"],
                        g["end_ns"],
                        g["deleted_ns"],
                    ),
                )
            for name, value in doc["counters"].items():
                self.db.execute("INSERT INTO counters VALUES (?, ?)", (name, value))
            self.db.execute("COMMIT")

    def sql_snapshot(self) -> bytes:
        """The "sql" part of a backup: an SQLite database image (real: influxd.sqlite with
        notebooks and annotations, which the stand-in does not have; this one is empty but
        for a note saying so)."""
        memory = sqlite3.connect(":memory:")
        memory.execute("CREATE TABLE standin_note (note TEXT)")
        memory.execute(
            "INSERT INTO standin_note VALUES ('homewatt influxdb2 stand-in: no notebooks, "
            "annotations or other SQL metadata')"
        )
        memory.commit()
        image = memory.serialize()
        memory.close()
        return bytes(image)


def _row(  # noqa: PLR0917 (one positional per column of the points table)
    series: str, measurement: str, tags: str, field: str, kind: str, ts: int, value: Any
) -> Row:
    if kind == "boolean":
        value = bool(value)
    elif kind == "unsigned":
        value = int(value)
    elif kind == "float":
        value = float(value)
    decoded = tuple((k, v) for k, v in json.loads(tags))
    return Row(series, measurement, decoded, field, kind, ts, value)
