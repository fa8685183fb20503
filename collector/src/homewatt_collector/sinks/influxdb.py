"""The InfluxDB v2 write API via influxdb-client: synchronous, gzip, second precision.

Library and network exceptions are translated here, in one place, into the kinds of SinkError
the forwarder acts on (unavailable -> back off and retry; unauthorized -> keep the data and
retry slowly; rejected -> split the batch and quarantine the refused point; partial write ->
the rest was stored: acknowledge, count what was dropped).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

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
        self.url = redact_url(url)  # for messages; the client gets the URL as given
        self._org = org
        self._bucket = bucket
        self._client = InfluxDBClient(
            url=url,
            token=token,  # type: ignore[arg-type]  # None: no Authorization header
            org=org,
            timeout=int(timeout_s * 1000),
            enable_gzip=True,
            verify_ssl=verify_tls,
            retries=False,  # retries are the forwarder's job (with backoff, forever)
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        body = "\n".join(lines).encode()
        try:
            self._write_api.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                write_precision=WritePrecision.S,  # type: ignore[arg-type]  # a str constant
            )
        except ApiException as exc:
            if not exc.status:  # status 0: TLS or request construction failure
                raise SinkUnavailable(f"{self.url}: {redact_urls(str(exc.reason))}") from exc
            message = redact_urls(str(getattr(exc, "message", "") or exc.reason or "").strip())
            raise classify(int(exc.status), message, exc.retry_after) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise SinkUnavailable(f"{self.url}: {redact_urls(_reason(exc))}") from exc
        except OSError as exc:
            raise SinkUnavailable(f"{self.url}: {redact_urls(str(exc))}") from exc

    def ready(self) -> bool:
        """GET /ping answered (InfluxDB 2 and 1.x, VictoriaMetrics): the server is back."""
        try:
            return bool(self._client.ping())
        except Exception:  # noqa: BLE001 (a probe: any failure means "not yet")
            return False

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


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
