"""The data the dashboard tests query, produced by homewatt's own code and stored in Debian's
InfluxDB 1.6.7 the way the contract lays out InfluxDB 2 (database `homewatt`, retention policies
`raw` and `longterm`):

- the SDM630's last 16 days at 5-minute steps (a house with solar panels on l3, so it counts
  import and export; three_phase.py), read by the collector's Modbus source from the meter's
  register image in memory;
- three-phase data and health points from a real `homewatt-collector run` process reading that
  SDM630 (the shipped template) on the emulated RS485 line, its registers the image at the
  history's end, with a second meter id that never answers (read errors and timeouts in its
  first 3 cycles, then backed off), a sink nobody listens on (the outbox backlog grows), a
  second sink whose server drops 2 points of every write with InfluxDB 2's 422 partial write
  (sink_rejected), and two exceptions injected into the source's read (worker_restarts); the
  first sink's outbox holds the lines the collector's encoder made, which go to InfluxDB unchanged;
- a simulated household from `DemoSource.read(ts)` with a fixed seed: 400 days back at 15-minute
  steps, the last 30 days at 60 s, the last 15 minutes at 1 s (one source instance, so its energy
  counter runs on across the changes of step), up to the moment the collector run starts, plus a
  second meter that went silent 10 minutes before and a second site; encoded with the
  collector's line-protocol encoder;
- circuits and plugs (circuits.py): a Shelly Plug S's last two days, then a second real
  `homewatt-collector run` (instance `plugs`, source shelly) polling it on an in-repo Shelly
  test device beside a plug that never answers; an Emporia account's Vue (mains, circuits,
  balance) and two smart plugs, minute points and per-second points as the poller writes them;
- backup health points as homewatt-backup writes them (`runner.health_line`, the SAS's expiry
  by `runner.sas_expires_in_days` from a SAS string);
- the long-term retention policy filled by the InfluxQL equivalent of the contract's
  downsampling (SELECT ... INTO ... GROUP BY time(1m), *), the stand-in for the Flux task that
  only InfluxDB 2 runs.

Differences from a Pi, on purpose: the raw retention policy keeps everything (INF, so 400 days of
history can be downsampled from it; the real raw bucket keeps `influxdb_raw_retention_days`),
and writes go to 1.6.7's v1 /write (it has no v2 write API), with the same line protocol.
Everything written is also kept here as parsed points, for the independent expected values.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from homewatt_backup.models import Kind
from homewatt_backup.runner import health_line, sas_expires_in_days
from homewatt_collector.models import Sample
from homewatt_collector.outbox import Outbox
from homewatt_collector.sources.demo.config import DemoSourceConfig
from homewatt_collector.sources.demo.source import DemoSource
from homewatt_common.lineprotocol import encode_line
from homewatt_grafana.contract import Contract
from tests.grafana import circuits
from tests.grafana.three_phase import DEVICE_ID, MeterHistory, history
from tests.support.faketime import shifted_clock_env
from tests.support.influxdb1 import InfluxDB1
from tests.support.meterbus import MeterBus, start_meter_bus
from tests.support.processes import ServerProcess, free_port, unreachable_address, wait_until
from tests.support.shelly_devices import FakeShelly

COLLECTOR_BIN = Path(sys.executable).with_name("homewatt-collector")
REPO = Path(__file__).resolve().parents[2]
FAULT_INJECTION = REPO / "tests" / "support" / "faultinject"
SITE = "home"
OTHER_SITE = "cabin"
THREE_PHASE = "main3p"  # the SDM630 the real collector reads
SILENT_METER = "shed"  # a configured meter id that never answers
UNIT = "main3p"  # the collector instance (config file name / `unit` tag)
DEMO = "demo-meter"
GONE_QUIET = "garage"  # a demo meter that stopped writing 10 minutes ago
CABIN = "cabin-meter"
DAY = 86400
THREE_PHASE_DAYS = 16  # the SDM630's history before the real run: import and export per day


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | int | bool | str]
    ts: int  # seconds


def _matching(points: list[Point], measurement: str, tags: dict[str, str]) -> list[Point]:
    return [
        p
        for p in points
        if p.measurement == measurement and all(p.tags.get(k) == v for k, v in tags.items())
    ]


_FIELD = re.compile(r'([^,=]+)=("(?:[^"\\]|\\.)*"|[^,]+)')


def parse_line(line: str) -> Point:
    """Line protocol as the collector and the backup write it (no spaces in names or tags), read
    independently of InfluxDB so that expected values never come from the server under test."""
    series, fields_text, ts = line.rsplit(" ", 2)
    measurement, *tag_parts = series.split(",")
    tags = dict(part.split("=", 1) for part in tag_parts)
    fields: dict[str, float | int | bool | str] = {}
    for key, raw in _FIELD.findall(fields_text):
        if raw.endswith("i"):
            fields[key] = int(raw[:-1])
        elif raw in ("true", "false"):
            fields[key] = raw == "true"
        elif raw.startswith('"'):
            fields[key] = raw[1:-1]
        else:
            fields[key] = float(raw)
    return Point(measurement, tags, fields, int(ts))


@dataclass
class Dataset:
    influx: InfluxDB1
    contract: Contract
    now: int  # the evaluation time of every query (seconds): just after the last sample
    points: list[Point] = field(default_factory=list)  # the raw retention policy
    longterm: list[Point] = field(default_factory=list)  # what the downsampling wrote
    collector_lines: list[str] = field(default_factory=list)
    history_end: int = 0  # when the simulated history (and the backup points) end, seconds
    bills: dict[int, float] = field(default_factory=dict)  # SITE's bill points: ts -> cost

    def raw(self, measurement: str, **tags: str) -> list[Point]:
        return _matching(self.points, measurement, tags)

    def long_term(self, **tags: str) -> list[Point]:
        return _matching(self.longterm, self.contract.longterm_measurement, tags)

    def query(self, q: str) -> list[dict[str, Any]]:
        """The query as Grafana's backend sends it: GET /query?db=...&epoch=ms."""
        result = self.influx.query(q, db=self.contract.database, epoch="ms")
        assert len(result) == 1, result
        series: list[dict[str, Any]] = result[0].get("series", [])
        return series


# -------------------------------------------------------------------------- the collector


def _unreachable_local_sink() -> dict[str, Any]:
    """A collector run's `local` sink on a port nobody listens on: every cycle stays in the
    outbox (the backlog grows), where the run's lines are read back from."""
    return {
        "name": "local",
        "url": f"http://127.0.0.1:{free_port()}",
        "org": "homewatt",
        "bucket": "homewatt",
        "anonymous": True,
        "timeout_s": 1,
        "retry_min_s": 0.2,
        "retry_max_s": 1,
    }


def _collector_config(path: Path, port: str, outbox_dir: Path, partial_writes_url: str) -> Path:
    config = {
        "site": SITE,
        "unit": UNIT,
        "interval_s": 1,
        "source": {
            "kind": "modbus",
            "port": port,
            # A pty cannot do even parity reliably (platform.md): the line runs 8N1.
            "serial": {"baudrate": 9600, "parity": "N", "bytesize": 8, "stopbits": 1},
            "meters": [
                {"name": THREE_PHASE, "model": "sdm630", "device_id": DEVICE_ID},
                {"name": SILENT_METER, "model": "sdm630", "device_id": 2, "timeout_s": 0.2},
            ],
        },
        "sinks": [
            _unreachable_local_sink(),
            {
                "name": "central",
                "url": partial_writes_url,  # drops 2 points of every write: sink_rejected
                "org": "homewatt",
                "bucket": "homewatt",
                "anonymous": True,
                "timeout_s": 1,
            },
        ],
        "outbox": {"dir": str(outbox_dir), "checkpoint_interval_s": 1},
        "clock": {"wait_for_sync": False},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _stored_lines(outbox: Path) -> list[str]:
    """Every line the stopped collector left in its outbox (its sinks never took them)."""
    opened = Outbox(outbox, max_bytes=10**9)
    try:
        return [entry.line for entry in opened.peek(10**6)]
    finally:
        opened.close()


def _enqueued(outbox: Path) -> int:
    if not outbox.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT value FROM counters WHERE name = 'enqueued'").fetchone()
        except sqlite3.OperationalError:  # its tables not created yet
            return 0
    return int(row[0]) if row else 0


# The answer InfluxDB 2 gives a write from which it dropped points (reconstructed from its
# source: contracts/influxdb-write-answers.json names it), with dropped=2.
PARTIAL_WRITE = next(
    answer
    for answer in json.loads((REPO / "contracts" / "influxdb-write-answers.json").read_text())[
        "answers"
    ]
    if answer["status"] == 422
)
REJECTED_PER_WRITE = 2


class _PartialWrites(BaseHTTPRequestHandler):
    """Answers every write (POST /api/v2/write) with the 422 partial write above and GET /ping
    with 204, as InfluxDB 2 does; counts the writes."""

    writes = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).writes += 1
        body = PARTIAL_WRITE["body"].encode()
        self.send_response(422)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


# Unexpected exceptions in the real process (tests/support/faultinject): the Modbus source's
# read (read_within: the service passes it the cycle's end) raises in cycles 4 and 5; the
# source loop survives them, counted in worker_restarts.
FAULTS = [
    {
        "target": "homewatt_collector.sources.modbus.source:ModbusSource.read_within",
        "raise": "RuntimeError",
        "message": "injected by the Grafana tests",
        "after": 3,
        "times": 2,
    }
]


@dataclass
class CollectorRun:
    """A running `homewatt-collector run` on an emulated line (see `start_collector`)."""

    process: ServerProcess
    bus: MeterBus
    outbox: Path
    partial_writes: ThreadingHTTPServer

    def finish(self, cycles: int) -> list[str]:
        """Wait for `cycles` cycles, stop it, and return what its outbox holds (the lines the
        collector's encoder made)."""
        try:
            # A cycle writes 4 electricity samples (l1, l2, l3, total), 1 health sample and 2
            # device health samples (the two meters); one whose read raised writes 1.
            wait_until(lambda: _enqueued(self.outbox) >= 7 * cycles, 60, f"{cycles} cycles")
            wait_until(lambda: _PartialWrites.writes >= 3, 30, "writes to the 422 sink")
        finally:
            self.process.stop()
            self.bus.stop()
            self.partial_writes.shutdown()
            self.partial_writes.server_close()
        return _stored_lines(self.outbox)


def start_collector(workdir: Path, registers: dict[int, int], clock_offset_s: int) -> CollectorRun:
    """Start the real collector reading an SDM630 with these input registers on an emulated
    line (and a meter id that never answers), delivering to a sink nobody listens on and to
    one that answers every write with a 422 partial write; FAULTS injected; its wall clock
    `clock_offset_s` from the real one."""
    (workdir / "bus").mkdir(parents=True, exist_ok=True)
    bus = start_meter_bus(workdir / "bus", {DEVICE_ID: {"input": registers}})
    outbox_dir = workdir / "outbox"
    partial_writes = ThreadingHTTPServer(("127.0.0.1", 0), _PartialWrites)
    threading.Thread(target=partial_writes.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{partial_writes.server_address[1]}"
    config = _collector_config(workdir / f"{UNIT}.yaml", bus.port, outbox_dir, url)
    env = shifted_clock_env(clock_offset_s)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(FAULT_INJECTION), env.get("PYTHONPATH", "")) if p
    )
    env["HOMEWATT_TEST_FAULTS"] = json.dumps(FAULTS)
    process = ServerProcess(
        "homewatt-collector",
        [str(COLLECTOR_BIN), "run", "-c", str(config), "--no-table"],
        workdir / "collector.log",
        env=env,
    ).start()
    return CollectorRun(process, bus, outbox_dir / "outbox-local.sqlite", partial_writes)


@dataclass
class PlugRun:
    """A running `homewatt-collector run` with a shelly source (see `start_plug_collector`)."""

    process: ServerProcess
    washer: FakeShelly
    unplugged: contextlib.ExitStack
    outbox: Path

    def finish(self) -> list[str]:
        """Wait until the washer's samples are stored (after the counter rule's first reads)
        and the unplugged plug has been backed off, stop, return the outbox's lines."""
        try:
            wait_until(lambda: _enqueued(self.outbox) >= 40, 60, "the plugs' cycles")
        finally:
            self.process.stop()
            self.washer.stop()
            self.unplugged.close()
        return _stored_lines(self.outbox)


def start_plug_collector(workdir: Path, washer_counter_wmin: float, clock_offset_s: int) -> PlugRun:
    """The real collector polling the Shelly washer plug (the in-repo test device, its counter
    going on from the history's) and a plug that never answers, into an outbox whose sink
    nobody listens on; its wall clock `clock_offset_s` from the real one."""
    workdir.mkdir(parents=True, exist_ok=True)
    washer = circuits.live_washer(washer_counter_wmin, "127.0.0.71")
    unplugged = contextlib.ExitStack()
    dead = unplugged.enter_context(unreachable_address("127.0.0.72"))
    config = {
        "site": SITE,
        "unit": circuits.PLUGS_UNIT,
        "interval_s": 1,
        "source": circuits.plugs_config(washer.address, dead),
        "sinks": [_unreachable_local_sink()],
        "outbox": {"dir": str(workdir / "outbox"), "checkpoint_interval_s": 1},
        "clock": {"wait_for_sync": False},
    }
    path = workdir / f"{circuits.PLUGS_UNIT}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    process = ServerProcess(
        "homewatt-collector plugs",
        [str(COLLECTOR_BIN), "run", "-c", str(path), "--no-table"],
        workdir / "collector.log",
        env=shifted_clock_env(clock_offset_s),
    ).start()
    return PlugRun(process, washer, unplugged, workdir / "outbox" / "outbox-local.sqlite")


# -------------------------------------------------------------------------- simulated data


def demo_data(device: str, seed: int, site: str, steps: Iterable[int]) -> Iterator[Sample]:
    source = DemoSource(DemoSourceConfig(device=device, seed=seed), site=site)
    for ts in steps:
        yield from source.read(ts).samples


def history_steps(now: int) -> Iterator[int]:
    """400 days at 15 min, then the last 30 days at 60 s, then the last 15 minutes at 1 s."""
    t = (now - 400 * DAY) // 900 * 900
    while t < now - 30 * DAY:
        yield t
        t += 900
    t = t // 60 * 60
    while t < now - 900:
        yield t
        t += 60
    t = now - 900
    while t < now:
        yield t
        t += 1


def sas(expiry: int) -> str:
    """A container SAS as Terraform issues it (sv, sr, sp, st, se, spr, sig; the signature a
    placeholder: only the expiry matters here)."""
    iso = datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"sv=2022-11-02&sr=c&sp=rcwl&st=2026-01-01T00:00:00Z&se={iso}&spr=https&sig=c2lnbmF0dXJl"


HOME_SAS_DAYS = 75.5  # the home site's SAS expires this many days after the last backup point
CABIN_SAS_DAYS = 9.75  # the cabin's SAS: within the alert's 14 days


def backup_lines(now: int) -> list[str]:
    """Hourly backups at 10 past the hour (the daily full one at 03:10 UTC), one failure five
    hours ago, for the last 3 days of the home site; the cabin's last backup was 5 hours ago.
    Each point carries `sas_expires_in_days` as the backup computes it from its SAS
    (`runner.sas_expires_in_days`): the home site's SAS has months left, the cabin's expires
    within the alert's limit."""
    lines = []
    first = (now - 3 * DAY) // 3600 * 3600 + 600
    home_sas = sas(now + int(HOME_SAS_DAYS * DAY))
    cabin_sas = sas(now + int(CABIN_SAS_DAYS * DAY))
    for ts in range(first, now, 3600):
        hour = datetime.fromtimestamp(ts, UTC).hour
        kind = Kind.DAILY if hour == 3 else Kind.HOURLY
        failed = now - 5 * 3600 <= ts < now - 4 * 3600
        size = 48_000_000 if kind is Kind.DAILY else 350_000 + (ts // 3600 % 7) * 1000
        lines.append(
            health_line(
                SITE,
                kind,
                ok=not failed,
                duration_s=42.5 if kind is Kind.DAILY else 3.25,
                size=0 if failed else size,
                pending=1 if failed else 0,
                timestamp=ts,
                sas_expires_in_days=sas_expires_in_days(home_sas, datetime.fromtimestamp(ts, UTC)),
            )
        )
    for ts in range(first, now - 5 * 3600, 3600):
        lines.append(
            health_line(
                OTHER_SITE,
                Kind.HOURLY,
                ok=True,
                duration_s=2.0,
                size=200_000,
                pending=0,
                timestamp=ts,
                sas_expires_in_days=sas_expires_in_days(cabin_sas, datetime.fromtimestamp(ts, UTC)),
            )
        )
    return lines


# -------------------------------------------------------------------------- downsampling


def downsampling_query(contract: Contract, start: int, end: int) -> str:
    """The InfluxQL equivalent of the contract's Flux task (InfluxDB 2's /query refuses INTO,
    so this runs only here, never in a dashboard)."""
    selections = ", ".join(f'{f.aggregate}("{f.source}") AS "{f.name}"' for f in contract.fields)
    target = f'"{contract.database}"."{contract.longterm.name}"."{contract.longterm_measurement}"'
    source = f'"{contract.database}"."{contract.raw.name}"."{contract.source_measurement}"'
    where = f"time >= {start}s AND time < {end}s"
    group = f"GROUP BY time({contract.window}), * fill(none)"
    # InfluxQL from the contract's names and two integers: no outside input reaches it.
    return f"SELECT {selections} INTO {target} FROM {source} WHERE {where} {group}"  # noqa: S608


def downsample(influx: InfluxDB1, contract: Contract, start: int, end: int) -> None:
    """Run the downsampling over [start, end) in 50-day pieces (as the task runs it over its
    lookback, only wider), each POSTed with a timeout that a slow machine does not hit."""
    step = 50 * DAY
    for piece in range(start, end, step):
        body = urllib.parse.urlencode(
            {
                "db": contract.database,
                "q": downsampling_query(contract, piece, min(piece + step, end)),
            }
        ).encode()
        request = urllib.request.Request(f"{influx.url}/query", data=body)  # noqa: S310
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 (loopback)
            results = json.loads(response.read())["results"]
        assert all("error" not in r for r in results), results


def longterm_points(contract: Contract, points: list[Point]) -> list[Point]:
    """What the downsampling writes, computed here from the raw points (for expected values)."""
    windows: dict[tuple[tuple[tuple[str, str], ...], int], list[Point]] = {}
    for p in points:
        if p.measurement == contract.source_measurement:
            windows.setdefault((tuple(sorted(p.tags.items())), p.ts // 60 * 60), []).append(p)
    out = []
    for (tags, start), group in windows.items():
        group.sort(key=lambda p: p.ts)
        fields: dict[str, float | int | bool | str] = {}
        for f in contract.fields:
            values = [(p.ts, p.fields[f.source]) for p in group if f.source in p.fields]
            if not values:
                continue
            numbers = [float(v) for _, v in values]
            if f.aggregate == "mean":
                fields[f.name] = sum(numbers) / len(numbers)
            elif f.aggregate == "max":
                fields[f.name] = max(numbers)
            elif f.aggregate == "last":
                fields[f.name] = numbers[-1]
            else:
                raise AssertionError(f"aggregate {f.aggregate} of {f.name}")
        if fields:
            out.append(Point(contract.longterm_measurement, dict(tags), fields, start))
    return out


# -------------------------------------------------------------------------- building


def build(workdir: Path, contract: Contract, at: datetime | None = None) -> Dataset:
    """Everything above, in InfluxDB. The collector runs in real time (seconds) while the
    simulated history is computed, and InfluxDB downsamples while Python computes what it
    should get.

    `at`: the instant the history ends and the collector runs start (default: now). Another
    instant moves the whole dataset: the history is computed up to it, and the collector runs
    and the cost command are processes whose wall clock reads it (tests/support/faketime.py),
    so the dashboards can be checked at the instants where calendars disagree (a local
    midnight, the 1st of a month, a DST day) whenever the tests run."""
    real = int(time.time())
    end = real if at is None else int(at.timestamp())  # the simulated history ends here
    offset = end - real
    meter = MeterHistory(start=(end - THREE_PHASE_DAYS * DAY) // 300 * 300)
    samples = list(history(THREE_PHASE, SITE, meter, range(meter.start, end, 300)))
    washer, washer_counter = circuits.shelly_history(SITE, end)
    run = start_collector(workdir / "collector", meter.image(end), offset)
    try:
        samples += demo_data(DEMO, 7, SITE, history_steps(end))
        samples += demo_data(GONE_QUIET, 3, SITE, range(end - 2 * DAY, end - 600, 60))
        samples += demo_data(CABIN, 11, OTHER_SITE, range(end - 3 * DAY, end, 60))
    finally:
        collector_lines = run.finish(cycles=12)
    # After the Modbus run, not beside it: its 1 s reads on the emulated line stay on time
    plugs = start_plug_collector(workdir / "plugs", washer_counter, offset)
    try:
        samples += washer
        samples += circuits.emporia_history(SITE, end)
    finally:
        collector_lines += plugs.finish()
    other_lines = collector_lines + backup_lines(end)
    lines = [encode_line(s.measurement, s.tags, s.fields, s.ts) for s in samples] + other_lines
    # The samples' own values are the expected side's input: no round trip through a parser.
    points = [Point(s.measurement, dict(s.tags), dict(s.fields), s.ts) for s in samples]
    points += [parse_line(line) for line in other_lines]
    now = max(p.ts for p in points) + 1

    influx = InfluxDB1(workdir / "influxdb").start()
    db, raw, lt = contract.database, contract.raw.name, contract.longterm.name
    influx.query(f'CREATE DATABASE "{db}" WITH DURATION INF NAME "{raw}"', post=True)
    influx.query(f'CREATE RETENTION POLICY "{lt}" ON "{db}" DURATION INF REPLICATION 1', post=True)
    for i in range(0, len(lines), 5000):
        influx.write(db, lines[i : i + 5000])
    start = min(p.ts for p in points) // 60 * 60
    with ThreadPoolExecutor(1) as pool:
        into = pool.submit(downsample, influx, contract, start, now + 60)
        dataset = Dataset(
            influx, contract, now, points, collector_lines=collector_lines, history_end=end
        )
        dataset.longterm = longterm_points(contract, dataset.raw(contract.source_measurement))
        into.result()
    dataset.bills = write_costs(workdir / "cost", influx, contract, now, offset)
    return dataset


# -------------------------------------------------------------------------- the cost command

COST_ZONE = "Europe/Berlin"  # the site's time zone (the dashboard tests' TZ)
COST_DAYS = 70  # billed days up to today: this month and the two before are in view


def write_costs(
    workdir: Path, influx: InfluxDB1, contract: Contract, now: int, clock_offset_s: int
) -> dict[int, float]:
    """`homewatt-collector cost --write` of SITE's last COST_DAYS days (today's so far
    included) from the raw counters, into the long-term retention policy as
    collector/cost.example.yaml says, its wall clock `clock_offset_s` from the real one;
    SITE's `bill` points read back (ts -> cost)."""
    workdir.mkdir(parents=True)
    (workdir / "tariff.yaml").write_text(
        yaml.safe_dump(
            {
                "timezone": COST_ZONE,
                "currency": "EUR",
                "standing_charge_per_day": 0.5,
                "periods": [
                    {
                        "name": "peak",
                        "price": 0.4,
                        "hours": ["07-21"],
                        "days": ["mon", "tue", "wed", "thu", "fri"],
                    },
                    {"name": "offpeak", "price": 0.25},
                ],
            }
        )
    )
    config = yaml.safe_load((REPO / "collector" / "cost.example.yaml").read_text())
    config["site"] = SITE
    config["tariff"] = str(workdir / "tariff.yaml")
    config["influxdb"] = {
        "url": influx.url,
        "database": contract.database,
        "anonymous": True,
    }
    (workdir / "cost.yaml").write_text(yaml.safe_dump(config))
    today = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(COST_ZONE)).date()
    first = today - timedelta(days=COST_DAYS - 1)
    done = subprocess.run(
        [
            str(COLLECTOR_BIN),
            "cost",
            "-c",
            str(workdir / "cost.yaml"),
            "--write",
            "--from",
            first.isoformat(),
            "--to",
            today.isoformat(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=shifted_clock_env(clock_offset_s),
    )
    assert done.returncode == 0, done.stderr
    source = f'"{contract.longterm.name}"."energy_cost"'
    q = f'SELECT "cost" FROM {source} WHERE "site" = \'{SITE}\' AND "period" = \'bill\''  # noqa: S608 (test constants)
    series = influx.query(q, db=contract.database, epoch="s")[0]["series"]
    return {ts: cost for s in series for ts, cost in s["values"]}
