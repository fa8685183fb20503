"""Database engines behind one protocol: dump (full and incremental), write line protocol,
inspect a restore target, and restore a full backup.

- InfluxDB 2 (HTTP only, operator token): the daily full is `/api/v2/backup/metadata` (KV, SQL
  and bucket manifests) plus `/api/v2/backup/shards/{id}` for every shard of the bucket, stored
  in the `influx backup` directory layout (so `influx restore` can read an extracted archive);
  the hourly incremental is a Flux query turned into line protocol.
- InfluxDB 1.x: the daily full is `influxd backup -portable` (RPC on the bind-address, no root
  needed); the hourly incremental is InfluxQL over `/query` (chunked) turned into line protocol.
"""

from __future__ import annotations

import calendar
import csv
import email.parser
import email.policy
import gzip
import io
import json
import logging
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import requests
import tenacity

from homewatt_backup.config import InfluxDB1Config, InfluxDB2Config, Secrets
from homewatt_backup.errors import InfluxError, from_requests, influx_status_error
from homewatt_backup.lineprotocol import FieldValue, format_field, format_line
from homewatt_backup.models import Engine, format_ts, iso

log = logging.getLogger(__name__)

TargetState = Literal["absent", "empty", "nonempty"]
Progress = Callable[[int], None]
PRECISION_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
WRITE_BATCH_LINES = 5000


def _no_progress(_: int) -> None:
    return None


class DumpEngine(Protocol):
    """What the backup and restore flows need of a database engine."""

    engine: Engine
    source: str

    def version(self) -> str: ...

    def dump_full(self, workdir: Path, base: str) -> list[tuple[str, Path]]:
        """Write a full backup into `workdir`; return (name in archive, file) pairs."""
        ...

    def dump_incremental(
        self, start: datetime, stop: datetime, out: IO[str], precision: str
    ) -> int:
        """Write points with start <= time < stop as line protocol; return the line count."""
        ...

    def write_lines(
        self, lines: Iterable[str], target: str, precision: str, progress: Progress = _no_progress
    ) -> int: ...

    def target_state(self, target: str) -> TargetState: ...

    def ensure_target(self, target: str) -> None: ...

    def restore_full(
        self, extracted: Path, target: str, merge: bool, progress: Progress = _no_progress
    ) -> None: ...

    def write_health(self, line: str) -> None: ...


class _Retryable(Exception):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class InfluxHTTP:
    """requests against one InfluxDB with retries on connection errors and 5xx, and every
    failure translated into one InfluxError line."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        attempts: int = 3,
        wait: tenacity.wait.wait_base | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.session.auth = auth
        self.attempts = attempts
        self.wait = wait or tenacity.wait_exponential(multiplier=0.5, max=8)

    def request(
        self,
        method: str,
        path: str,
        what: str,
        ok: tuple[int, ...] = (200, 204),
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        url = f"{self.url}{path}"
        # a streamed body (a shard file) cannot be sent twice: no retry for it
        attempts = 1 if hasattr(kwargs.get("data"), "read") else self.attempts

        @tenacity.retry(
            retry=tenacity.retry_if_exception_type(
                (requests.ConnectionError, requests.Timeout, _Retryable)
            ),
            stop=tenacity.stop_after_attempt(attempts),
            wait=self.wait,
            reraise=True,
        )
        def attempt() -> requests.Response:
            response = self.session.request(
                method, url, timeout=self.timeout_s, stream=stream, **kwargs
            )
            if response.status_code >= 500:
                raise _Retryable(response)
            return response

        try:
            response = attempt()
        except _Retryable as exc:
            raise influx_status_error(what, exc.response.status_code, exc.response.text) from None
        except requests.RequestException as exc:
            raise from_requests(exc, what, self.url) from None
        if response.status_code not in ok:
            body = response.text
            response.close()
            raise influx_status_error(what, response.status_code, body)
        return response

    def version(self) -> str:
        response = self.request("GET", "/ping", "InfluxDB ping")
        return response.headers.get("X-Influxdb-Version", "unknown")


def _seconds_iso(ts: datetime) -> str:
    return iso(ts.astimezone(UTC).replace(microsecond=0)) or ""


def _windows(
    start: datetime, stop: datetime, chunk: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    cursor = start
    while cursor < stop:
        end = min(cursor + chunk, stop)
        yield cursor, end
        cursor = end


def _rfc3339_to_epoch(text: str, precision: str) -> int:
    """RFC3339 with up to nanoseconds, e.g. 2026-11-23T19:00:00.123456789Z, in `precision`."""
    main, _, frac = text.rstrip("Z").partition(".")
    whole = calendar.timegm(datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").timetuple())
    nanos = int((frac + "000000000")[:9]) if frac else 0
    per_second = PRECISION_PER_SECOND[precision]
    return whole * per_second + nanos // (1_000_000_000 // per_second)


def _gzip_batches(lines: Iterable[str], size: int) -> Iterator[tuple[bytes, int]]:
    batch: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        batch.append(line)
        if len(batch) >= size:
            yield gzip.compress(("\n".join(batch) + "\n").encode(), 6), len(batch)
            batch = []
    if batch:
        yield gzip.compress(("\n".join(batch) + "\n").encode(), 6), len(batch)


# --------------------------------------------------------------------------- InfluxDB 1.x


def _influxql_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxDB1Engine:
    """InfluxDB 1.x (Debian's 1.6 and later; the engine for 32-bit Pis)."""

    engine = Engine.INFLUXDB1

    def __init__(
        self,
        config: InfluxDB1Config,
        secrets: Secrets,
        chunk_hours: float = 1,
        http: InfluxHTTP | None = None,
    ) -> None:
        self.config = config
        self.source = config.database
        auth = None
        if config.username is not None and secrets.influx_password is not None:
            auth = (config.username, secrets.influx_password)
        self.http = http or InfluxHTTP(config.url, config.timeout_s, auth=auth)
        self.chunk = timedelta(hours=chunk_hours)

    def version(self) -> str:
        return self.http.version()

    def _query(
        self, q: str, what: str, db: str | None = None, method: str = "GET"
    ) -> list[dict[str, Any]]:
        params = {"q": q}
        if db is not None:
            params["db"] = db
        if method == "GET":
            response = self.http.request("GET", "/query", what, params=params)
        else:
            response = self.http.request("POST", "/query", what, data=params)
        results = response.json().get("results", [])
        for result in results:
            if "error" in result:
                raise InfluxError(f"{what}: {result['error']}")
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
        q = f"SHOW FIELD KEYS FROM {_influxql_ident(measurement)}"
        rows = self._series(self._query(q, "InfluxDB: list field keys", db))
        types: dict[str, str] = {}
        for series in rows:
            for key, kind in series.get("values", []):
                types.setdefault(str(key), str(kind))
        return types

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

    def dump_full(self, workdir: Path, base: str) -> list[tuple[str, Path]]:
        self._check_rpc("full backup")
        target = workdir / "influxdb1"
        argv = [
            self.config.influxd,
            "backup",
            "-portable",
            "-host",
            self.config.rpc_address,
            "-db",
            self.config.database,
            str(target),
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=6 * 3600, check=False
            )
        except FileNotFoundError:
            raise InfluxError(
                f"full backup: {self.config.influxd!r} not found: install InfluxDB "
                "1.x's influxd or set influxdb.influxd to its path"
            ) from None
        except subprocess.TimeoutExpired:
            raise InfluxError("full backup: influxd backup did not finish in 6 hours") from None
        if done.returncode != 0:
            lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit status {done.returncode}"
            raise InfluxError(
                f"full backup: influxd backup -portable from "
                f"{self.config.rpc_address} failed: {detail}"
            )
        files = sorted(p for p in target.iterdir() if p.is_file())
        if not files:
            raise InfluxError("full backup: influxd backup wrote no files")
        return [(f"influxdb1/{p.name}", p) for p in files]

    def _select(
        self, db: str, measurement: str, start: datetime, stop: datetime, precision: str
    ) -> Iterator[dict[str, Any]]:
        # identifiers are quoted by _influxql_ident, times formatted here: no injection
        q = (
            f"SELECT * FROM {_influxql_ident(measurement)} "  # noqa: S608 (quoted identifiers)
            f"WHERE time >= '{_seconds_iso(start)}'"
            f" AND time < '{_seconds_iso(stop)}' GROUP BY *"
        )
        params = {"q": q, "db": db, "epoch": precision, "chunked": "true", "chunk_size": "10000"}
        response = self.http.request(
            "GET", "/query", "incremental export", params=params, stream=True
        )
        with response:
            try:
                for raw in response.iter_lines():
                    if not raw:
                        continue
                    for result in json.loads(raw).get("results", []):
                        if "error" in result:
                            raise InfluxError(f"incremental export: {result['error']}")
                        yield from result.get("series", [])
            except requests.RequestException as exc:
                raise from_requests(exc, "incremental export", self.http.url) from None

    def dump_incremental(
        self, start: datetime, stop: datetime, out: IO[str], precision: str
    ) -> int:
        db = self.config.database
        count = 0
        for measurement in self.measurements(db):
            types = self.field_types(db, measurement)
            for window_start, window_stop in _windows(start, stop, self.chunk):
                for series in self._select(db, measurement, window_start, window_stop, precision):
                    tags = {str(k): str(v) for k, v in (series.get("tags") or {}).items()}
                    columns = list(series["columns"])
                    for row in series.get("values", []):
                        fields: dict[str, str] = {}
                        for column, value in zip(columns[1:], row[1:], strict=True):
                            if value is None:
                                continue
                            kind = types.get(column) or _json_type(value)
                            formatted = format_field(value, kind)
                            if formatted is not None:
                                fields[column] = formatted
                        if fields:
                            out.write(format_line(series["name"], tags, fields, int(row[0])) + "\n")
                            count += 1
        return count

    def ensure_target(self, target: str) -> None:
        self._query(
            f"CREATE DATABASE {_influxql_ident(target)}", "InfluxDB: create database", method="POST"
        )

    def write_lines(
        self, lines: Iterable[str], target: str, precision: str, progress: Progress = _no_progress
    ) -> int:
        total = 0
        for body, count in _gzip_batches(lines, WRITE_BATCH_LINES):
            self.http.request(
                "POST",
                "/write",
                f"write into {target}",
                data=body,
                params={"db": target, "precision": precision},
                headers={"Content-Encoding": "gzip"},
            )
            total += count
            progress(count)
        return total

    def target_state(self, target: str) -> TargetState:
        if target not in self.databases():
            return "absent"
        return "nonempty" if self.measurements(target) else "empty"

    def _restore(self, extracted: Path, source_db: str, new_db: str) -> None:
        self._check_rpc("restore")
        argv = [
            self.config.influxd,
            "restore",
            "-portable",
            "-host",
            self.config.rpc_address,
            "-db",
            source_db,
            "-newdb",
            new_db,
            str(extracted),
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=6 * 3600, check=False
            )
        except FileNotFoundError:
            raise InfluxError(f"restore: {self.config.influxd!r} not found") from None
        if done.returncode != 0:
            lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit status {done.returncode}"
            raise InfluxError(
                f"restore: influxd restore -portable into {new_db!r} failed: {detail}"
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
        self, extracted: Path, target: str, merge: bool, progress: Progress = _no_progress
    ) -> None:
        """Restore into a database that does not exist; with `merge`, into a temporary one
        whose points are then copied into `target` (SELECT INTO) and which is dropped."""
        directory = extracted / "influxdb1"
        manifests = sorted(directory.glob("*.manifest"))
        if not manifests:
            raise InfluxError("restore: the archive holds no influxd backup manifest")
        files = json.loads(manifests[-1].read_text()).get("files", [])
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
                    f"SELECT * INTO {_influxql_ident(target)}..:MEASUREMENT FROM "  # noqa: S608
                    f"{_influxql_ident(temp)}..{_influxql_ident(measurement)} GROUP BY *"
                )
                self._query(q, f"restore: copy {measurement} into {target}", method="POST")
        finally:
            self._query(
                f"DROP DATABASE {_influxql_ident(temp)}",
                "restore: drop temporary database",
                method="POST",
            )
        progress(1)

    def write_health(self, line: str) -> None:
        target = self.config.health_database or self.config.database
        self.write_lines([line], target, "s")


def _json_type(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "float"


# --------------------------------------------------------------------------- InfluxDB 2.x

_FLUX_META = {"", "result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}


def _flux_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def annotated_csv_to_lines(text_lines: Iterable[str], precision: str) -> Iterator[str]:
    """Line protocol from InfluxDB's annotated CSV (annotations datatype, group, default).

    Each table may have its own columns; an `error,reference` table raises InfluxError.
    """
    datatypes: list[str] = []
    defaults: list[str] = []
    header: list[str] | None = None
    for row in csv.reader(text_lines):
        if not row or all(cell == "" for cell in row):
            header = None  # a blank line ends a table; annotations follow
            continue
        first = row[0]
        if first == "#datatype":
            datatypes, header = row, None
            continue
        if first == "#default":
            defaults = row
            continue
        if first.startswith("#"):
            continue
        if header is None:
            header = row
            if set(header) - {""} == {"error", "reference"}:
                header = ["__error__", *header[1:]]
            continue
        if header[0] == "__error__":
            raise InfluxError(f"incremental export: InfluxDB query error: {row[1]}")
        values = [
            cell if cell != "" or i >= len(defaults) else defaults[i] for i, cell in enumerate(row)
        ]
        record = dict(zip(header, values, strict=False))
        kinds = dict(zip(header, datatypes, strict=False))
        value = record.get("_value", "")
        if value == "":
            continue
        field_type = kinds.get("_value", "double")
        typed: FieldValue = value
        if field_type == "double":
            typed = float(value)
        formatted = format_field(typed, field_type)
        if formatted is None:
            continue
        tags = {k: v for k, v in record.items() if k not in _FLUX_META and v != ""}
        timestamp = _rfc3339_to_epoch(record["_time"], precision)
        yield format_line(record["_measurement"], tags, {record["_field"]: formatted}, timestamp)


class InfluxDB2Engine:
    """InfluxDB 2.x over its HTTP API (not run against a real InfluxDB 2 here: see README)."""

    engine = Engine.INFLUXDB2

    def __init__(
        self,
        config: InfluxDB2Config,
        secrets: Secrets,
        chunk_hours: float = 1,
        http: InfluxHTTP | None = None,
    ) -> None:
        self.config = config
        self.source = config.source
        token = secrets.influx_token or ""
        self.http = http or InfluxHTTP(
            config.url, config.timeout_s, headers={"Authorization": f"Token {token}"}
        )
        self.chunk = timedelta(hours=chunk_hours)

    def version(self) -> str:
        return self.http.version()

    # ---- full backup
    def _metadata(self, workdir: Path, base: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        response = self.http.request(
            "GET",
            "/api/v2/backup/metadata",
            "full backup: metadata",
            headers={"Accept-Encoding": "gzip"},
        )
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/"):
            raise InfluxError(
                f"full backup: metadata answer is {content_type or 'untyped'}, "
                "not multipart (InfluxDB 2.1 or later is needed)"
            )
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + response.content
        )
        manifest: dict[str, Any] = {"manifestVersion": 2, "buckets": []}
        buckets: list[dict[str, Any]] = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                raise InfluxError(f"full backup: metadata part {name!r} is empty")
            if name in ("kv", "sql"):
                file_name = f"{base}.{'bolt' if name == 'kv' else 'sqlite'}.gz"
                path = workdir / file_name
                path.write_bytes(gzip.compress(payload, 6))
                manifest[name] = {
                    "fileName": file_name,
                    "size": path.stat().st_size,
                    "compression": 1,
                }
            elif name == "buckets":
                buckets = list(json.loads(payload))
            else:
                raise InfluxError(f"full backup: unexpected metadata part {name!r}")
        if "kv" not in manifest:
            raise InfluxError("full backup: the metadata answer holds no KV snapshot")
        return manifest, buckets

    def _shard(self, shard_id: int, workdir: Path, base: str) -> dict[str, Any] | None:
        response = self.http.request(
            "GET",
            f"/api/v2/backup/shards/{shard_id}",
            f"full backup: shard {shard_id}",
            ok=(200, 404),
            stream=True,
            headers={"Accept-Encoding": "gzip"},
        )
        with response:
            if response.status_code == 404:
                log.warning("shard %d was removed during the backup; skipped", shard_id)
                return None
            file_name = f"{base}.{shard_id}.tar.gz"
            path = workdir / file_name
            compressed = response.headers.get("Content-Encoding", "") == "gzip"
            try:
                with path.open("xb") as raw_out:
                    # stored gzip-compressed as `influx backup` does; recompress only if needed
                    sink = raw_out if compressed else gzip.GzipFile(fileobj=raw_out, mode="wb")
                    try:
                        while chunk := response.raw.read(1 << 20, decode_content=False):
                            sink.write(chunk)
                    finally:
                        if sink is not raw_out:
                            sink.close()
            except requests.RequestException as exc:
                raise from_requests(exc, f"full backup: shard {shard_id}", self.http.url) from None
        return {"fileName": file_name, "size": path.stat().st_size, "compression": 1}

    def dump_full(self, workdir: Path, base: str) -> list[tuple[str, Path]]:
        target = workdir / "influxdb2"
        target.mkdir()
        manifest, buckets = self._metadata(target, base)
        wanted = [
            b
            for b in buckets
            if b.get("organizationName") == self.config.org
            and b.get("bucketName") == self.config.bucket
        ]
        if not wanted:
            raise InfluxError(
                f"full backup: bucket {self.config.bucket!r} of org "
                f"{self.config.org!r} is not in InfluxDB's backup metadata"
            )
        for bucket in wanted:
            for rp in bucket.get("retentionPolicies", []):
                for group in rp.get("shardGroups", []):
                    kept = []
                    for shard in group.get("shards", []):
                        entry = self._shard(int(shard["id"]), target, base)
                        if entry is not None:
                            kept.append({**shard, **entry})
                    group["shards"] = kept
        manifest["buckets"] = wanted
        (target / f"{base}.manifest").write_text(json.dumps(manifest, indent=2) + "\n")
        return [(f"influxdb2/{p.name}", p) for p in sorted(target.iterdir())]

    # ---- incremental
    def flux_export(self, start: datetime, stop: datetime) -> str:
        return (
            f"from(bucket: {_flux_string(self.config.bucket)})\n"
            f"  |> range(start: {_seconds_iso(start)}, stop: {_seconds_iso(stop)})"
        )

    def _query_csv(self, flux: str, what: str) -> requests.Response:
        body = {
            "query": flux,
            "type": "flux",
            "dialect": {
                "header": True,
                "delimiter": ",",
                "annotations": ["datatype", "group", "default"],
                "dateTimeFormat": "RFC3339Nano",
            },
        }
        return self.http.request(
            "POST",
            "/api/v2/query",
            what,
            params={"org": self.config.org},
            json=body,
            stream=True,
            headers={"Accept": "application/csv", "Accept-Encoding": "gzip"},
        )

    def dump_incremental(
        self, start: datetime, stop: datetime, out: IO[str], precision: str
    ) -> int:
        count = 0
        for window_start, window_stop in _windows(start, stop, self.chunk):
            response = self._query_csv(
                self.flux_export(window_start, window_stop), "incremental export"
            )
            with response:
                try:
                    lines = response.iter_lines(decode_unicode=True)
                    for line in annotated_csv_to_lines(lines, precision):
                        out.write(line + "\n")
                        count += 1
                except requests.RequestException as exc:
                    raise from_requests(exc, "incremental export", self.http.url) from None
        return count

    # ---- writes, targets, restore
    def _org_id(self) -> str:
        response = self.http.request(
            "GET",
            "/api/v2/orgs",
            "InfluxDB: find org",
            params={"org": self.config.org},
            ok=(200, 404),
        )
        orgs = response.json().get("orgs", []) if response.status_code == 200 else []
        if not orgs:
            raise InfluxError(f"InfluxDB: org {self.config.org!r} not found")
        return str(orgs[0]["id"])

    def _bucket(self, name: str) -> dict[str, Any] | None:
        response = self.http.request(
            "GET",
            "/api/v2/buckets",
            "InfluxDB: find bucket",
            params={"org": self.config.org, "name": name},
            ok=(200, 404),
        )
        if response.status_code == 404:
            return None
        found = [b for b in response.json().get("buckets", []) if b.get("name") == name]
        return found[0] if found else None

    def ensure_target(self, target: str) -> None:
        if self._bucket(target) is None:
            self.http.request(
                "POST",
                "/api/v2/buckets",
                f"InfluxDB: create bucket {target}",
                ok=(201,),
                json={"orgID": self._org_id(), "name": target, "retentionRules": []},
            )

    def write_lines(
        self, lines: Iterable[str], target: str, precision: str, progress: Progress = _no_progress
    ) -> int:
        total = 0
        for body, count in _gzip_batches(lines, WRITE_BATCH_LINES):
            self.http.request(
                "POST",
                "/api/v2/write",
                f"write into {target}",
                data=body,
                params={"org": self.config.org, "bucket": target, "precision": precision},
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
            )
            total += count
            progress(count)
        return total

    def target_state(self, target: str) -> TargetState:
        if self._bucket(target) is None:
            return "absent"
        flux = f"from(bucket: {_flux_string(target)})\n  |> range(start: 0)\n  |> limit(n: 1)"
        response = self._query_csv(flux, f"InfluxDB: is bucket {target} empty")
        with response:
            rows = list(annotated_csv_to_lines(response.iter_lines(decode_unicode=True), "s"))
        return "nonempty" if rows else "empty"

    def restore_full(
        self, extracted: Path, target: str, merge: bool, progress: Progress = _no_progress
    ) -> None:
        """Restore the bucket as `target` (bucketMetadata + shards). With `merge` (the target
        exists), restore into a temporary bucket, copy it with Flux `to()`, delete it."""
        directory = extracted / "influxdb2"
        manifests = sorted(directory.glob("*.manifest"))
        if not manifests:
            raise InfluxError("restore: the archive holds no influx backup manifest")
        manifest = json.loads(manifests[-1].read_text())
        buckets = manifest.get("buckets", [])
        if len(buckets) != 1:
            raise InfluxError(f"restore: expected one bucket in the backup, found {len(buckets)}")
        bucket = buckets[0]
        suffix = format_ts(datetime.now(UTC)).lower()
        name = target if not merge else f"{target}-restore-{suffix}"
        body = restore_bucket_request(bucket, self._org_id(), name)
        response = self.http.request(
            "POST",
            "/api/v2/restore/bucketMetadata",
            f"restore: create bucket {name}",
            ok=(200, 201),
            json=body,
        )
        mapping = {
            int(m["oldId"]): int(m["newId"]) for m in response.json().get("shardMappings", [])
        }
        restored_id = str(response.json().get("id", ""))
        try:
            for rp in bucket.get("retentionPolicies", []):
                for group in rp.get("shardGroups", []):
                    for shard in group.get("shards", []):
                        new_id = mapping.get(int(shard["id"]))
                        if new_id is None:
                            log.warning("InfluxDB did not map shard %s; skipped", shard["id"])
                            continue
                        with (directory / shard["fileName"]).open("rb") as data:
                            self.http.request(
                                "POST",
                                f"/api/v2/restore/shards/{new_id}",
                                f"restore: shard {shard['id']}",
                                data=data,
                                headers={
                                    "Content-Type": "application/octet-stream",
                                    "Content-Encoding": "gzip",
                                },
                            )
                        progress(1)
            if merge:
                flux = (
                    f"from(bucket: {_flux_string(name)})\n  |> range(start: 0)\n"
                    f"  |> to(bucket: {_flux_string(target)})"
                )
                self._query_csv(flux, f"restore: copy into {target}").close()
        finally:
            if merge and restored_id:
                self.http.request(
                    "DELETE",
                    f"/api/v2/buckets/{restored_id}",
                    "restore: delete the temporary bucket",
                )

    def write_health(self, line: str) -> None:
        self.write_lines([line], self.config.health_bucket or self.config.bucket, "s")


def restore_bucket_request(bucket: dict[str, Any], org_id: str, new_name: str) -> dict[str, Any]:
    """The body of POST /api/v2/restore/bucketMetadata for a bucket from a backup manifest:
    the manifest's bucket with the target org and name, shard file details dropped."""
    body = {k: v for k, v in bucket.items() if k != "retentionPolicies"}
    body["organizationID"] = org_id
    body["bucketName"] = new_name
    policies = []
    for rp in bucket.get("retentionPolicies", []):
        groups = []
        for group in rp.get("shardGroups", []):
            shards = [
                {"id": s["id"], "shardOwners": s.get("shardOwners", [])}
                for s in group.get("shards", [])
            ]
            groups.append({**{k: v for k, v in group.items() if k != "shards"}, "shards": shards})
        policies.append(
            {**{k: v for k, v in rp.items() if k != "shardGroups"}, "shardGroups": groups}
        )
    body["retentionPolicies"] = policies
    return body


def make_engine(
    config: InfluxDB1Config | InfluxDB2Config, secrets: Secrets, chunk_hours: float = 1
) -> DumpEngine:
    if isinstance(config, InfluxDB2Config):
        return InfluxDB2Engine(config, secrets, chunk_hours)
    return InfluxDB1Engine(config, secrets, chunk_hours)


def open_text_gzip(path: Path) -> IO[str]:
    return io.TextIOWrapper(gzip.open(path, "wb", compresslevel=6), encoding="utf-8", newline="\n")
