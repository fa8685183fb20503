"""InfluxDB 2.x over its HTTP API with an operator token, implementing
engines.protocol.DatabaseEngine. Not run against a real InfluxDB 2 here (see the README).

- dump, full: `/api/v2/backup/metadata` (KV and SQL snapshots, bucket manifests) plus
  `/api/v2/backup/shards/{id}` for every shard of the bucket and of each extra bucket,
  stored in the `influx backup` directory layout (an extracted archive is a directory
  `influx restore` reads; its manifest lists the primary bucket first, then the extra ones);
  every shard the metadata lists must arrive whole (gzip and tar read to their ends) or be
  gone (404);
- dump, incremental: a Flux query per window, its annotated CSV (annotated_csv.py) turned into
  line protocol;
- report: Flux `count()` over the range counts field values per measurement;
- write back: `/api/v2/write` in gzip batches; POST /api/v2/buckets;
- restore: `/api/v2/restore/bucketMetadata` then `/api/v2/restore/shards/{id}` for each shard;
  merging into an existing bucket goes through a temporary bucket and Flux `to()`.
"""

from __future__ import annotations

import copy
import email.parser
import email.policy
import gzip
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import requests
import urllib3

from homewatt_backup.config import InfluxDB2Config, Secrets
from homewatt_backup.engines.annotated_csv import read_records, record_to_line
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
from homewatt_backup.models import Engine, ShardRecord, temporary_suffix

log = logging.getLogger(__name__)


def flux_string(value: str) -> str:
    """A Flux string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxDB2Engine:
    """One bucket (`influxdb.org`/`influxdb.bucket`) of an InfluxDB 2.x at `influxdb.url`, and
    the extra buckets (`influxdb.extra_buckets`) its full backup also holds; for_bucket gives
    the engine of one of those."""

    engine = Engine.INFLUXDB2

    def __init__(
        self,
        config: InfluxDB2Config,
        secrets: Secrets,
        chunk_hours: float = 1,
        http: InfluxHTTP | None = None,
        attempts: int = 3,
    ) -> None:
        self.config = config
        self.source = config.source
        self.extra_buckets = tuple(config.extra_buckets)
        # the bucket of a full backup that restore_full restores: None, the primary (the
        # manifest's first); for_bucket's engines, their own
        self._backup_bucket: str | None = None
        token = secrets.influx_token or ""
        self.http = http or InfluxHTTP(
            config.url,
            config.timeout_s,
            headers={"Authorization": f"Token {token}"},
            attempts=attempts,
        )
        self.chunk = timedelta(hours=chunk_hours)

    def for_bucket(self, bucket: str) -> InfluxDB2Engine:
        view = copy.copy(self)
        view.config = self.config.model_copy(update={"bucket": bucket, "extra_buckets": []})
        view.source = view.config.source
        view.extra_buckets = ()
        view._backup_bucket = bucket
        return view

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
                try:
                    buckets = list(json.loads(payload))
                except ValueError as exc:
                    raise InfluxError(
                        f"full backup: the metadata's bucket manifest is unreadable ({exc})"
                    ) from None
            else:
                raise InfluxError(f"full backup: unexpected metadata part {name!r}")
        if "kv" not in manifest:
            raise InfluxError("full backup: the metadata answer holds no KV snapshot")
        return manifest, buckets

    def _shard(self, shard_id: int, workdir: Path, base: str, bucket: str) -> ShardRecord:
        what = f"full backup: shard {shard_id}"
        response = self.http.request(
            "GET",
            f"/api/v2/backup/shards/{shard_id}",
            what,
            ok=(200, 404),
            stream=True,
            headers={"Accept-Encoding": "gzip"},
        )
        with response:
            if response.status_code == 404:
                log.warning("shard %d was removed during the backup (retention); skipped", shard_id)
                return ShardRecord(shard_id, "expired", bucket=bucket)
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
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise InfluxError(
                    f"{what}: the transfer from InfluxDB at {self.http.url} broke off "
                    f"({type(exc).__name__}): the backup is not kept"
                ) from None
        size = check_shard_file(path, shard_id, "full backup")
        return ShardRecord(shard_id, "saved", f"influxdb2/{file_name}", size, bucket=bucket)

    def dump_full(self, workdir: Path, base: str) -> FullDump:
        target = workdir / "influxdb2"
        target.mkdir()
        manifest, buckets = self._metadata(target, base)
        org = self.config.org
        listed = {str(b.get("bucketName")): b for b in buckets if b.get("organizationName") == org}
        names = [self.config.bucket, *self.extra_buckets]
        missing = [name for name in names if name not in listed]
        if missing:
            raise InfluxError(
                f"full backup: {'bucket' if len(missing) == 1 else 'buckets'} "
                f"{', '.join(map(repr, missing))} of org {org!r} "
                f"{'is' if len(missing) == 1 else 'are'} not in InfluxDB's backup metadata "
                "(influxdb.bucket, influxdb.extra_buckets): the backup is not kept"
            )
        wanted = [listed[name] for name in names]  # the primary first (restore_full)
        records: list[ShardRecord] = []
        for bucket in wanted:
            for rp in bucket.get("retentionPolicies", []):
                for group in rp.get("shardGroups", []):
                    kept = []
                    for shard in group.get("shards", []):
                        record = self._shard(
                            int(shard["id"]), target, base, str(bucket["bucketName"])
                        )
                        records.append(record)
                        if record.file is not None:
                            path = target / record.file.removeprefix("influxdb2/")
                            entry = {
                                "fileName": path.name,
                                "size": path.stat().st_size,
                                "compression": 1,
                            }
                            kept.append({**shard, **entry})
                    group["shards"] = kept
        manifest["buckets"] = wanted
        (target / f"{base}.manifest").write_text(json.dumps(manifest, indent=2) + "\n")
        files = [(f"influxdb2/{p.name}", p) for p in sorted(target.iterdir())]
        return FullDump(files, tuple(records))

    # ---- incremental
    def flux_export(self, start: datetime, stop: datetime) -> str:
        return (
            f"from(bucket: {flux_string(self.config.bucket)})\n"
            f"  |> range(start: {seconds_iso(start)}, stop: {seconds_iso(stop)})"
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

    def count_field_values(self, start: datetime, stop: datetime) -> Counter[str]:
        flux = self.flux_export(start, stop) + "\n  |> count()"
        config = self.config
        what = f"InfluxDB: count field values of bucket {config.bucket!r} of org {config.org!r}"
        counts: Counter[str] = Counter()
        with self._query_csv(flux, what) as response:
            try:
                for record in read_records(response_text(response), what):
                    value = record.cells.get("_value", "")
                    if value:
                        counts[record.cells.get("_measurement", "")] += int(value)
            except requests.RequestException as exc:
                raise from_requests(exc, what, self.http.url) from None
        return counts

    def dump_incremental(
        self, start: datetime, stop: datetime, out: IO[str], precision: str
    ) -> Exported:
        what = "incremental export"
        exported = Exported()
        for window_start, window_stop in windows(start, stop, self.chunk):
            response = self._query_csv(self.flux_export(window_start, window_stop), what)
            with response:
                try:
                    for record in read_records(response_text(response), what):
                        converted = record_to_line(record, precision, what)
                        if converted is not None:
                            out.write(converted[1] + "\n")
                            exported.add(converted[0], 1)
                except requests.RequestException as exc:
                    raise from_requests(exc, what, self.http.url) from None
        return exported

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
        self, lines: Iterable[str], target: str, precision: str, progress: Progress = no_progress
    ) -> int:
        params = {"org": self.config.org, "bucket": target, "precision": precision}
        return self.http.post_lines(
            "/api/v2/write", params, lines, f"write into {target}", progress
        )

    def target_state(self, target: str) -> TargetState:
        if self._bucket(target) is None:
            return "absent"
        flux = f"from(bucket: {flux_string(target)})\n  |> range(start: 0)\n  |> limit(n: 1)"
        what = f"InfluxDB: is bucket {target} empty"
        with self._query_csv(flux, what) as response:
            try:
                rows = list(read_records(response_text(response), what))
            except requests.RequestException as exc:
                raise from_requests(exc, what, self.http.url) from None
        return "nonempty" if rows else "empty"

    def restore_full(
        self,
        extracted: Path,
        target: str,
        merge: bool,
        progress: Progress = no_progress,
        shards: Sequence[ShardRecord] = (),
    ) -> None:
        """Restore the backup's primary bucket (the manifest's first; or, for for_bucket's
        engine, that bucket) as `target` (bucketMetadata + shards). With `merge` (the target
        exists), restore into a temporary bucket, copy it with Flux `to()`, delete it. Each
        shard's POST is answered once InfluxDB has imported it (influxdb's
        http/restore_service.go, handleRestoreShard, imports within the request): nothing is
        left to wait for (`shards` is not needed)."""
        directory = extracted / "influxdb2"
        manifests = sorted(directory.glob("*.manifest"))
        if not manifests:
            raise InfluxError("restore: the archive holds no influx backup manifest")
        manifest = json.loads(manifests[-1].read_text())
        buckets = manifest.get("buckets", [])
        if self._backup_bucket is not None:
            buckets = [b for b in buckets if b.get("bucketName") == self._backup_bucket]
        if not buckets:
            wanted = "" if self._backup_bucket is None else f" {self._backup_bucket!r}"
            raise InfluxError(f"restore: the backup holds no bucket{wanted}")
        bucket = buckets[0]
        name = target if not merge else f"{target}-restore-{temporary_suffix()}"
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
                    f"from(bucket: {flux_string(name)})\n  |> range(start: 0)\n"
                    f"  |> to(bucket: {flux_string(target)})"
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
