"""VictoriaMetrics (Debian package) as the test stand-in for InfluxDB's v2 write API.

It accepts `/api/v2/write` exactly as influxdb-client sends it (gzip, precision=s) and returns
raw samples from `/api/v1/export`, so a duplicate shows up as two values (InfluxDB would silently
overwrite it). A field `f` of measurement `m` becomes the metric `m_f`; tags become labels.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ServerProcess, free_port, http_ok, require_tool


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    values: list[float]
    timestamps: list[int]  # unix seconds


class VictoriaMetrics:
    def __init__(self, workdir: Path, host: str = "127.0.0.1") -> None:
        """Listen on `host`: loopback, or the systemd rig's bridge address for its containers."""
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.server = ServerProcess(
            "victoria-metrics",
            [
                require_tool("victoria-metrics"),
                f"-httpListenAddr={host}:{self.port}",
                f"-storageDataPath={workdir / 'data'}",
                "-retentionPeriod=100y",
                "-loggerLevel=ERROR",
            ],
            workdir / "victoria-metrics.log",
        )

    def start(self) -> VictoriaMetrics:
        self.server.start()
        self.server.wait_ready(lambda: http_ok(f"{self.url}/health"))
        return self

    def stop(self) -> None:
        self.server.stop()

    def export(self, match: str = '{__name__=~".+"}') -> list[Series]:
        data = urllib.parse.urlencode({"match[]": match}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/export", data=data, timeout=10) as resp:  # noqa: S310
            lines = resp.read().decode().splitlines()
        out = []
        for line in lines:
            row = json.loads(line)
            out.append(
                Series(
                    labels=row["metric"],
                    values=row["values"],
                    timestamps=[ts // 1000 for ts in row["timestamps"]],
                )
            )
        return out

    def samples(self, metric: str, **labels: str) -> list[tuple[int, float, dict[str, str]]]:
        """Every raw (timestamp, value, labels) of `metric` matching `labels`, duplicates kept."""
        selector = ",".join([f'__name__="{metric}"'] + [f'{k}="{v}"' for k, v in labels.items()])
        rows = []
        for series in self.export("{" + selector + "}"):
            rows.extend(
                (ts, v, series.labels)
                for ts, v in zip(series.timestamps, series.values, strict=True)
            )
        return sorted(rows, key=lambda row: row[0])
