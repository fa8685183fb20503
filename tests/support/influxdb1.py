"""InfluxDB 1.x (Debian's influxdb 1.6.7) for tests: `influxd run` with a generated config on
free loopback ports (HTTP and the RPC bind-address that `influxd backup/restore -portable`
use), data under the test's tmp directory.

`V2WriteEndpoint` gives it the v2 write endpoint that InfluxDB 1.8+ serves and 1.6.7 lacks, so
the collector's sink (which speaks only `/api/v2/write`) delivers into it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.processes import ServerProcess, free_port, http_ok, port_open, require_tool


class InfluxDB1:
    def __init__(self, workdir: Path, host: str = "127.0.0.1") -> None:
        """`host`: the address both ports listen on (the systemd rig's bridge address for a
        backup unit started in a container)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://{host}:{self.http_port}"
        self.rpc_address = f"{host}:{self.rpc_port}"
        self.config_path = workdir / "influxdb.conf"
        self.config_path.write_text(
            f"""reporting-enabled = false
bind-address = "{self.rpc_address}"
[meta]
  dir = "{workdir / "meta"}"
  logging-enabled = false
[data]
  dir = "{workdir / "data"}"
  wal-dir = "{workdir / "wal"}"
  query-log-enabled = false
  cache-max-memory-size = 67108864
[monitor]
  store-enabled = false
[http]
  bind-address = "{host}:{self.http_port}"
  log-enabled = false
[continuous_queries]
  enabled = false
[retention]
  enabled = false
"""
        )
        self.server = ServerProcess(
            "influxd",
            [require_tool("influxd"), "run", "-config", str(self.config_path)],
            workdir / "influxd.log",
        )

    def start(self) -> InfluxDB1:
        self.server.start()
        self.server.wait_ready(
            lambda: http_ok(f"{self.url}/ping") and port_open(self.rpc_port, self.host)
        )
        return self

    def stop(self) -> None:
        self.server.stop()

    def query(
        self, q: str, db: str | None = None, post: bool = False, epoch: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"q": q}
        if db:
            params["db"] = db
        if epoch:
            params["epoch"] = epoch
        encoded = urllib.parse.urlencode(params)
        if post:
            request = urllib.request.Request(f"{self.url}/query", data=encoded.encode())  # noqa: S310
        else:
            request = urllib.request.Request(f"{self.url}/query?{encoded}")  # noqa: S310
        # right after `influxd restore` a shard reopening answers 'engine is closed' for a
        # moment: asked again up to 10 times 0.5 s apart, as the backup's engine does
        for attempt in range(11):
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
                results: list[dict[str, Any]] = json.loads(response.read())["results"]
            closed = any(r.get("error") == "engine is closed" for r in results)
            if not closed or attempt == 10:
                break
            time.sleep(0.5)
        for result in results:
            assert "error" not in result, result["error"]
        return results

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"', post=True)

    def drop_database(self, db: str) -> None:
        self.query(f'DROP DATABASE "{db}"', post=True)

    def databases(self) -> list[str]:
        series = self.query("SHOW DATABASES")[0].get("series", [])
        return [row[0] for s in series for row in s.get("values", [])]

    def write(self, db: str, lines: list[str], precision: str = "s", rp: str | None = None) -> None:
        """Write `lines` into `db`: its default retention policy, or `rp`."""
        body = ("\n".join(lines) + "\n").encode()
        params = {"db": db, "precision": precision} | ({"rp": rp} if rp else {})
        url = f"{self.url}/write?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 (loopback)
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            assert response.status == 204

    def points(self, db: str, measurement_regex: str = "/.*/") -> set[tuple[Any, ...]]:
        """Every point as (measurement, sorted tags, time ns, sorted non-null fields): a
        comparable snapshot of a database's content, field types included."""
        out: set[tuple[Any, ...]] = set()
        q = f"SELECT * FROM {measurement_regex} GROUP BY *"  # noqa: S608 (test-chosen regex)
        for result in self.query(q, db=db, epoch="ns"):
            for series in result.get("series", []):
                tags = tuple(sorted((series.get("tags") or {}).items()))
                columns = series["columns"]
                for row in series["values"]:
                    fields = tuple(
                        sorted(
                            (c, (type(v).__name__, v))
                            for c, v in zip(columns[1:], row[1:], strict=True)
                            if v is not None
                        )
                    )
                    out.add((series["name"], tags, row[0], fields))
        return out

    def field_types(self, db: str) -> dict[tuple[str, str], str]:
        out = {}
        for series in self.query("SHOW FIELD KEYS", db=db)[0].get("series", []):
            for key, kind in series["values"]:
                out[(series["name"], key)] = kind
        return out


class V2WriteEndpoint:
    """`POST /api/v2/write?bucket=DB[/RP]&precision=P` in front of an InfluxDB 1.x, as InfluxDB
    1.8+ serves it (its docs, "InfluxDB 2.x API compatibility endpoints": the bucket is
    `database/retention-policy`, the org is ignored, `Authorization: Token` passes through):
    each request is sent on as `POST /write?db=DB&rp=RP&precision=P` with the same body,
    Content-Encoding (gzip) and Authorization, and InfluxDB's status and body come back as they
    are. `GET /ping` is passed through. Listens on `host` (a free port): the rig's bridge
    address for a collector unit in a container. Every write's status is kept in `statuses`."""

    def __init__(self, influxdb: InfluxDB1, host: str = "127.0.0.1") -> None:
        self.influxdb = influxdb
        self.statuses: list[int] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if urllib.parse.urlsplit(self.path).path != "/ping":
                    return self._answer(404, b'{"error":"not found"}', {})
                self._answer(*endpoint._send("GET", "/ping", None, {}))

            def do_POST(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if parts.path != "/api/v2/write":
                    return self._answer(404, b'{"error":"not found"}', {})
                query = dict(urllib.parse.parse_qsl(parts.query))
                database, _, policy = query.get("bucket", "").partition("/")
                params = {"db": database, "precision": query.get("precision", "ns")}
                if policy:
                    params["rp"] = policy
                headers = {
                    name: self.headers[name]
                    for name in ("Content-Encoding", "Content-Type", "Authorization")
                    if self.headers[name] is not None
                }
                path = "/write?" + urllib.parse.urlencode(params)
                status, data, answer_headers = endpoint._send("POST", path, body, headers)
                endpoint.statuses.append(status)
                self._answer(status, data, answer_headers)

            def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(  # noqa: S310 (the test's own server)
            f"{self.influxdb.url}{path}", data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status, data, answer = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, data, answer = error.code, error.read(), error.headers
        kept = {k: v for k, v in answer.items() if k in ("Content-Type", "Retry-After")}
        return status, data, kept

    def start(self) -> V2WriteEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
