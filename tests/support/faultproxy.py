"""An HTTP fault proxy: sits between a client and a real server and makes real network faults.

It forwards every request to the upstream server unless told to misbehave:
- `down()` / `up()`: stop listening and reset open connections (the client sees "connection
  refused"), later listen again on the same port;
- `respond(status, times=n)`: answer the next n requests itself with that status (429, 503...);
- `reject_if(predicate)`: answer 400 to requests whose (gunzipped) body matches, never forwarding
  them (a server refusing a bad point);
- `delay_s`: hold each request that long before forwarding (a slow server);
- `cut_next_request_after(n)`: read n bytes of the next request body, then reset the connection
  (a link cut mid-upload);
- `rewrite_answers(fn)`: pass each upstream answer's body (gunzipped) and the request's path to
  `fn`; when it returns bytes, send those instead (a server that silently answers less than it
  holds).
Every request it receives is logged in `stats.log` as (method, path with query), in order.
It is a real TCP/HTTP peer, not a mock: the client under test runs its real network code.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@dataclass
class Canned:
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class ProxyStats:
    requests: int = 0
    forwarded: int = 0
    faulted: int = 0
    refused_bodies: list[bytes] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (timeout) or a connection we reset ourselves is a fault this
        # proxy exists to make, not an error in it: no traceback for those.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.proxy._untrack(self.connection)

    def _read_body(self, limit: int | None = None) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            n = int(length) if limit is None else min(int(length), limit)
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if limit is not None and sum(map(len, chunks)) >= limit:
                    break
            return b"".join(chunks)
        return b""

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, as a dropped link or crashed peer would.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        proxy = self.server.proxy
        with proxy._lock:
            proxy.stats.requests += 1
            proxy.stats.log.append((self.command, self.path))
            cut = proxy._cut_after
            proxy._cut_after = None
        if cut is not None:
            self._read_body(limit=cut)
            with proxy._lock:
                proxy.stats.faulted += 1
            self._reset()
            return
        body = self._read_body()
        canned = proxy._take_canned()
        if canned is not None:
            with proxy._lock:
                proxy.stats.faulted += 1
            self._answer(canned.status, canned.headers, canned.body)
            return
        plain = body
        if self.headers.get("Content-Encoding", "").lower() == "gzip" and body:
            plain = gzip.decompress(body)
        predicate = proxy._reject_predicate
        if predicate is not None and predicate(plain):
            with proxy._lock:
                proxy.stats.faulted += 1
                proxy.stats.refused_bodies.append(plain)
            message = b'{"code":"invalid","message":"fault proxy: point refused"}'
            self._answer(400, {"Content-Type": "application/json"}, message)
            return
        if proxy.delay_s:
            time.sleep(proxy.delay_s)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            out = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
        except OSError:
            self._answer(502, {}, b"fault proxy: upstream unreachable")
            return
        finally:
            upstream.close()
        with proxy._lock:
            proxy.stats.forwarded += 1
        rewrite = proxy._rewrite
        if rewrite is not None:
            plain = payload
            if out.get("Content-Encoding", "").lower() == "gzip" and payload:
                plain = gzip.decompress(payload)
            changed = rewrite(self.path, plain)
            if changed is not None:
                with proxy._lock:
                    proxy.stats.faulted += 1
                out.pop("Content-Encoding", None)
                payload = changed
        self._answer(response.status, out, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class FaultProxy:
    """`FaultProxy(upstream_port).start()`; point the client at `proxy.url`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = port
        self.delay_s = 0.0
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._canned: list[Canned] = []
        self._reject_predicate: Callable[[bytes], bool] | None = None
        self._cut_after: int | None = None
        self._rewrite: Callable[[str, bytes], bytes | None] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self.up()
        return self

    def up(self) -> None:
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.proxy = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def down(self) -> None:
        """Stop listening and reset every open connection: the server is gone."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.down()

    def respond(
        self, status: int, times: int = 1, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Answer the next `times` requests with `status` instead of forwarding them."""
        with self._lock:
            self._canned.append(Canned(status, times, headers or {}, body))

    def reject_if(self, predicate: Callable[[bytes], bool] | None) -> None:
        """Answer 400 to every request whose body matches; None forwards everything again."""
        self._reject_predicate = predicate

    def rewrite_answers(self, fn: Callable[[str, bytes], bytes | None] | None) -> None:
        """fn(path with query, body) -> replacement body or None (forward as is)."""
        self._rewrite = fn

    def cut_next_request_after(self, nbytes: int) -> None:
        with self._lock:
            self._cut_after = nbytes

    def _take_canned(self) -> Canned | None:
        with self._lock:
            if not self._canned:
                return None
            canned = self._canned[0]
            canned.times -= 1
            if canned.times <= 0:
                self._canned.pop(0)
            return canned

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
