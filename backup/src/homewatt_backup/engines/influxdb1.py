"""InfluxDB 1.x (Debian's 1.6 and later; the engine for 32-bit Pis), implementing
engines.protocol.DatabaseEngine.

- dump, full: `influxd backup -portable` (RPC on the bind-address, no root needed), the
  portable format `influxd restore -portable` reads; every shard SHOW SHARDS lists before and
  after it must be in its manifest, and every shard file whole at the size the manifest gives;
  right before it, the field values of every shard's time range are counted per measurement
  (kept in homewatt's manifest: what a restore waits for);
- dump, incremental: InfluxQL `SELECT * FROM <measurement> WHERE time >= .. AND time < ..
  GROUP BY *` over `/query` (chunked JSON), one query per measurement and window, turned into
  line protocol with the field types SHOW FIELD KEYS reports;
- report: `SELECT COUNT(*) FROM /.*/` over the range counts field values per measurement;
- write back: `/write` in gzip batches; CREATE DATABASE;
- restore: `influxd restore -portable` into a new database, then a wait until influxd has
  loaded every shard (see `wait_loaded`); merging into an existing one goes through a
  temporary database and `SELECT * INTO`, once that one is loaded.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import subprocess
import tarfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import requests

from homewatt_backup.config import InfluxDB1Config, Secrets
from homewatt_backup.engines.http import InfluxHTTP, response_text
from homewatt_backup.engines.protocol import (
    Exported,
    FullDump,
    Progress,
    TargetState,
    no_progress,
    seconds_iso,
    windows,
)
from homewatt_backup.engines.shards import check_shard_file
from homewatt_backup.errors import InfluxError, from_requests
from homewatt_backup.models import Engine, ShardRecord, from_iso, temporary_suffix
from homewatt_common.lineprotocol import (
    FieldValue,
    LineProtocolError,
    encode_line,
    format_value,
    typed_value,
)

log = logging.getLogger(__name__)


def influxql_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier (database, measurement)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _json_type(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "float"


# InfluxDB 1.x's tsdb.ErrEngineClosed: a query reached a shard while it was closed and reopened,
# as `influxd restore` does to the shards it writes; asked again a moment later, it answers.
ENGINE_CLOSED = "engine is closed"
ENGINE_CLOSED_ATTEMPTS = 10
# InfluxDB 1.x's tsdb.ErrShardDisabled: influxd is importing a shard `influxd restore` sent.
SHARD_DISABLED = "shard is disabled"
RESTORE_POLL_S = 0.5
SHORTFALLS_SHOWN = 6  # shards named in a restore's error (one line), the rest counted


@dataclass(frozen=True)
class RetentionPolicy:
    """One retention policy as SHOW RETENTION POLICIES lists it: durations as InfluxDB prints
    them ("2160h0m0s"; "0s" is infinite), which CREATE RETENTION POLICY takes back."""

    name: str
    duration: str
    shard_duration: str
    default: bool


# what SHOW RETENTION POLICIES prints for a duration (Go's time.Duration): put into a query as is
_DURATION = re.compile(r"^(\d+(ns|us|µs|ms|s|m|h|d|w))+$")


@dataclass(frozen=True)
class Shard:
    """One shard as SHOW SHARDS lists it: `id`, `retention_policy`, time range [start, end)."""

    id: int
    retention_policy: str
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.retention_policy} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


class InfluxDB1Engine:
    """One InfluxDB 1.x database (`influxdb.database`), reached at `influxdb.url` (HTTP) and
    `influxdb.rpc_address` (the backup RPC)."""

    engine = Engine.INFLUXDB1

    def __init__(
        self,
        config: InfluxDB1Config,
        secrets: Secrets,
        chunk_hours: float = 1,
        http: InfluxHTTP | None = None,
        attempts: int = 3,
    ) -> None:
        self.config = config
        self.source = config.database
        self.extra_buckets: tuple[str, ...] = ()
        auth = None
        if config.username is not None and secrets.influx_password is not None:
            auth = (config.username, secrets.influx_password)
        self.http = http or InfluxHTTP(config.url, config.timeout_s, auth=auth, attempts=attempts)
        self.chunk = timedelta(hours=chunk_hours)

    # ---- report
    def version(self) -> str:
        return self.http.version()

    def _query(
        self, q: str, what: str, db: str | None = None, method: str = "GET"
    ) -> list[dict[str, Any]]:
        params = {"q": q}
        if db is not None:
            params["db"] = db
        for attempt in range(ENGINE_CLOSED_ATTEMPTS):
            if method == "GET":
                response = self.http.request("GET", "/query", what, params=params)
            else:
                response = self.http.request("POST", "/query", what, data=params)
            results = response.json().get("results", [])
            errors = [str(r["error"]) for r in results if "error" in r]
            if errors == [ENGINE_CLOSED] and attempt + 1 < ENGINE_CLOSED_ATTEMPTS:
                time.sleep(0.5)  # a shard reopening (right after `influxd restore`): transient
                continue
            if errors:
                raise InfluxError(f"{what}: {errors[0]}")
            break
        return list(results)

    @staticmethod
    def _series(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [s for r in results for s in r.get("series", [])]

    def databases(self) -> list[str]:
        rows = self._series(self._query("SHOW DATABASES", "InfluxDB: list databases"))
        return [str(v[0]) for s in rows for v in s.get("values", [])]

    def retention_policies(self, db: str) -> list[RetentionPolicy]:
        q = f"SHOW RETENTION POLICIES ON {influxql_ident(db)}"
        rows = self._series(self._query(q, "InfluxDB: list retention policies"))
        policies = []
        for series in rows:
            columns = list(series["columns"])
            for values in series.get("values", []):
                row = dict(zip(columns, values, strict=True))
                policies.append(
                    RetentionPolicy(
                        str(row["name"]),
                        str(row["duration"]),
                        str(row["shardGroupDuration"]),
                        bool(row["default"]),
                    )
                )
        return policies

    def create_retention_policy(self, db: str, policy: RetentionPolicy) -> None:
        """Create `policy` (not as the default) on `db`, with its durations."""
        for duration in (policy.duration, policy.shard_duration):
            if not _DURATION.match(duration):
                raise InfluxError(
                    f"restore: retention policy {policy.name!r} has a duration InfluxDB "
                    f"should not print: {duration!r}"
                )
        self._query(
            f"CREATE RETENTION POLICY {influxql_ident(policy.name)} ON {influxql_ident(db)} "
            f"DURATION {policy.duration} REPLICATION 1 SHARD DURATION {policy.shard_duration}",
            f"restore: create retention policy {policy.name} on {db}",
            method="POST",
        )

    def measurements(self, db: str) -> list[str]:
        rows = self._series(self._query("SHOW MEASUREMENTS", "InfluxDB: list measurements", db))
        return [str(v[0]) for s in rows for v in s.get("values", [])]

    def field_types(self, db: str, measurement: str) -> dict[str, str]:
        q = f"SHOW FIELD KEYS FROM {influxql_ident(measurement)}"
        rows = self._series(self._query(q, "InfluxDB: list field keys", db))
        types: dict[str, str] = {}
        for series in rows:
            for key, kind in series.get("values", []):
                types.setdefault(str(key), str(kind))
        return types

    def shards(self, db: str) -> list[Shard]:
        """The shards SHOW SHARDS lists for `db`."""
        out = []
        for series in self._series(self._query("SHOW SHARDS", "InfluxDB: list shards")):
            if series.get("name") != db:
                continue
            columns = list(series["columns"])
            for values in series.get("values", []):
                row = dict(zip(columns, values, strict=True))
                start, end = from_iso(row.get("start_time")), from_iso(row.get("end_time"))
                if start is None or end is None:
                    raise InfluxError(f"InfluxDB: SHOW SHARDS gives shard {row['id']} no times")
                out.append(Shard(int(row["id"]), str(row["retention_policy"]), start, end))
        return out

    def _count(self, q: str, db: str, what: str) -> Counter[str]:
        counts: Counter[str] = Counter()
        for series in self._series(self._query(q, what, db)):
            for row in series.get("values", []):
                counts[str(series["name"])] += sum(int(v or 0) for v in row[1:])
        return counts

    def for_bucket(self, bucket: str) -> InfluxDB1Engine:
        """InfluxDB 1.x has no buckets (its full backup holds every retention policy)."""
        raise InfluxError(
            f"InfluxDB 1.x has no buckets: {bucket!r} is an InfluxDB 2 bucket, "
            f"not part of database {self.config.database!r}"
        )

    def count_field_values(self, start: datetime, stop: datetime) -> Counter[str]:
        q = (
            "SELECT COUNT(*) FROM /.*/ "  # noqa: S608 (times formatted here)
            f"WHERE time >= '{seconds_iso(start)}' AND time < '{seconds_iso(stop)}'"
        )
        return self._count(q, self.config.database, "InfluxDB: count field values")

    def shard_field_values(self, db: str, shard: Shard) -> Counter[str]:
        """Field values per measurement `db` holds in `shard`'s retention policy and time
        range (each point is in exactly one shard). InfluxDB reads every value: about 0.2-0.4 s
        per million on a 2-core x86 (backup/README.md, Restore, has the cost on a Pi)."""
        q = (
            f"SELECT COUNT(*) FROM {influxql_ident(shard.retention_policy)}./.*/ "  # noqa: S608
            f"WHERE time >= '{seconds_iso(shard.start)}' AND time < '{seconds_iso(shard.end)}'"
        )
        return self._count(q, db, f"InfluxDB: count field values of shard {shard.id}")

    def target_state(self, target: str) -> TargetState:
        if target not in self.databases():
            return "absent"
        return "nonempty" if self.measurements(target) else "empty"

    # ---- dump
    def _check_rpc(self, what: str) -> None:
        """influxd backup/restore retry an unreachable RPC port for minutes: check first."""
        host, _, port = self.config.rpc_address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise InfluxError(
                f"{what}: influxd's backup RPC at {self.config.rpc_address} is unreachable "
                f"({exc.strerror or exc}): InfluxDB 1.x must listen there (bind-address in "
                "influxdb.conf; keep it on localhost), and influxdb.rpc_address must match it"
            ) from None

    def _influxd(self, argv: list[str], what: str) -> None:
        """Run `influxd backup|restore ...`; a failure is one InfluxError with its last line."""
        try:
            done = subprocess.run(
                [self.config.influxd, *argv],
                capture_output=True,
                text=True,
                timeout=6 * 3600,
                check=False,
            )
        except FileNotFoundError:
            raise InfluxError(
                f"{what}: {self.config.influxd!r} not found: install InfluxDB 1.x's influxd "
                "or set influxdb.influxd to its path"
            ) from None
        except subprocess.TimeoutExpired:
            raise InfluxError(f"{what}: influxd {argv[0]} did not finish in 6 hours") from None
        if done.returncode != 0:
            lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit status {done.returncode}"
            raise InfluxError(f"{what}: influxd {argv[0]} -portable failed: {detail}")

    def dump_full(self, workdir: Path, base: str) -> FullDump:
        self._check_rpc("full backup")
        what = f"full backup from {self.config.rpc_address}"
        db = self.config.database
        before = {shard.id: shard for shard in self.shards(db)}
        counted = {i: self.shard_field_values(db, shard) for i, shard in before.items()}
        listed_before = set(before)
        target = workdir / "influxdb1"
        self._influxd(
            ["backup", "-portable", "-host", self.config.rpc_address, "-db", db, str(target)],
            what,
        )
        listed_after = {shard.id for shard in self.shards(db)}
        manifests = sorted(target.glob("*.manifest"))
        if not manifests:
            raise InfluxError(f"{what}: influxd backup wrote no manifest")
        try:
            entries = json.loads(manifests[-1].read_text()).get("files") or []  # null: no data
            reported = {int(e["shardID"]): (str(e["fileName"]), int(e["size"])) for e in entries}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InfluxError(f"{what}: influxd's manifest is unreadable ({exc})") from None
        shards = []
        for shard_id in sorted(listed_before | listed_after | set(reported)):
            if shard_id not in reported:
                if shard_id in listed_after:
                    raise InfluxError(
                        f"{what}: shard {shard_id} of {db!r} (SHOW SHARDS) is not in the "
                        "backup influxd made: the backup is not kept"
                    )
                log.warning("shard %d of %s was removed during the backup", shard_id, db)
                shards.append(ShardRecord(shard_id, "expired"))
                continue
            name, size = reported[shard_id]
            found = check_shard_file(target / name, shard_id, what)
            if found != size:
                raise InfluxError(
                    f"{what}: shard {shard_id} ({name}) holds {found} bytes, influxd reported "
                    f"{size}: the backup is not kept"
                )
            listed = before.get(shard_id)
            if listed is None:  # created during the backup: nothing was counted in it
                shards.append(ShardRecord(shard_id, "saved", f"influxdb1/{name}", size))
                continue
            shards.append(
                ShardRecord(
                    shard_id,
                    "saved",
                    f"influxdb1/{name}",
                    size,
                    listed.retention_policy,
                    listed.start,
                    listed.end,
                    dict(counted[shard_id]),
                )
            )
        files = sorted(p for p in target.iterdir() if p.is_file())
        return FullDump([(f"influxdb1/{p.name}", p) for p in files], tuple(shards))

    def _select(
        self, db: str, measurement: str, start: datetime, stop: datetime, precision: str
    ) -> Iterator[dict[str, Any]]:
        # identifiers are quoted by influxql_ident, times formatted here: no injection
        q = (
            f"SELECT * FROM {influxql_ident(measurement)} "  # noqa: S608 (quoted identifiers)
            f"WHERE time >= '{seconds_iso(start)}'"
            f" AND time < '{seconds_iso(stop)}' GROUP BY *"
        )
        params = {"q": q, "db": db, "epoch": precision, "chunked": "true", "chunk_size": "10000"}
        response = self.http.request(
            "GET", "/query", "incremental export", params=params, stream=True
        )
        with response:
            try:
                for raw in response_text(response):
                    if not raw.strip():
                        continue
                    for result in json.loads(raw).get("results", []):
                        if "error" in result:
                            raise InfluxError(f"incremental export: {result['error']}")
                        yield from result.get("series", [])
            except requests.RequestException as exc:
                raise from_requests(exc, "incremental export", self.http.url) from None

    def dump_incremental(
        self, start: datetime, stop: datetime, out: IO[str], precision: str
    ) -> Exported:
        db = self.config.database
        exported = Exported()
        for measurement in self.measurements(db):
            types = self.field_types(db, measurement)
            for window_start, window_stop in windows(start, stop, self.chunk):
                for series in self._select(db, measurement, window_start, window_stop, precision):
                    tags = {str(k): str(v) for k, v in (series.get("tags") or {}).items()}
                    columns = list(series["columns"])
                    name = str(series["name"])
                    for row in series.get("values", []):
                        fields: dict[str, FieldValue] = {}
                        for column, value in zip(columns[1:], row[1:], strict=True):
                            if value is None:
                                continue
                            typed = typed_value(value, types.get(column) or _json_type(value))
                            if format_value(typed) is not None:  # NaN, infinities: left out
                                fields[column] = typed
                        if fields:
                            try:
                                line = encode_line(name, tags, fields, int(row[0]))
                            except LineProtocolError as exc:
                                raise InfluxError(
                                    f"incremental export of {name!r}: a point at {row[0]} "
                                    f"cannot be written back: {exc}"
                                ) from None
                            out.write(line + "\n")
                            exported.add(name, len(fields))
        return exported

    # ---- write back
    def ensure_target(self, target: str) -> None:
        self._query(
            f"CREATE DATABASE {influxql_ident(target)}", "InfluxDB: create database", method="POST"
        )

    def write_lines(
        self, lines: Iterable[str], target: str, precision: str, progress: Progress = no_progress
    ) -> int:
        return self.http.post_lines(
            "/write",
            {"db": target, "precision": precision},
            lines,
            f"write into {target}",
            progress,
        )

    def write_health(self, line: str) -> None:
        target = self.config.health_database or self.config.database
        self.write_lines([line], target, "s")

    # ---- restore
    def _restore(self, extracted: Path, source_db: str, new_db: str) -> None:
        self._check_rpc("restore")
        self._influxd(
            [
                "restore",
                "-portable",
                "-host",
                self.config.rpc_address,
                "-db",
                source_db,
                "-newdb",
                new_db,
                str(extracted),
            ],
            f"restore into {new_db!r}",
        )

    def _loaded_counts(self, db: str, shards: Sequence[Shard]) -> dict[int, Counter[str]] | None:
        """Field values per shard of `db`, or None while influxd still imports one of them."""
        try:
            return {shard.id: self.shard_field_values(db, shard) for shard in shards}
        except InfluxError as exc:
            if SHARD_DISABLED in str(exc):
                return None
            raise

    def _short(self, db: str, pending: Sequence[ShardRecord]) -> list[tuple[ShardRecord, str]]:
        """Of the backup's shards `pending`, those `db` holds fewer field values of than
        counted at backup time (their shard found by retention policy and time range), each
        with what it lacks, e.g. 'shard 3 (autogen 2026-11-09..2026-11-16): electricity 0 of
        1200 field values' (3: the shard's id in the backup)."""
        restored = {(s.retention_policy, s.start, s.end): s for s in self.shards(db)}
        out = []
        for record in pending:
            assert record.field_values is not None and record.start and record.end
            wanted = Shard(record.id, record.retention_policy or "", record.start, record.end)
            shard = restored.get((wanted.retention_policy, wanted.start, wanted.end))
            loaded = None if shard is None else self._loaded_counts(db, [shard])
            got = Counter[str]() if shard is None or loaded is None else loaded[shard.id]
            short = [
                f"{name} {'?' if loaded is None else got[name]} of {want} field values"
                for name, want in sorted(record.field_values.items())
                if want and (loaded is None or got[name] < want)
            ]
            if short:
                state = "" if loaded is not None else ", being imported" if shard else ", absent"
                lacks = f"shard {record.id} ({wanted.label}{state}): " + ", ".join(short)
                out.append((record, lacks))
        return out

    def _unsettled(
        self, db: str, with_data: int, previous: dict[int, Counter[str]] | None
    ) -> tuple[str | None, dict[int, Counter[str]] | None]:
        """For an archive without counts: why `db` is not yet taken as loaded (None: it is),
        and the counts seen now (the next call's `previous`)."""
        counts = self._loaded_counts(db, self.shards(db))
        if counts is None:
            return "a shard is still being imported", None
        holding = sum(1 for c in counts.values() if sum(c.values()))
        if holding < with_data:
            return f"{holding} of the archive's {with_data} shards with data hold points", counts
        if counts != previous:
            return "the field value counts are still changing", counts
        return None, counts

    def wait_loaded(self, db: str, saved: Sequence[ShardRecord], directory: Path) -> None:
        """Return once influxd has loaded everything `influxd restore` sent into `db`.

        `influxd restore -portable` uploads each shard and closes the connection without an
        answer (influxdb's services/snapshotter/client.go, UploadShard); influxd imports it in
        its own goroutine (the shard answers 'shard is disabled' meanwhile). When the CLI
        exits, the last shards may exist empty and answering, not yet imported.

        With the counts of the backup (`saved` records with `field_values`): wait until `db`
        counts at least as many field values per measurement in each shard's time range as
        InfluxDB counted before the dump (a shard is counted until it has them, then no more).
        Archives made before those counts: wait until every shard of `db` answers, as many
        shards hold points as the archive has shard files with TSM data, and the counts are
        the same twice in a row, RESTORE_POLL_S apart. That is weaker: a shard cut short on
        the server side, or one still loading after a pause, can pass it.

        InfluxError naming the shards and measurements still short after
        `influxdb.restore_wait_s` seconds (one line: the first SHORTFALLS_SHOWN shards)."""
        pending = [r for r in saved if r.field_values is not None and r.start and r.end]
        counted = bool(pending)
        with_data = 0 if counted else _shards_with_data(directory)
        bound = self.config.restore_wait_s
        deadline = time.monotonic() + bound
        previous: dict[int, Counter[str]] | None = None
        for poll in itertools.count():
            if counted:
                short = self._short(db, pending)
                pending = [record for record, _ in short]
                missing = [lacks for _, lacks in short]
            else:
                reason, previous = self._unsettled(db, with_data, previous)
                missing = [] if reason is None else [reason]
            if not missing:
                return
            if time.monotonic() > deadline:
                if len(missing) > SHORTFALLS_SHOWN:
                    missing[SHORTFALLS_SHOWN:] = [f"and {len(missing) - SHORTFALLS_SHOWN} more"]
                raise InfluxError(
                    f"restore into {db!r}: influxd has not loaded every restored shard after "
                    f"{bound:g} s (influxdb.restore_wait_s; its log says why): "
                    + "; ".join(missing)
                )
            if poll == 0:
                log.info("waiting for InfluxDB to load the restored shards of %s", db)
            time.sleep(RESTORE_POLL_S)

    def restore_full(
        self,
        extracted: Path,
        target: str,
        merge: bool,
        progress: Progress = no_progress,
        shards: Sequence[ShardRecord] = (),
    ) -> None:
        """Restore into a database that does not exist (every retention policy of the backup);
        with `merge`, into a temporary one whose points are then copied into `target` (SELECT
        INTO, every retention policy: `_merge`) and which is dropped. Returns
        once influxd has loaded every shard (`wait_loaded`; `shards`: the archive's records),
        else InfluxError; a merge copies nothing before that."""
        directory = extracted / "influxdb1"
        manifests = sorted(directory.glob("*.manifest"))
        if not manifests:
            raise InfluxError("restore: the archive holds no influxd backup manifest")
        files = json.loads(manifests[-1].read_text()).get("files") or []
        source_db = str(files[0]["database"]) if files else self.config.database
        saved = [r for r in shards if r.state == "saved"]
        if not merge:
            self._restore(directory, source_db, target)
            self.wait_loaded(target, saved, directory)
            progress(1)
            return
        temp = f"{target}_restore_{temporary_suffix()}"
        self._restore(directory, source_db, temp)
        try:
            try:
                self.wait_loaded(temp, saved, directory)
            except InfluxError as exc:
                raise InfluxError(f"{exc}; nothing was merged into {target!r}") from None
            self.ensure_target(target)
            self._merge(temp, target)
        finally:
            self._query(
                f"DROP DATABASE {influxql_ident(temp)}",
                "restore: drop temporary database",
                method="POST",
            )
        progress(1)

    def _merge(self, temp: str, target: str) -> None:
        """Copy every retention policy of `temp` into `target` (SELECT INTO, tags kept): its
        default policy into the target's default, each other one into the policy of its name,
        created with the backup's durations where the target lacks it (an existing one is
        used as it is)."""
        existing = {p.name: p for p in self.retention_policies(target)}
        default = next((p.name for p in existing.values() if p.default), None)
        measurements = self.measurements(temp)
        for policy in self.retention_policies(temp):
            into = default if policy.default and default is not None else policy.name
            if into not in existing:
                self.create_retention_policy(target, policy)
                existing[into] = policy
                log.info("restore: created retention policy %s on %s", into, target)
            for measurement in measurements:
                q = (
                    f"SELECT * INTO {influxql_ident(target)}.{influxql_ident(into)}.:MEASUREMENT "  # noqa: S608
                    f"FROM {influxql_ident(temp)}.{influxql_ident(policy.name)}."
                    f"{influxql_ident(measurement)} GROUP BY *"
                )
                what = f"restore: copy {policy.name}.{measurement} into {target}.{into}"
                self._query(q, what, method="POST")


def _shards_with_data(directory: Path) -> int:
    """How many of the archive's shard files (`<ts>.s<id>.tar.gz`) hold a TSM file."""
    found = 0
    for path in directory.glob("*.s*.tar.gz"):
        try:
            with tarfile.open(path, "r:gz") as tar:
                found += any(m.name.endswith(".tsm") for m in tar)
        except (OSError, tarfile.TarError) as exc:
            raise InfluxError(f"restore: shard file {path.name} is unreadable ({exc})") from None
    return found
