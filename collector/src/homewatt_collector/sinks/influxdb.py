"""The InfluxDB v2 write API over urllib3: synchronous, gzip, second precision.

`POST /api/v2/write?org=&bucket=&precision=s` with `Authorization: Token ...` (none when
anonymous), a gzip body and `Content-Type: text/plain; charset=utf-8`; 204 is success, any
other status is classified from the JSON body's `message` (InfluxDB's error shape, see
contracts/influxdb-write-answers.json) and its `Retry-After`. This is the request
influxdb-client's WriteApi makes; it is made here with urllib3 directly because importing
influxdb-client loads its ~400 generated API model modules: 11 MB of the collector's RSS, a
quarter of it (bench/README.md).

Library and network exceptions are translated here, in one place, into the kinds of SinkError
the forwarder acts on (unavailable -> back off and retry; unauthorized -> keep the data and
retry slowly; rejected -> split the batch and quarantine the refused point; partial write ->
the rest was stored: acknowledge, count what was dropped).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import urllib.parse
from collections.abc import Sequence

import urllib3

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
        base = _without_userinfo(url).rstrip("/")
        query = urllib.parse.urlencode({"org": org, "bucket": bucket, "precision": "s"})
        self._write_url = f"{base}/api/v2/write?{query}"
        self._ping_url = f"{base}/ping"
        self._headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Encoding": "gzip",
            "Accept": "application/json",
            "User-Agent": f"homewatt-collector/{__version__}",
        }
        if token is not None:
            self._headers["Authorization"] = f"Token {token}"
        self._timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        self._http = urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            retries=False,  # retries are the forwarder's job (with backoff, forever)
            cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
        )

    def write(self, lines: Sequence[str]) -> None:
        body = gzip.compress("\n".join(lines).encode(), compresslevel=6)
        try:
            response = self._http.request(
                "POST",
                self._write_url,
                body=body,
                headers=self._headers,
                timeout=self._timeout,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise SinkUnavailable(f"{self.url}: {redact_urls(_reason(exc))}") from exc
        except OSError as exc:
            raise SinkUnavailable(f"{self.url}: {redact_urls(str(exc))}") from exc
        if 200 <= response.status < 300:
            return
        message = redact_urls(_message(response.data) or response.reason or "")
        raise classify(response.status, message, response.headers.get("Retry-After"))

    def ready(self) -> bool:
        """GET /ping answered (InfluxDB 2 and 1.x, VictoriaMetrics): the server is back."""
        try:
            response = self._http.request(
                "GET", self._ping_url, timeout=self._timeout, redirect=False
            )
        except Exception:  # noqa: BLE001 (a probe: any failure means "not yet")
            return False
        return 200 <= response.status < 300

    def close(self) -> None:
        self._http.clear()


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    """A short reason for a network failure, without urllib3's nested reprs."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in (
        "Connection refused",
        "timed out",
        "Connection reset",
        "Name or service not known",
    ):
        if marker in text:
            return marker.lower()
    return text.split(": ", 1)[-1][:200]
