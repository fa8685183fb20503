"""What the backup, verify and restore flows need of a database: the `DatabaseEngine`
protocol, and the value types its methods exchange. One module per engine implements it
(influxdb1.py, influxdb2.py); make_engine() in this package picks one from the config.

The protocol has four parts:

- dump: `dump_full` writes the engine's own full backup into a directory; `dump_incremental`
  writes the points of a time range as line protocol;
- report: `version`, `count_field_values` (what the database holds in a range: the bounds of
  the completeness check of every incremental dump), `target_state`;
- write back: `ensure_target`, `write_lines` (line protocol, e.g. an incremental archive),
  `write_health` (the run's health point);
- restore: `restore_full` (a full backup into a bucket/database);
- more buckets (InfluxDB 2): `extra_buckets` names the buckets backed up beside the source,
  `for_bucket` gives the engine of one of them (its incremental dump, counts and full
  restore).

Units: times are timezone-aware UTC datetimes; a range is [start, stop) (start included, stop
excluded); line protocol timestamps are integers in the given `precision` (s, ms, us or ns);
counts are field values (a point with three fields counts three), keyed by measurement;


Errors: every method raises homewatt_backup.errors.InfluxError (one line naming the operation
and the server) for anything the database or the network refused; writing a local file may
raise OSError, which the caller turns into an ArchiveError naming the file. Nothing else
escapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal, Protocol

from homewatt_backup.models import Engine, ShardRecord, iso

TargetState = Literal["absent", "empty", "nonempty"]
Progress = Callable[[int], None]
WRITE_BATCH_LINES = 5000


def no_progress(_: int) -> None:
    return None


@dataclass
class Exported:
    """What an incremental dump wrote: `lines` of line protocol holding `field_values` field
    values per measurement."""

    lines: int = 0
    field_values: Counter[str] = field(default_factory=Counter)

    def add(self, measurement: str, fields: int) -> None:
        self.lines += 1
        self.field_values[measurement] += fields


@dataclass(frozen=True)
class FullDump:
    """A full backup written into a work directory: `files` as (name in the archive, local
    file) pairs, e.g. ("influxdb1/20261123T030000Z.s1.tar.gz", Path(...)); `shards`, every
    shard the engine listed and what became of it."""

    files: list[tuple[str, Path]]
    shards: tuple[ShardRecord, ...]


class DatabaseEngine(Protocol):
    """One InfluxDB (1.x or 2.x) seen by the backup: dump, report, write back, restore."""

    engine: Engine
    source: str
    """What is backed up: the database (1.x) or `<org>/<bucket>` (2.x)."""
    extra_buckets: tuple[str, ...]
    """The buckets backed up beside the source's (2.x `influxdb.extra_buckets`; 1.x none)."""

    def for_bucket(self, bucket: str) -> DatabaseEngine:
        """The same server, org and credentials seen through `bucket` (one of the backup's
        extra buckets): its count_field_values, dump_incremental and restore_full are that
        bucket's. InfluxError on 1.x, which has no buckets."""
        ...

    def version(self) -> str:
        """The server's version (its X-Influxdb-Version header); doubles as the reachability
        check every run and restore starts with."""
        ...

    def dump_full(self, workdir: Path, base: str) -> FullDump:
        """Write the engine's full backup of the source and of every extra bucket into
        `workdir` (file names start with `base`, the backup's timestamp); an extra bucket
        that does not exist is an InfluxError naming it and the org. Every shard the engine
        listed must be in it, whole (its gzip stream complete, its tar readable to the end,
        its size what the engine reported): else InfluxError naming the shard. A shard removed
        by retention during the backup is recorded as `expired`."""
        ...

    def count_field_values(self, start: datetime, stop: datetime) -> Counter[str]:
        """Field values the source holds with start <= time < stop, per measurement."""
        ...

    def dump_incremental(
        self, start: datetime, stop: datetime, out: IO[str], precision: str
    ) -> Exported:
        """Write every point with start <= time < stop to `out` as line protocol (one line per
        point, "\\n"-terminated, timestamps in `precision`); return what was written."""
        ...

    def ensure_target(self, target: str) -> None:
        """Create the database/bucket `target` unless it exists."""
        ...

    def write_lines(
        self, lines: Iterable[str], target: str, precision: str, progress: Progress = no_progress
    ) -> int:
        """Write line protocol (blank and `#` lines skipped) into `target` in gzip batches of
        WRITE_BATCH_LINES; `progress` gets the lines of each batch; return the lines written."""
        ...

    def target_state(self, target: str) -> TargetState:
        """Whether `target` is absent, exists empty, or holds data (a restore refuses the
        last without --force)."""
        ...

    def restore_full(
        self,
        extracted: Path,
        target: str,
        merge: bool,
        progress: Progress = no_progress,
        shards: Sequence[ShardRecord] = (),
    ) -> None:
        """Restore a full backup (an extracted archive's directory) as `target`: the source's
        data (2.x: the archive's primary bucket; through for_bucket, that extra bucket); with
        `merge` (the target exists) through a temporary database/bucket whose points are
        copied in. Returns once the restored points are all queryable (`shards`: the archive
        manifest's records, with what was counted at backup time where the engine records
        it), else InfluxError naming what is missing; a merge copies nothing before that.
        `progress` gets one step per restore call (1.x) or shard (2.x)."""
        ...

    def write_health(self, line: str) -> None:
        """Write the run's health point (one line of line protocol, seconds precision)."""
        ...


def seconds_iso(ts: datetime) -> str:
    """A range bound as both engines' queries take it: RFC3339 UTC, whole seconds."""
    return iso(ts.astimezone(UTC).replace(microsecond=0)) or ""


def windows(
    start: datetime, stop: datetime, size: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """[start, stop) cut into consecutive [a, b) pieces of at most `size` (one query each)."""
    cursor = start
    while cursor < stop:
        end = min(cursor + size, stop)
        yield cursor, end
        cursor = end
