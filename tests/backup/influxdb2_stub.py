"""A recording HTTP stub of the few InfluxDB 2 endpoints homewatt-backup calls.

It is NOT InfluxDB 2 (no InfluxDB 2 server can run here: see ../shared/platform.md). It
answers with fixed payloads shaped like InfluxDB 2.7's documented API (multipart backup
metadata, shard snapshots, annotated CSV, restore mappings) and records every request, so the
tests can check what the client sends and how it handles the answers. Tests using it say
`not_run_against_a_real_influxdb2` in their names.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ORG, ORG_ID, BUCKET, BUCKET_ID = "homewatt", "0a1b2c3d4e5f6071", "homewatt", "1b2c3d4e5f607182"
TOKEN = "stub-operator-token"
KV_BYTES = b"bolt database bytes \x00\x01" * 50
SQL_BYTES = b"SQLite format 3\x00" + b"\x02" * 200
SHARD_BYTES = {1: b"tsm shard one " * 100, 2: b"tsm shard two " * 100, 9: b"other bucket"}
VERSION = "v2.7.11"


def bucket_manifest(bucket: str, bucket_id: str, shard_ids: list[int]) -> dict[str, Any]:
    return {
        "organizationID": ORG_ID,
        "organizationName": ORG,
        "bucketID": bucket_id,
        "bucketName": bucket,
        "defaultRetentionPolicy": "autogen",
        "retentionPolicies": [
            {
                "name": "autogen",
                "replicaN": 1,
                "duration": 0,
                "shardGroupDuration": 604800000000000,
                "shardGroups": [
                    {
                        "id": 100 + sid,
                        "startTime": "2026-11-16T00:00:00Z",
                        "endTime": "2026-11-23T00:00:00Z",
                        "shards": [{"id": sid, "shardOwners": [{"nodeID": 0}]}],
                    }
                    for sid in shard_ids
                ],
                "subscriptions": [],
            }
        ],
    }


METADATA_BUCKETS = [
    bucket_manifest(BUCKET, BUCKET_ID, [1, 2, 3]),
    bucket_manifest("other", "2c3d4e5f60718293", [9]),
]

# Annotated CSV shaped like InfluxDB 2's /api/v2/query answer (datatype, group, default
# annotations; one table per series and type; a null value; an escaped string).
ANNOTATED_CSV = (Path(__file__).parent / "fixtures" / "influxdb2_export.csv").read_text()

EXPECTED_LINES = [
    "electricity,channel=l1,device=meter\\ 1 power_w=231.5 1795435201",
    "electricity,channel=l1,device=meter\\ 1 power_w=230.0 1795435202",
    "homewatt_health,unit=collector read_errors=3i 1795435201",
    "electricity,device=plug relay_on=true 1795435203",
    'electricity,device=plug note="kettle \\"on\\", 2 kW" 1795435204',
]

ERROR_CSV = '''#datatype,string,string
#group,true,true
#default,,
,error,reference
,"failed to initialize execute state: could not find bucket ""nope""",897
'''


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def multipart_metadata() -> tuple[bytes, str]:
    boundary = "stubboundary1234"
    parts = [
        ("kv", "application/octet-stream", KV_BYTES),
        ("sql", "application/octet-stream", SQL_BYTES),
        ("buckets", "application/json", json.dumps(METADATA_BUCKETS).encode()),
    ]
    body = b""
    for name, kind, payload in parts:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: attachment; name="{name}"\r\n'
                f"Content-Type: {kind}\r\n\r\n"
            ).encode()
            + payload
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/mixed; boundary={boundary}"


class InfluxDB2Stub:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.buckets: dict[str, str] = {BUCKET: BUCKET_ID}
        self.overrides: dict[tuple[str, str], Callable[[Recorded], Reply]] = {}
        self.query_csv = ANNOTATED_CSV
        self.next_shard_id = 500
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                record = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers.items()),
                    body,
                )
                stub.requests.append(record)
                reply = stub.answer(record)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> InfluxDB2Stub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def answer(self, r: Recorded) -> Reply:  # noqa: PLR0911, PLR0912 (a branch per endpoint)
        override = self.overrides.get((r.method, r.path))
        if override is not None:
            return override(r)
        if r.path != "/ping" and r.headers.get("Authorization") != f"Token {TOKEN}":
            return Reply(401, b'{"code":"unauthorized","message":"unauthorized access"}')
        json_type = {"Content-Type": "application/json"}
        if r.path == "/ping":
            return Reply(204, headers={"X-Influxdb-Version": VERSION})
        if r.method == "GET" and r.path == "/api/v2/backup/metadata":
            body, kind = multipart_metadata()
            return Reply(200, body, {"Content-Type": kind})
        if r.method == "GET" and r.path.startswith("/api/v2/backup/shards/"):
            shard = int(r.path.rsplit("/", 1)[1])
            if shard not in SHARD_BYTES:
                return Reply(404, b'{"code":"not found","message":"shard not found"}', json_type)
            return Reply(
                200,
                gzip.compress(SHARD_BYTES[shard]),
                {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"},
            )
        if r.method == "POST" and r.path == "/api/v2/query":
            return Reply(200, self.query_csv.encode(), {"Content-Type": "text/csv"})
        if r.method == "GET" and r.path == "/api/v2/orgs":
            orgs = {"orgs": [{"id": ORG_ID, "name": ORG}]}
            return Reply(200, json.dumps(orgs).encode(), json_type)
        if r.method == "GET" and r.path == "/api/v2/buckets":
            name = r.query.get("name", [""])[0]
            found = [{"id": self.buckets[name], "name": name}] if name in self.buckets else []
            return Reply(200, json.dumps({"buckets": found}).encode(), json_type)
        if r.method == "POST" and r.path == "/api/v2/restore/bucketMetadata":
            manifest = r.json()
            new_id = f"{len(self.buckets):016x}"
            self.buckets[manifest["bucketName"]] = new_id
            mappings = []
            for rp in manifest["retentionPolicies"]:
                for group in rp["shardGroups"]:
                    for shard in group["shards"]:
                        self.next_shard_id += 1
                        mappings.append({"oldId": shard["id"], "newId": self.next_shard_id})
            return Reply(
                201,
                json.dumps(
                    {"id": new_id, "name": manifest["bucketName"], "shardMappings": mappings}
                ).encode(),
                json_type,
            )
        if r.method == "POST" and r.path.startswith("/api/v2/restore/shards/"):
            return Reply(204)
        if r.method == "POST" and r.path == "/api/v2/write":
            return Reply(204)
        if r.method == "POST" and r.path == "/api/v2/buckets":
            return Reply(201, b"{}", json_type)
        if r.method == "DELETE" and r.path.startswith("/api/v2/buckets/"):
            return Reply(204)
        return Reply(404, b'{"code":"not found","message":"path not found"}', json_type)
