"""Shelly test devices: HTTP servers on 127.0.0.x that answer as Shelly devices do.

Each device serves a fixture (tests/collector/shelly/fixtures/*.json: answers reconstructed
from Shelly's API docs and public client code, each file naming its sources) and enforces the
device's auth for real:
- Gen1: HTTP Basic on everything but /shelly (401 with a Basic challenge otherwise).
- Gen2+: Digest (RFC 7616) with SHA-256 only, user `admin`, realm the device id, qop=auth;
  the response hash is recomputed and checked, the nonce must be one this device issued and
  not expired (NONCE_LIFETIME_S), the nonce count must grow, the uri must be the request's.
Energy counters advance with the fixture's power over wall time, in the device's own unit
(Gen1 PM: watt-minutes; Gen1 EM and Gen2: Wh); `reboot()` sets them back to zero as a real
reboot does on Gen1 plugs; a negative power advances the returned-energy counter. Every answer
served is kept (`served`) so tests check the collector's samples against exactly what the
device said. `delay_s` answers late.

Run as a module to serve many plugs for the benchmark:
    python -m tests.support.shelly_devices --plugs 20 --slow 1 --port PORT
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "collector" / "shelly" / "fixtures"
NONCE_LIFETIME_S = 60.0
GEN2_KEYS = {
    "Switch": "switch",
    "PM1": "pm1",
    "EM": "em",
    "EMData": "emdata",
    "EM1": "em1",
    "EM1Data": "em1data",
}
UNITS_PER_WH = {"Wmin": 60.0, "Wh": 1.0}


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@dataclass(frozen=True)
class Served:
    t: float  # wall time the answer was made
    path: str  # "/status", "/rpc/EMData.GetStatus?id=0"
    body: Any


def get_path(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        document = document[int(part)] if part.isdigit() else document[part]
    return document


def set_path(document: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        document = document[int(part)] if part.isdigit() else document[part]
    if last.isdigit():
        document[int(last)] = value
    else:
        document[last] = value


class FakeShelly:
    def __init__(
        self,
        fixture: str | dict[str, Any],
        host: str = "127.0.0.2",
        port: int = 0,
        password: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.fixture = load_fixture(fixture) if isinstance(fixture, str) else fixture
        self.gen = int(self.fixture["shelly"].get("gen", 1))
        self.password = password
        self.delay_s = delay_s
        self.served: list[Served] = []
        self.requests = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._booted = time.time()
        self._base = {c["counter"]: float(c["start"]) for c in self.fixture.get("counters", [])}
        self._nonces: dict[str, tuple[float, int]] = {}  # nonce -> (issued, last nc)
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> FakeShelly:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reboot(self) -> None:
        """Counters back to zero (Gen1 plugs keep no energy across a reboot)."""
        with self._lock:
            self._booted = time.time()
            self._base = {name: 0.0 for name in self._base}

    # -- answers ---------------------------------------------------------------------------

    def shelly_answer(self) -> dict[str, Any]:
        answer = copy.deepcopy(self.fixture["shelly"])
        if self.gen >= 2:
            answer["auth_en"] = self.password is not None
            answer["auth_domain"] = answer["id"] if self.password is not None else None
        else:
            answer["auth"] = self.password is not None
        return answer

    def answer(self, key: str, now: float) -> Any:
        """The answer for `key` ("/status", "/rpc/EM.GetStatus?id=0") at wall time `now`."""
        answers = self.fixture["answers"]
        if key == "/rpc/Shelly.GetStatus" and key not in answers:
            whole = {}
            for name in answers:
                match = re.fullmatch(r"/rpc/(\w+)\.GetStatus\?id=(\d+)", name)
                if match and match.group(1) in GEN2_KEYS:
                    whole[f"{GEN2_KEYS[match.group(1)]}:{match.group(2)}"] = self.answer(name, now)
            return whole
        body = copy.deepcopy(answers[key])
        with self._lock:
            hours = (now - self._booted) / 3600
            for counter in self.fixture.get("counters", []):
                if counter["answer"] != key:
                    continue
                source = answers[counter.get("power_answer", key)]
                power = float(get_path(source, counter["power"]))
                flow = max(power, 0.0) if counter["direction"] == "import" else max(-power, 0.0)
                value = (
                    self._base[counter["counter"]] + flow * hours * UNITS_PER_WH[counter["unit"]]
                )
                decimals = counter.get("decimals", 3)
                set_path(body, counter["path"], round(value, decimals) if decimals else int(value))
        return body

    # -- auth ------------------------------------------------------------------------------

    def _authorised(self, header: str | None, method: str, uri: str) -> bool:
        if self.password is None:
            return True
        if header is None:
            return False
        if self.gen == 1:
            expected = base64.b64encode(f"admin:{self.password}".encode()).decode()
            return header == f"Basic {expected}"
        return header.startswith("Digest ") and self._digest_ok(header, method, uri)

    def _digest_ok(self, header: str, method: str, uri: str) -> bool:
        """RFC 7616 with SHA-256 as a Gen2+ device checks it (its docs: realm the device id,
        user admin, qop auth)."""
        pairs = re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', header[len("Digest ") :])
        parts = {key: quoted or bare for key, quoted, bare in pairs}
        realm = self.fixture["shelly"]["id"]
        required = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        if any(k not in parts for k in required) or parts.get("algorithm") != "SHA-256":
            return False
        if parts["username"] != "admin" or parts["realm"] != realm or parts["uri"] != uri:
            return False
        with self._lock:
            issued = self._nonces.get(parts["nonce"])
            nc = int(parts["nc"], 16)
            if issued is None or time.time() - issued[0] > NONCE_LIFETIME_S or nc <= issued[1]:
                return False

            def h(text: str) -> str:
                return hashlib.sha256(text.encode()).hexdigest()

            ha1 = h(f"admin:{realm}:{self.password}")
            ha2 = h(f"{method}:{uri}")
            expected = h(f"{ha1}:{parts['nonce']}:{parts['nc']}:{parts['cnonce']}:auth:{ha2}")
            if parts["qop"] != "auth" or not secrets.compare_digest(expected, parts["response"]):
                return False
            self._nonces[parts["nonce"]] = (issued[0], nc)
        return True

    def _challenge(self) -> str:
        if self.gen == 1:
            return f'Basic realm="{self.fixture["shelly"]["type"]}"'
        nonce = f"{int(time.time()):x}{secrets.token_hex(4)}"
        with self._lock:
            self._nonces[nonce] = (time.time(), 0)
        realm = self.fixture["shelly"]["id"]
        return f'Digest qop="auth", realm="{realm}", nonce="{nonce}", algorithm=SHA-256'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        device = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                device.requests += 1
                if device.delay_s:
                    time.sleep(device.delay_s)
                split = urlsplit(self.path)
                key = split.path + (f"?{split.query}" if split.query else "")
                if split.path == "/shelly":
                    return self._send(200, device.shelly_answer())
                if not device._authorised(self.headers.get("Authorization"), "GET", self.path):
                    device.refused += 1
                    return self._send(
                        401,
                        {"code": 401, "message": "Unauthorized"},
                        {"WWW-Authenticate": device._challenge()},
                    )
                if key not in device.fixture["answers"] and key != "/rpc/Shelly.GetStatus":
                    return self._send(404, {"code": 404, "message": f"No handler for {key}"})
                now = time.time()
                body = device.answer(key, now)
                with device._lock:
                    device.served.append(Served(now, key, body))
                self._send(200, body)

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def main() -> None:
    """Serve `--plugs` Gen2 plugs (Digest auth with --password) on <network>.2... at
    `--port`; the first `--slow` answer after 2 s. Prints one JSON line of their addresses,
    runs until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugs", type=int, default=20)
    parser.add_argument("--slow", type=int, default=1)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", default=None)
    parser.add_argument("--fixture", default="gen2-plus-plug-s")
    parser.add_argument("--network", default="127.0.0", help="the first three octets")
    args = parser.parse_args()
    devices = [
        FakeShelly(
            args.fixture,
            f"{args.network}.{2 + i}",
            args.port,
            password=args.password,
            delay_s=2.0 if i < args.slow else 0.0,
        ).start()
        for i in range(args.plugs)
    ]
    print(json.dumps([d.address for d in devices]), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for device in devices:
        device.stop()


if __name__ == "__main__":
    main()
