"""The HTTP side: a threaded server, InfluxDB's response headers, authentication, routing.

Reconstructed from influxdb v2.7.12: http/handler.go (every answer carries
`X-Influxdb-Build: OSS` and `X-Influxdb-Version`), http/platform_handler.go (`/write`,
`/query` and `/ping` go to the v1 handlers; setup, signin/out, `GET /api/v2` need no token;
other paths outside /api/v2 are the UI's), http/router.go (404 "path not found", 405 "allow: ..."),
github.com/NYTimes/gziphandler (query, v1 query and backup answers of 1400 bytes or more are
gzip-compressed when the client accepts it; `Vary: Accept-Encoding`).
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import secrets
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import gojson
from .auth import Authorizer, token_from_header, v1_token
from .errors import NOT_FOUND, APIError, unauthorized_access
from .store import Store

VERSION = "v2.7.12"
COMMIT = "ec9dcde5d6"  # `git rev-parse --short v2.7.12` in influxdata/influxdb
GZIP_MIN_SIZE = 1400  # gziphandler.DefaultMinSize
NO_AUTH = {
    ("GET", "/api/v2"),
    ("POST", "/api/v2/signin"),
    ("POST", "/api/v2/signout"),
    ("POST", "/api/v2/setup"),
    ("GET", "/api/v2/setup"),
    ("GET", "/api/v2/swagger.json"),
}


@dataclass
class Recorded:
    """A request as the stand-in received it (tests check what clients send)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    raw_query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return ""


@dataclass
class Reply:
    """An answer: a body, or an iterator of chunks streamed with chunked transfer encoding."""

    status: int
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    gzip_capable: bool = False


def json_reply(status: int, payload: Any, *, pretty: bool = True, newline: bool = False) -> Reply:
    """kithttp.API.Respond (tab-indented) or json.NewEncoder (compact plus newline)."""
    if pretty:
        body = gojson.marshal_indent(payload)
    else:
        body = gojson.marshal(payload) + (b"\n" if newline else b"")
    return Reply(status, body, {"Content-Type": "application/json; charset=utf-8"})


def links(**found: str) -> dict[str, str]:
    """A Go map of links: encoding/json writes its keys sorted."""
    return dict(sorted(found.items()))


def valid_id(text: str, *, pretty: bool = True) -> str:
    """platform.IDFromString: 16 lowercase hex digits, not all zero."""
    if len(text) != 16:
        raise APIError("invalid", "id must have a length of 16 bytes", pretty=pretty)
    if not re.fullmatch(r"[0-9a-f]{16}", text) or text == "0" * 16:
        raise APIError("invalid", "invalid ID", pretty=pretty)
    return text


def error_reply(error: APIError) -> Reply:
    return Reply(
        error.status,
        error.body(),
        {"Content-Type": "application/json; charset=utf-8", "X-Platform-Error-Code": error.code},
    )


@dataclass
class Call:
    """One request on its way through a handler."""

    server: InfluxDB2StandIn
    request: Recorded
    params: dict[str, str]
    _auth: Authorizer | None = None

    @property
    def store(self) -> Store:
        return self.server.store

    def arg(self, name: str) -> str:
        return self.request.query.get(name, [""])[0]

    def body_json(self, *, pretty: bool = True, what: str = "invalid json structure") -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise APIError("invalid", f"{what}: {exc}", pretty=pretty) from None

    @property
    def auth(self) -> Authorizer:
        if self._auth is None:
            self._auth = self.server.authenticate(self.request)
        return self._auth


Handler = Callable[[Call], Reply]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/"))
        self.routes.append((method, re.compile(f"^{regex}/?$"), handler))

    def find(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], list[str]]:
        allowed = []
        for route_method, regex, handler in self.routes:
            match = regex.match(path)
            if match:
                if route_method == method or (method == "HEAD" and route_method == "GET"):
                    return handler, match.groupdict(), []
                allowed.append(route_method)
        return None, {}, allowed


class InfluxDB2StandIn:
    """An InfluxDB 2 stand-in on a loopback port (NOT InfluxDB: see the package docstring).

    `data_dir` holds the state (standin.sqlite); `now_ns` is the clock used for retention,
    default write times and relative query ranges. `requests` records every request;
    `overrides[(method, path)]` replaces an answer (fault injection for tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        now_ns: Callable[[], int] = time.time_ns,
        version: str = VERSION,
        record: bool = True,
    ) -> None:
        self.store = Store(data_dir, now_ns)
        self.now_ns = now_ns
        self.version = version
        self.started_ns = now_ns()
        self.record = record
        self.requests: list[Recorded] = []
        self.overrides: dict[tuple[str, str], Callable[[Recorded], Reply]] = {}
        # (table number, message): the next Flux answers end in this error table there
        self.query_fault: tuple[int, str] | None = None
        self.router = Router()
        # the handler modules import this one (Call, Reply, Router): registered here
        from . import (  # noqa: PLC0415
            handlers_authorizations,
            handlers_backup,
            handlers_data,
            handlers_dbrps,
            handlers_tasks,
            handlers_tenant,
        )

        for handlers in (
            handlers_tenant,
            handlers_authorizations,
            handlers_dbrps,
            handlers_tasks,
            handlers_data,
            handlers_backup,
        ):
            handlers.register(self.router)
        self.httpd = _QuietServer((host, port), _handler_class(self))
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="influxdb2-standin", daemon=True
        )

    # -------------------------------------------------------------- lifecycle
    def start(self) -> InfluxDB2StandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.store.close()

    def __enter__(self) -> InfluxDB2StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def setup(
        self,
        *,
        org: str,
        bucket: str,
        token: str,
        username: str = "admin",
        password: str | None = None,
        retention_s: int = 0,
    ) -> dict[str, Any]:
        """Onboard through POST /api/v2/setup, as `influx setup` does; the 201 answer."""
        body = {
            "username": username,
            "password": password or secrets.token_urlsafe(16),
            "org": org,
            "bucket": bucket,
            "retentionPeriodSeconds": retention_s,
            "token": token,
        }
        request = urllib.request.Request(  # noqa: S310 (the stand-in's own loopback URL)
            f"{self.url}/api/v2/setup",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return dict(json.loads(response.read()))

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # -------------------------------------------------------------- authentication
    def find_token(self, token: str) -> dict[str, Any] | None:
        for auth in self.store.all("authorizations"):
            if auth["token"] == token:
                return auth
        return None

    def authenticate(self, request: Recorded) -> Authorizer:
        """The v2 API's token check (http/authentication_middleware.go)."""
        auth = self.find_token(token_from_header(request.header("Authorization")))
        if auth is None:
            raise unauthorized_access()
        user = self.store.get("users", auth["userID"])
        if user is not None and user.get("status") == "inactive":
            raise APIError("forbidden", "User is inactive")
        return Authorizer(auth)

    def authenticate_v1(self, request: Recorded, raw_query: str) -> Authorizer:
        """The v1 API's credentials (http/legacy/influx1x_authentication_handler.go and
        v1/authorization/authorizer.go: an inactive token is "Unauthorized")."""
        auth = self.find_token(v1_token(raw_query, request.header("Authorization")))
        if auth is None or auth.get("status", "active") != "active":
            raise APIError("unauthorized", "Unauthorized")
        return Authorizer(auth)

    # -------------------------------------------------------------- dispatch
    def handle(self, request: Recorded) -> Reply:
        override = self.overrides.get((request.method, request.path))
        if override is not None:
            return override(request)
        return self.answer(request)

    def answer(self, request: Recorded) -> Reply:
        """The stand-in's own answer (what an override can wrap)."""
        handler, params, allowed = self.router.find(request.method, request.path)
        call = Call(self, request, params)
        try:
            path = request.path
            is_api = path == "/api/v2" or path.startswith("/api/v2/")
            if is_api and (request.method, path.rstrip("/")) not in NO_AUTH:
                _ = call.auth  # 401 before anything else, as the middleware does
            if handler is None:
                if allowed:
                    raise APIError(
                        "method not allowed", f"allow: {', '.join(sorted(set(allowed)))}"
                    )
                if is_api or path.startswith(("/private/", "/v1")):
                    raise APIError(NOT_FOUND, "path not found")
                raise APIError(NOT_FOUND, "influxdb stand-in: the UI and its assets are not served")
            return handler(call)
        except APIError as exc:
            return error_reply(exc)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is not an error worth a traceback on stderr."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _handler_class(server: InfluxDB2StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(body)
                    body += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _any(self) -> None:
            parts = urlsplit(self.path)
            body = self._read_body()
            record = Recorded(
                self.command,
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                dict(self.headers.items()),
                body,
                parts.query,
            )
            if server.record:
                server.requests.append(record)
            try:
                reply = server.handle(record)
            except Exception as exc:  # noqa: BLE001 (a bug in the stand-in: answer like influxd does)
                reply = error_reply(APIError("internal error", f"influxdb stand-in bug: {exc!r}"))
            self._send(reply, record)

        def _send(self, reply: Reply, record: Recorded) -> None:
            accepts_gzip = "gzip" in record.header("Accept-Encoding")
            self.send_response_only(reply.status)
            self.send_header("Date", formatdate(usegmt=True))
            self.send_header("X-Influxdb-Build", "OSS")
            self.send_header("X-Influxdb-Version", server.version)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if reply.gzip_capable:
                self.send_header("Vary", "Accept-Encoding")
            if isinstance(reply.body, bytes):
                body = reply.body
                if reply.gzip_capable and accepts_gzip and len(body) >= GZIP_MIN_SIZE:
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                if reply.status not in (204, 304) and not (100 <= reply.status < 200):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD" and reply.status != 204:
                    self.wfile.write(body)
                return
            self._stream(reply.body, reply.gzip_capable and accepts_gzip)

        def _stream(self, chunks: Iterable[bytes], compress: bool) -> None:
            """Chunked transfer; with gzip only once 1400 bytes are buffered (gziphandler)."""
            it = _nonempty(chunks)
            head: list[bytes] = []
            if compress:
                size = 0
                for chunk in it:
                    head.append(chunk)
                    size += len(chunk)
                    if size >= GZIP_MIN_SIZE:
                        break
                compress = size >= GZIP_MIN_SIZE
            if compress:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            packer = zlib.compressobj(6, zlib.DEFLATED, 31) if compress else None
            try:
                for chunk in itertools.chain(head, it):
                    data = (
                        packer.compress(chunk) + packer.flush(zlib.Z_SYNC_FLUSH)
                        if packer
                        else chunk
                    )
                    if data:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                if packer:
                    tail = packer.flush()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

    return Handler


def _nonempty(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk
