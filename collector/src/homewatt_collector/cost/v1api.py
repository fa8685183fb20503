"""InfluxDB's v1 HTTP API, the two calls the cost needs: `/query` (InfluxQL) and `/write`
(line protocol). InfluxDB 1.x serves them natively; InfluxDB 2 through its v1 compatibility API
(https://docs.influxdata.com/influxdb/v2/reference/api/influxdb-1x/), which maps the database
and retention policy to a bucket by a DBRP mapping and takes `Authorization: Token <token>`.

Every failure is translated here, once, into CostError with one line saying what to check:
the server unreachable, a refused token (401/403), an unknown database (404 or InfluxQL's
"database not found"), a refused query or write (the server's own words).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from homewatt_collector.errors import CollectorError
from homewatt_common.redact import redact_url


class CostError(CollectorError):
    """Counters could not be read or energy_cost could not be written."""


class V1Client:
    """`url`: InfluxDB's base URL; `token`: sent as `Authorization: Token` (None: none)."""

    def __init__(self, url: str, database: str, token: str | None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Token {token}"} if token else {}

    def query(self, statements: list[str]) -> list[dict[str, Any]]:
        """The `results` of InfluxQL `statements` (one request, `;`-separated), timestamps in
        unix seconds; CostError if any statement fails."""
        body = urllib.parse.urlencode(
            {"db": self.database, "q": ";\n".join(statements), "epoch": "s"}
        ).encode()
        answer = self._post("/query", body, "application/x-www-form-urlencoded")
        try:
            results: list[dict[str, Any]] = json.loads(answer)["results"]
        except (ValueError, KeyError, TypeError):
            raise CostError(
                f"{self._where('/query')}: the answer is not InfluxQL results"
            ) from None
        for result in results:
            if "error" in result:
                raise CostError(f"{self._where('/query')}: {result['error']}")
        return results

    def write(self, lines: list[str], retention_policy: str = "") -> None:
        """Write line-protocol `lines` (second precision) into the database (and retention
        policy, '' the default)."""
        params = {"db": self.database, "precision": "s"}
        if retention_policy:
            params["rp"] = retention_policy
        path = "/write?" + urllib.parse.urlencode(params)
        self._post(path, ("\n".join(lines) + "\n").encode(), "text/plain; charset=utf-8")

    def _where(self, path: str) -> str:
        endpoint = path.split("?", maxsplit=1)[0]
        return f"InfluxDB {redact_url(self.url)}{endpoint} (database {self.database})"

    def _post(self, path: str, body: bytes, content_type: str) -> bytes:
        request = urllib.request.Request(  # noqa: S310 (the configured http(s) URL)
            self.url + path,
            data=body,
            method="POST",
            headers={**self._headers, "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            raise CostError(f"{self._where(path)}: {self._refusal(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CostError(
                f"{self._where(path)}: cannot connect ({reason}): is InfluxDB running and the"
                " url right?"
            ) from None

    @staticmethod
    def _refusal(exc: urllib.error.HTTPError) -> str:
        try:
            answer = json.loads(exc.read().decode("utf-8", "replace"))
            message = str(answer.get("error") or answer.get("message"))
        except (ValueError, AttributeError, OSError):
            message = exc.reason if isinstance(exc.reason, str) else ""
        if exc.code in (401, 403):
            return (
                f"HTTP {exc.code}, the token was refused ({message}): it must read the raw"
                " bucket and write the energy_cost bucket"
            )
        if exc.code == 404:
            return f"HTTP 404 ({message}): no such database (InfluxDB 2: no DBRP mapping for it)"
        return f"HTTP {exc.code}: {message}"
