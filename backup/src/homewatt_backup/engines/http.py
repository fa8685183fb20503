"""The HTTP client both engines use: one requests session per InfluxDB, retries on connection
errors and 5xx (tenacity), every failure translated into one InfluxError line; a response
body read as a text stream; line protocol posted in gzip batches."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Iterator
from typing import Any

import requests
import tenacity

from homewatt_backup.engines.protocol import WRITE_BATCH_LINES, Progress, no_progress
from homewatt_backup.errors import from_requests, influx_status_error

READ_CHUNK = 64 * 1024


# Connecting to InfluxDB (local, or on the LAN) never takes longer: a wrong address is told
# in seconds, not after `timeout_s`, which is for answers (a long export query).
CONNECT_TIMEOUT_S = 5
# /ping answers at once on a live InfluxDB (1.x and 2.x): a server that accepts and then says
# nothing (hung, or not InfluxDB) is told in seconds too, before any long query
PING_TIMEOUT_S = 5


class _Retryable(Exception):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class InfluxHTTP:
    """requests against one InfluxDB (`url`, e.g. http://127.0.0.1:8086) with retries on
    connection errors and 5xx, and every failure translated into one InfluxError line that
    names `what` was being done and the server."""

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
        *,
        answer_timeout_s: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request to `path`; a status outside `ok` raises InfluxError. A streamed body
        (a file object as `data`) is sent once, never retried. The answer is awaited
        `answer_timeout_s` (default: `timeout_s`) seconds, the connection CONNECT_TIMEOUT_S."""
        url = f"{self.url}{path}"
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
                method,
                url,
                timeout=(CONNECT_TIMEOUT_S, answer_timeout_s or self.timeout_s),
                stream=stream,
                **kwargs,
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
        """The server's version (X-Influxdb-Version of /ping); InfluxError when it is
        unreachable or does not answer within PING_TIMEOUT_S."""
        response = self.request("GET", "/ping", "InfluxDB ping", answer_timeout_s=PING_TIMEOUT_S)
        return response.headers.get("X-Influxdb-Version", "unknown")

    def post_lines(
        self,
        path: str,
        params: dict[str, str],
        lines: Iterable[str],
        what: str,
        progress: Progress = no_progress,
    ) -> int:
        """POST line protocol to a write endpoint in gzip batches; return the lines sent."""
        total = 0
        for body, count in gzip_batches(lines, WRITE_BATCH_LINES):
            self.request(
                "POST",
                path,
                what,
                data=body,
                params=params,
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
            )
            total += count
            progress(count)
        return total


class _ChunkReader(io.RawIOBase):
    """A raw byte stream over an iterator of byte chunks of any size."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def text_stream(chunks: Iterable[bytes]) -> io.TextIOWrapper:
    """UTF-8 text over byte chunks, lines kept whole whatever the chunk boundaries (a CRLF
    split across two chunks is one line end) and line ends untranslated (newline="", as the
    csv module needs)."""
    return io.TextIOWrapper(
        io.BufferedReader(_ChunkReader(chunks), READ_CHUNK), encoding="utf-8", newline=""
    )


def response_text(response: requests.Response) -> io.TextIOWrapper:
    """A streamed response's decoded (gunzipped) body as a text stream (text_stream)."""
    return text_stream(response.iter_content(READ_CHUNK))


def gzip_batches(lines: Iterable[str], size: int) -> Iterator[tuple[bytes, int]]:
    """Line protocol in gzip-compressed batches of at most `size` lines: (body, line count).
    Blank lines and `#` comments are skipped."""
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
