"""An Emporia API test server: answers the requests pyemvue makes, as Emporia's cloud does.

Emporia's cloud cannot be reached from here, and its login (AWS Cognito) cannot be replaced
by a local server without patching pyemvue: the collector logs in with pyemvue's own
`login_simulator` (`simulator_url` in the config), which sends `authtoken: simulator` on every
request, as pyemvue's `SimulatedAuth` does; this server refuses any other token with 401.

Served (paths and query strings exactly as pyemvue builds them, `pyemvue/pyemvue.py`):
- `GET /customers`, `GET /customers/devices`: the fixtures (tests/collector/emporia/fixtures,
  reconstructed: see their README).
- `GET /AppAPI?apiMethod=getDeviceListUsages&deviceGids=A+B&instant=...Z&scale=1MIN&
  energyUnit=KilowattHours`: the last full minute before `instant` (magico13/ha-emporia-vue
  PR #152), or at scale 1H or 1D the hour or (UTC) day holding `instant` (Vuegraf stamps
  what it gets at the instant it asks), of every channel, smart plugs nested under the Vue's
  circuit they hang from (`parentChannelNum`), plus Balance and TotalUsage.
- `GET /AppAPI?apiMethod=getChartUsage&deviceGid&channel&start&end&scale&energyUnit`:
  `{"firstUsageInstant", "usageList"}` from the start's bucket up to `end`; buckets not over
  yet by the server's clock are null. HTTP 400 for a minute window over 12 h or a second
  window over 1 h (vuegraf#27, Vuegraf `influx.py`), and for Balance/TotalUsage (no history).

Usage is a deterministic function of (device, channel, minute) — `power_w()` — constant within
a minute, so second, minute, hour and day buckets agree; `is_gap()` minutes are null everywhere
(the device was offline). `mode` = "ok" | "unauthorized" (401 on everything) | "forbidden"
(403) | "down" (503).
Every request is kept in `requests`.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "collector" / "emporia" / "fixtures"
SCALE_S = {"1S": 1, "1MIN": 60, "1H": 3600, "1D": 86400}
MAX_WINDOW_S = {"1S": 3600, "1MIN": 12 * 3600}
NO_HISTORY = {"Balance", "TotalUsage", "MainsFromGrid", "MainsToGrid"}
TOKEN = "simulator"  # pyemvue SimulatedAuth.refresh_tokens


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def is_gap(gid: int, channel: str, minute: int) -> bool:
    """The device sent nothing that minute (a null in every answer)."""
    return (minute // 60 + gid) % 37 == 0


def power_w(gid: int, channel: str, minute: int) -> float | None:
    """The average power of a channel over the minute starting at `minute` (unix s); None in
    a gap. Channel "3" of the Vue is solar (negative: it exports) every other 10 minutes."""
    if is_gap(gid, channel, minute):
        return None
    index = minute // 60
    seed = sum(ord(c) for c in channel) * 13 + gid % 97
    value = 20.0 + (seed % 400) + ((index * 7 + seed) % 11) * 25.0
    if gid == 1001 and channel == "3" and (index // 10) % 2 == 0:
        return -value
    return value


def kwh(gid: int, channel: str, start: int, seconds: int) -> float | None:
    """The energy of `seconds` from `start` (whole minutes, or one second) in kWh; None if
    any minute in it is a gap and the bucket is a second or a minute, else the sum of the
    minutes with data (Emporia sums what it has for an hour or a day)."""
    if seconds <= 60:
        minute = start - start % 60
        power = power_w(gid, channel, minute)
        return None if power is None else power * seconds / 3.6e6
    total = 0.0
    for minute in range(start, start + seconds, 60):
        power = power_w(gid, channel, minute)
        if power is not None:
            total += power * 60 / 3.6e6
    return total


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EmporiaCloud:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.customer = load_fixture("customer")
        self.devices = load_fixture("devices")
        self.mode = "ok"
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cloud.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> EmporiaCloud:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str) -> list[dict[str, str]]:
        with self.lock:
            return [q for path, q in self.requests if q.get("apiMethod") == method]

    # -- answers -------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append((parts.path, query))
        if self.mode == "down":
            self.reply(request, 503, {"message": "Service Unavailable"})
        elif self.mode == "unauthorized" or request.headers.get("authtoken") != TOKEN:
            self.reply(request, 401, {"message": "Unauthorized"})
        elif self.mode == "forbidden":  # vuegraf#96: 403 from customers/devices
            self.reply(request, 403, {"message": "Forbidden"})
        elif parts.path == "/customers":
            self.reply(request, 200, self.customer)
        elif parts.path == "/customers/devices":
            self.reply(request, 200, self.devices)
        elif parts.path == "/AppAPI" and query.get("apiMethod") == "getDeviceListUsages":
            self.reply(request, *self.device_list_usages(query))
        elif parts.path == "/AppAPI" and query.get("apiMethod") == "getChartUsage":
            self.reply(request, *self.chart_usage(query))
        else:
            self.reply(request, 404, {"message": "Not Found"})

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def device_list_usages(self, query: dict[str, str]) -> tuple[int, Any]:
        scale = query.get("scale", "")
        if scale not in ("1MIN", "1H", "1D") or query.get("energyUnit") != "KilowattHours":
            return 400, {"message": "unsupported scale or unit"}
        instant = parse_instant(query["instant"])
        ts = int(instant.timestamp())
        step = SCALE_S[scale]
        # a minute: the last full one; an hour or a (UTC) day: the one holding the instant
        start = ts - ts % 60 - 60 if scale == "1MIN" else ts - ts % step
        gids = [int(g) for g in query["deviceGids"].replace("+", " ").split()]
        tops = [d for d in self.devices["devices"] if d.get("parentDeviceGid") is None]
        answer = []
        for device in tops:
            if device["deviceGid"] not in gids:
                continue
            answer.append(self.usage_device(device, start, step))
        body = {"deviceListUsages": {"instant": iso(instant), "scale": scale, "devices": answer}}
        return 200, body

    def channels_of(self, gid: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for device in self.devices["devices"]:
            for entry in [device, *device.get("devices", [])]:
                if entry["deviceGid"] == gid:
                    out.extend(entry.get("channels", []))
        return out

    def usage_device(self, device: dict[str, Any], start: int, step: int = 60) -> dict[str, Any]:
        gid = device["deviceGid"]
        nested = [d for d in self.devices["devices"] if d.get("parentDeviceGid") == gid]
        usages = []
        for channel in self.channels_of(gid):
            num = channel["channelNum"]
            usage = kwh(gid, num, start, step)
            usages.append(
                {
                    "name": channel["name"] or device["locationProperties"]["deviceName"],
                    "usage": usage,
                    "deviceGid": gid,
                    "channelNum": num,
                    "percentage": 0.0 if usage is None else 12.5,
                    "nestedDevices": [
                        self.usage_device(d, start, step)
                        for d in nested
                        if d.get("parentChannelNum") == num
                    ],
                }
            )
        if device["model"].startswith("VUE"):
            for num in ("Balance", "TotalUsage"):
                usages.append(
                    {"name": num, "usage": kwh(gid, num, start, step), "deviceGid": gid,
                     "channelNum": num, "percentage": 0.0, "nestedDevices": []}
                )  # fmt: skip
        return {"deviceGid": gid, "channelUsages": usages}

    def chart_usage(self, query: dict[str, str]) -> tuple[int, Any]:
        scale = query.get("scale", "")
        if scale not in SCALE_S or query.get("energyUnit") != "KilowattHours":
            return 400, {"message": "unsupported scale or unit"}
        if query["channel"] in NO_HISTORY:
            return 400, {"message": f"no chart for channel {query['channel']}"}
        step = SCALE_S[scale]
        start = int(parse_instant(query["start"]).timestamp())
        end = int(parse_instant(query["end"]).timestamp())
        if end < start or end - start > MAX_WINDOW_S.get(scale, 400 * 86400):
            return 400, {"message": "Bad Request"}
        first = start - start % step
        now = datetime.now(UTC).timestamp()
        gid = int(query["deviceGid"])
        values: list[float | None] = []
        for bucket in range(first, end, step):
            values.append(None if bucket + step > now else kwh(gid, query["channel"], bucket, step))
        body = {"firstUsageInstant": iso(datetime.fromtimestamp(first, UTC)), "usageList": values}
        return 200, body
