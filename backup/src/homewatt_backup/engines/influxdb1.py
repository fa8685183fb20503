"""InfluxDB 1.x (Debian's 1.6 and later; the engine for 32-bit Pis), implementing
engines.protocol.DatabaseEngine.

- dump, full: `influxd backup -portable` (RPC on the bind-address, no root needed), the
  portable format `influxd restore -portable` reads; every shard SHOW SHARDS lists before and
  after it must be in its manifest, and every shard file whole at the size the manifest gives;
- dump, incremental: InfluxQL `SELECT * FROM <measurement> WHERE time >= .. AND time < ..
  GROUP BY *` over `/query` (chunked JSON), one query per measurement and window, turned into
  line protocol with the field types SHOW FIELD KEYS reports;
- report: `SELECT COUNT(*) FROM /.*/` over the range counts field values per measurement;
- write back: `/write` in gzip batches; CREATE DATABASE;
- restore: `influxd restore -portable` into a new database; merging into an existing one goes
  through a temporary database and `SELECT * INTO`.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
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
from homewatt_backup.models import Engine, ShardRecord, format_ts
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

    def shard_ids(self, db: str) -> set[int]:
        """The ids of the shards SHOW SHARDS lists for `db`."""
        rows = self._series(self._query("SHOW SHARDS", "InfluxDB: list shards"))
        return {int(v[0]) for s in rows if s.get("name") == db for v in s.get("values", [])}

    def count_field_values(self, start: datetime, stop: datetime) -> Counter[str]:
        q = (
            "SELECT COUNT(*) FROM /.*/ "  # noqa: S608 (times formatted here)
            f"WHERE time >= '{seconds_iso(start)}' AND time < '{seconds_iso(stop)}'"
        )
        counts: Counter[str] = Counter()
        for series in self._series(
            self._query(q, "InfluxDB: count field values", self.config.database)
        ):
            for row in series.get("values", []):
                counts[str(series["name"])] += sum(int(v or 0) for v in row[1:])
        return counts

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
        listed_before = self.shard_ids(db)
        target = workdir / "influxdb1"
        self._influxd(
            ["backup", "-portable", "-host", self.config.rpc_address, "-db", db, str(target)],
            what,
        )
        listed_after = self.shard_ids(db)
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
            shards.append(ShardRecord(shard_id, "saved", f"influxdb1/{name}", size))
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

    def _measurements_when_restored(self, db: str, timeout_s: float = 120) -> list[str]:
        """influxd restores shards live: they answer 'shard is disabled' for a moment."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.measurements(db)
            except InfluxError as exc:
                if "shard is disabled" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def restore_full(
        self, extracted: Path, target: str, merge: bool, progress: Progress = no_progress
    ) -> None:
        """Restore into a database that does not exist; with `merge`, into a temporary one
        whose points are then copied into `target` (SELECT INTO) and which is dropped."""
        directory = extracted / "influxdb1"
        manifests = sorted(directory.glob("*.manifest"))
        if not manifests:
            raise InfluxError("restore: the archive holds no influxd backup manifest")
        files = json.loads(manifests[-1].read_text()).get("files") or []
        source_db = str(files[0]["database"]) if files else self.config.database
        if not merge:
            self._restore(directory, source_db, target)
            self._measurements_when_restored(target)
            progress(1)
            return
        temp = f"{target}_restore_{format_ts(datetime.now(UTC)).lower()}"
        self._restore(directory, source_db, temp)
        try:
            self.ensure_target(target)
            for measurement in self._measurements_when_restored(temp):
                q = (
                    f"SELECT * INTO {influxql_ident(target)}..:MEASUREMENT FROM "  # noqa: S608
                    f"{influxql_ident(temp)}..{influxql_ident(measurement)} GROUP BY *"
                )
                self._query(q, f"restore: copy {measurement} into {target}", method="POST")
        finally:
            self._query(
                f"DROP DATABASE {influxql_ident(temp)}",
                "restore: drop temporary database",
                method="POST",
            )
        progress(1)
