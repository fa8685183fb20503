"""The InfluxDB v2 write API over http.client: synchronous, gzip, second precision.

`POST /api/v2/write?org=&bucket=&precision=s` with `Authorization: Token ...` (none when
anonymous), a gzip body and `Content-Type: text/plain; charset=utf-8`; 204 is success, any
other status is classified from the JSON body's `message` (InfluxDB's error shape, see
contracts/influxdb-write-answers.json) and its `Retry-After`. This is the request
influxdb-client's WriteApi makes; it is made here with the standard library's http.client
(one kept-alive connection, TLS verified against the system's CAs unless `verify_tls: false`)
because importing influxdb-client loads its ~400 generated API model modules (11 MB of the
collector's RSS, a quarter of it) and urllib3 another 2.8 MB (bench/README.md).

Library and network exceptions are translated here, in one place, into the kinds of SinkError
the forwarder acts on (unavailable -> back off and retry; unauthorized -> keep the data and
retry slowly; rejected -> split the batch and quarantine the refused point; partial write ->
the rest was stored: acknowledge, count what was dropped).
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import re
import ssl
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from email.message import Message

from homewatt_collector import __version__
from homewatt_collector.errors import (
    SinkPartialWrite,
    SinkRejected,
    SinkUnauthorized,
    SinkUnavailable,
)
from homewatt_common.redact import redact_url, redact_urls

log = logging.getLogger(__name__)

# Codes that mean "the server, not the data": 408 timeout, 429 too many requests, 5xx.
_TRANSIENT = {408, 425, 429}
# Codes that mean "wrong token, org or bucket": retrying later may work once fixed.
_UNAUTHORIZED = {401, 403, 404}
# 422 "failure writing points to database: partial write: ... dropped=N": the rest is stored.
_PARTIAL = re.compile(r"partial write\b.*\bdropped=(\d+)", re.DOTALL)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (InfluxDB sends delay-seconds; an HTTP date is not used here)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify(status: int, message: str, retry_after: str | None = None) -> Exception:
    """The SinkError for an HTTP status the server answered a write with (the table, with
    InfluxDB's answers and their sources: contracts/influxdb-write-answers.json)."""
    if status == 422 and (partial := _PARTIAL.search(message)):
        return SinkPartialWrite(f"HTTP {status}: {message}", int(partial.group(1)))
    if status in _TRANSIENT or status >= 500:
        return SinkUnavailable(f"HTTP {status}: {message}", parse_retry_after(retry_after))
    if status in _UNAUTHORIZED:
        return SinkUnauthorized(f"HTTP {status}: {message} (check the token, org and bucket)")
    return SinkRejected(f"HTTP {status}: {message}", status)


def _message(body: bytes) -> str:
    """The error message of an answer: InfluxDB's JSON `message`, else the body as text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"]).strip()
    return text


def _without_userinfo(url: str) -> str:
    """The URL without `user:password@`: a password in the URL is never sent (README)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


# A kept-alive connection the server closed meanwhile fails like this before any answer: the
# request is sent again once on a new connection (a repeated write is the identical points).
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class InfluxDBSink:
    def __init__(
        self,
        *,
        name: str,
        url: str,
        org: str,
        bucket: str,
        token: str | None,
        timeout_s: float = 10.0,
        verify_tls: bool = True,
    ) -> None:
        self.name = name
        self.url = redact_url(url)  # for messages
        parts = urllib.parse.urlsplit(_without_userinfo(url))
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context()
            if not verify_tls:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        prefix = parts.path.rstrip("/")
        query = urllib.parse.urlencode({"org": org, "bucket": bucket, "precision": "s"})
        self._write_path = f"{prefix}/api/v2/write?{query}"
        self._ping_path = f"{prefix}/ping"
        self._headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Encoding": "gzip",
            "Accept": "application/json",
            "User-Agent": f"homewatt-collector/{__version__}",
        }
        if token is not None:
            self._headers["Authorization"] = f"Token {token}"
        self._timeout = timeout_s
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def write(self, lines: Sequence[str]) -> None:
        body = gzip.compress("\n".join(lines).encode(), compresslevel=6)
        try:
            status, reason, data, headers = self._request(
                "POST", self._write_path, body, self._headers
            )
        except (OSError, http.client.HTTPException) as exc:
            raise SinkUnavailable(f"{self.url}: {redact_urls(_reason(exc))}") from exc
        if 200 <= status < 300:
            return
        message = redact_urls(_message(data) or reason or "")
        raise classify(status, message, headers.get("Retry-After"))

    def ready(self) -> bool:
        """GET /ping answered (InfluxDB 2 and 1.x, VictoriaMetrics): the server is back."""
        try:
            status, _, _, _ = self._request("GET", self._ping_path, None, {})
        except Exception:  # noqa: BLE001 (a probe: any failure means "not yet")
            return False
        return 200 <= status < 300

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, str, bytes, Message]:
        with self._lock:
            reused = self._connection is not None
            try:
                return self._exchange(method, path, body, headers)
            except _STALE:
                if not reused:
                    raise
            return self._exchange(method, path, body, headers)

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, str, bytes, Message]:
        if self._connection is None:
            if self._tls is not None:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._tls
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        try:
            self._connection.request(method, path, body=body, headers=dict(headers))
            response = self._connection.getresponse()
            data = response.read()
        except BaseException:
            self._drop()
            raise
        if response.will_close:
            self._drop()
        return response.status, response.reason, data, response.headers

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _reason(exc: BaseException) -> str:
    """A short reason for a network failure, without nested reprs."""
    text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    for marker in (
        "Connection refused",
        "timed out",
        "Connection reset",
        "Name or service not known",
    ):
        if marker in text:
            return marker.lower()
    if isinstance(exc, TimeoutError):
        return "timed out"
    return text.split(": ", 1)[-1][:200]
