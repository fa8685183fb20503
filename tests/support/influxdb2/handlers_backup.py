"""/api/v2/backup/* and /api/v2/restore/*: the HTTP API `influx backup` and `influx restore`
(and homewatt-backup) use.

Reconstructed from influxdb v2.7.12: http/backup_service.go (metadata: multipart/mixed with
the parts kv, sql and buckets, headers sorted, a random 60-hex-digit boundary as Go's
mime/multipart makes; only an operator token, 401 "read:authorizations is unauthorized" for
any other, an all-access token included), authorizer/backup.go and authorizer/restore.go
(operator for shards and every restore), tsdb/store.go (404 "shard <id> not found"),
backup/backup.go (the buckets manifest: every bucket with its `autogen` retention policy and
shard groups, compact JSON and a newline), http/restore_service.go (bucketMetadata creates
the bucket, maps each shard of the manifest to a new one and answers 201 {id, name,
shardMappings}; a failed restore deletes the bucket again; restore of a shard answers 200
with no body; restore of the KV answers {"token": <an operator token>}).

What differs, on purpose and documented: the kv part is the stand-in's metadata as JSON (not
a BoltDB file), the sql part an SQLite image without notebooks, and a shard is a tar of one
line-protocol file (not TSM files). Each restores into the stand-in, not into a real influxd,
and a real backup's TSM shards cannot be restored into the stand-in (400 naming the limit).
"""

from __future__ import annotations

import gzip
import secrets
import tarfile
import zlib
from typing import Any

from . import gojson
from .auth import operator_permissions
from .errors import INVALID, NOT_FOUND, APIError, unsupported
from .handlers_tenant import create_bucket_doc, find_org
from .server import Call, Reply, Router, json_reply

SQL_FILE = "standin-sql.sqlite"


def register(router: Router) -> None:
    router.add("GET", "/api/v2/backup/metadata", backup_metadata)
    router.add("GET", "/api/v2/backup/kv", backup_kv)
    router.add("GET", "/api/v2/backup/shards/{id}", backup_shard)
    router.add("POST", "/api/v2/restore/bucketMetadata", restore_bucket_metadata)
    router.add("POST", "/api/v2/restore/bucket-metadata", restore_bucket_metadata)
    router.add("POST", "/api/v2/restore/shards/{id}", restore_shard)
    router.add("POST", "/api/v2/restore/kv", restore_kv)
    router.add("POST", "/api/v2/restore/sql", restore_sql)


def _operator(call: Call, *, pretty: bool = False) -> None:
    call.auth.require_all(operator_permissions(), pretty=pretty)


def bucket_manifests(call: Call) -> list[dict[str, Any]]:
    manifests = []
    for bucket in call.store.all("buckets"):
        org = call.store.get("orgs", bucket["orgID"]) or {"name": ""}
        groups = [g for g in call.store.shard_groups(bucket["id"]) if g.deleted_ns is None]
        manifest: dict[str, Any] = {
            "organizationID": bucket["orgID"],
            "organizationName": org["name"],
            "bucketID": bucket["id"],
            "bucketName": bucket["name"],
        }
        if bucket.get("description"):
            manifest["description"] = bucket["description"]
        manifest["defaultRetentionPolicy"] = "autogen"
        manifest["retentionPolicies"] = [
            {
                "name": "autogen",
                "replicaN": 1,
                "duration": bucket["retentionPeriod"],
                "shardGroupDuration": bucket["shardGroupDuration"],
                "shardGroups": [
                    {
                        "id": g.id,
                        "startTime": gojson.rfc3339nano(g.start_ns),
                        "endTime": gojson.rfc3339nano(g.end_ns),
                        "shards": [{"id": g.shard_id, "shardOwners": [{"nodeID": 0}]}],
                    }
                    for g in groups
                ],
                "subscriptions": [],
            }
        ]
        manifests.append(manifest)
    return manifests


def sql_image(call: Call) -> bytes:
    restored = call.store.path.parent / SQL_FILE
    return restored.read_bytes() if restored.exists() else call.store.sql_snapshot()


def backup_metadata(call: Call) -> Reply:
    _operator(call)
    with call.store.lock:  # RLockKVStore: one consistent view
        parts = [
            ('attachment; name="kv"', "application/octet-stream", call.store.kv_snapshot()),
            ('attachment; name="sql"', "application/octet-stream", sql_image(call)),
            (
                'attachment; name="buckets"',
                "application/json; charset=utf-8",
                gojson.encoder_line(bucket_manifests(call)),
            ),
        ]
    boundary = secrets.token_hex(30)
    body = b""
    for index, (disposition, kind, payload) in enumerate(parts):
        body += (b"\r\n" if index else b"") + (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n"
        ).encode()
        body += payload
    body += f"\r\n--{boundary}--\r\n".encode()
    return Reply(
        200, body, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, gzip_capable=True
    )


def backup_kv(call: Call) -> Reply:
    _operator(call)
    return Reply(200, call.store.kv_snapshot(), {"Content-Type": "application/octet-stream"})


def _shard_id(call: Call) -> int:
    text = call.params["id"]
    if not text.isdigit():
        raise APIError("internal error", "An internal error has occurred")  # strconv error
    return int(text)


def backup_shard(call: Call) -> Reply:
    shard_id = _shard_id(call)
    if call.arg("since"):
        raise unsupported(
            "backing up a shard `since` a time is not supported; the whole shard is sent without it"
        )
    _operator(call)
    if call.store.shard(shard_id) is None:
        raise APIError(NOT_FOUND, f"shard {shard_id} not found")
    return Reply(
        200,
        call.store.shard_archive(shard_id),
        {"Content-Type": "application/octet-stream"},
        gzip_capable=True,
    )


def _body(call: Call) -> bytes:
    body = call.request.body
    if call.request.header("Content-Encoding") == "gzip":
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise APIError(INVALID, f"failed to decode gzip request body: {exc}") from None
    return body


def restore_bucket_metadata(call: Call) -> Reply:
    manifest = call.body_json(what="failed to unmarshal json")
    if not isinstance(manifest, dict):
        raise APIError(INVALID, "failed to unmarshal json: not an object", pretty=True)
    org_id = str(manifest.get("organizationID") or "")
    find_org(call, org_id=org_id)
    policies = manifest.get("retentionPolicies") or []
    retention = int(policies[0].get("duration", 0)) if policies else 0
    sgd = int(policies[0].get("shardGroupDuration", 0)) if policies else 0
    bucket = create_bucket_doc(
        call.store,
        org_id,
        str(manifest.get("bucketName") or ""),
        retention,
        sgd,
        description=str(manifest.get("description") or ""),
    )
    try:
        _operator(call, pretty=True)
    except APIError:
        call.store.delete("buckets", bucket["id"])  # "Cleaning up after failed bucket-restore"
        raise
    mappings = []
    for policy in policies[:1]:
        for group in policy.get("shardGroups") or []:
            start = gojson.parse_rfc3339(group["startTime"])
            end = gojson.parse_rfc3339(group["endTime"])
            for shard in group.get("shards") or []:
                new_id = call.store.create_shard_group(bucket["id"], start, end)
                mappings.append({"oldId": int(shard["id"]), "newId": new_id})
    mappings.sort(key=lambda m: m["oldId"])
    return json_reply(201, {"id": bucket["id"], "name": bucket["name"], "shardMappings": mappings})


def restore_shard(call: Call) -> Reply:
    shard_id = _shard_id(call)
    body = _body(call)
    _operator(call)
    if call.store.shard(shard_id) is None:
        raise APIError(NOT_FOUND, f"shard {shard_id} not found")
    try:
        call.store.restore_shard(shard_id, body)
    except (tarfile.TarError, ValueError) as exc:
        raise unsupported(
            f"shard {shard_id}: only shard archives made by the stand-in can be restored ({exc})"
        ) from None
    return Reply(200)


def restore_kv(call: Call) -> Reply:
    body = _body(call)
    _operator(call)
    try:
        call.store.restore_kv(body)
    except (ValueError, KeyError) as exc:
        raise unsupported(
            f"only a KV snapshot made by the stand-in can be restored ({exc})"
        ) from None
    operator = next(
        (
            a
            for a in call.store.all("authorizations")
            if all(p in a["permissions"] for p in operator_permissions())
        ),
        None,
    )
    if operator is None:
        raise APIError(
            "internal error",
            "invalid backup without an operator token, consider editing the BoltDB in the "
            "backup with 'influxd recovery'",
        )
    return json_reply(200, {"token": operator["token"]})


def restore_sql(call: Call) -> Reply:
    body = _body(call)
    _operator(call)
    if not body.startswith(b"SQLite format 3\x00"):
        raise unsupported("the SQL restore body is not an SQLite database")
    (call.store.path.parent / SQL_FILE).write_bytes(body)
    return Reply(200)
