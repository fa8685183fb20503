"""Benchmark: the outbox's bound (every file: database, -wal, -shm) while a backlog drains, and
while the sink is down.

    .tools/venv/bin/python bench/outbox_replay.py drain [--hours 72] [--meters 3]
        [--max-size-mb 200]
    .tools/venv/bin/python bench/outbox_replay.py sink-down [--hours 6] [--max-size-mb 1]

drain: the backlog a long database outage leaves behind: `--hours` of one-second samples of
`--meters` single-phase meters (power, voltage, current, total energy: about 150 bytes of line
protocol a sample; 72 h of three meters is the ~152 MB backlog of issue 15) is put into a real
outbox with the bound `--max-size-mb`, then sent with the collector's forwarder (batches of
5,000, gzip, the InfluxDB v2 write API) to VictoriaMetrics and counted back there.

sink-down: the forwarder runs against a port nobody listens on (connection refused, retried
with its backoff, its first batch held in flight) while a cycle of `--meters` samples a second
(timestamps one second apart, put back to back, not in real time) is put for `--hours`.

Both sample the sizes of the outbox's files every 2 ms in a thread while they run and print
the peak of each file and of their sum (a transient shorter than 2 ms can be missed; the WAL
is largest just before a checkpoint, which the outbox starts itself), the drops, and the rates.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homewatt_collector.forwarder import Backoff, Forwarder  # noqa: E402
from homewatt_collector.models import Sample  # noqa: E402
from homewatt_collector.outbox import Outbox  # noqa: E402
from homewatt_collector.sinks.influxdb import InfluxDBSink  # noqa: E402
from homewatt_collector.sources.demo.config import DemoSourceConfig  # noqa: E402
from homewatt_collector.sources.demo.source import DemoSource  # noqa: E402
from tests.support.filesizes import MB, FileSizes, sizes  # noqa: E402
from tests.support.processes import wait_until  # noqa: E402
from tests.support.victoria import VictoriaMetrics  # noqa: E402

# The fields of a small single-phase meter (power, voltage, current, total energy) out of the
# demo household's reading: about 150 bytes of line protocol, about 205 bytes in the outbox.
FIELDS = ("power_w", "voltage_v", "current_a", "energy_total_kwh")


def peaks(sizes: FileSizes, prefix: str) -> dict[str, float | int]:
    return {
        f"{prefix}_peak_db_bytes": sizes.peaks[""],
        f"{prefix}_peak_wal_bytes": sizes.peaks["-wal"],
        f"{prefix}_peak_shm_bytes": sizes.peaks["-shm"],
        f"{prefix}_peak_total_bytes": sizes.peak_total,
        f"{prefix}_size_samples": sizes.count,
    }


def cycle(source: DemoSource, ts: int, meters: int) -> list[Sample]:
    (reading,) = (s for s in source.read(ts).samples if s.measurement == "electricity")
    fields = {name: reading.fields[name] for name in FIELDS}
    return [
        Sample(
            "electricity",
            {"site": "bench", "device": f"meter-{n}", "model": "orno-we-515", "channel": "total"},
            fields,
            ts,
        )
        for n in range(1, meters + 1)
    ]


def drain(args: argparse.Namespace, work: Path) -> dict[str, float | int]:
    seconds = int(args.hours * 3600)
    vm = VictoriaMetrics(work / "vm").start()
    path = work / "outbox.sqlite"
    outbox = Outbox(path, max_bytes=args.max_size_mb * MB)
    source = DemoSource(DemoSourceConfig(), site="bench")
    start_ts = int(time.time()) - seconds

    began = time.perf_counter()
    with FileSizes(path):
        batch: list[Sample] = []
        for ts in range(start_ts, start_ts + seconds):
            batch.extend(cycle(source, ts, args.meters))
            if len(batch) >= 300:  # 100 one-second cycles a transaction
                outbox.put(batch)
                batch = []
        outbox.put(batch)
    fill_s = time.perf_counter() - began
    filled = outbox.stats()
    dropped_by_fill = outbox.counter("dropped")

    sink = InfluxDBSink(name="vm", url=vm.url, org="o", bucket="b", token=None, timeout_s=60)
    forwarder = Forwarder(outbox, sink, threading.Event(), batch_size=5000)
    began = time.perf_counter()
    with FileSizes(path) as during:
        sent = forwarder.drain()
    replay_s = time.perf_counter() - began
    expected = seconds * args.meters
    dropped_by_drain = outbox.counter("dropped") - dropped_by_fill
    wait_until(
        lambda: len(vm.samples("electricity_power_w")) >= expected - dropped_by_fill,
        300,
        "every sample in VictoriaMetrics",
        step=2,
    )
    arrived = len(vm.samples("electricity_power_w"))
    after = sizes(path)
    sink.close()
    outbox.close()
    vm.stop()
    return {
        "hours": args.hours,
        "meters": args.meters,
        "max_size_bytes": args.max_size_mb * MB,
        "samples": expected,
        "outbox_after_fill_bytes": filled.size_bytes,
        "outbox_fill_s": round(fill_s, 1),
        "dropped_by_fill": dropped_by_fill,
        **peaks(during, "drain"),
        "drain_s": round(replay_s, 1),
        "drain_samples_per_s": round(sent / replay_s),
        "dropped_by_drain": dropped_by_drain,
        "arrived_in_victoria_metrics": arrived,
        "files_after_drain_bytes": sum(after.values()),
    }


def sink_down(args: argparse.Namespace, work: Path) -> dict[str, float | int]:
    seconds = int(args.hours * 3600)
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    path = work / "outbox.sqlite"
    outbox = Outbox(path, max_bytes=args.max_size_mb * MB)
    sink = InfluxDBSink(name="down", url=dead_url, org="o", bucket="b", token=None, timeout_s=5)
    stop = threading.Event()
    forwarder = Forwarder(outbox, sink, stop, backoff=Backoff(0.5, 5.0), idle_poll_s=0.1)
    source = DemoSource(DemoSourceConfig(), site="bench")
    start_ts = 1_700_000_000
    began = time.perf_counter()
    with FileSizes(path) as run:
        forwarder.start()
        for ts in range(start_ts, start_ts + seconds):
            outbox.put(cycle(source, ts, args.meters))
        stop.set()
        forwarder.join(30)
    put_s = time.perf_counter() - began
    kept = [entry.ts for entry in outbox.peek(10**7)]
    stats = outbox.stats()
    last_ts = start_ts + seconds - 1
    newest_kept = kept == sorted(kept) and set(kept) == set(range(kept[0], last_ts + 1))
    sink.close()
    outbox.close()
    return {
        "hours": args.hours,
        "meters": args.meters,
        "max_size_bytes": args.max_size_mb * MB,
        "samples_put": seconds * args.meters,
        **peaks(run, "sink_down"),
        "put_s": round(put_s, 1),
        "cycles_per_s": round(seconds / put_s),
        "dropped": stats.counters["dropped"],
        "kept": stats.backlog,
        "kept_span_s": last_ts - kept[0] + 1,
        "kept_are_the_newest": int(newest_kept),
        "sink_errors": forwarder.take_errors(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("drain", "sink-down"))
    parser.add_argument("--hours", type=float, help="backlog (drain: 72) or outage (sink-down: 6)")
    parser.add_argument("--meters", type=int, default=3)
    parser.add_argument("--max-size-mb", type=int, help="the bound (drain: 200, sink-down: 1)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    drain_case = args.scenario == "drain"
    args.hours = args.hours or (72.0 if drain_case else 6.0)
    args.max_size_mb = args.max_size_mb or (200 if drain_case else 1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    work = Path(tempfile.mkdtemp(prefix="homewatt-bench-"))
    try:
        figures = drain(args, work) if drain_case else sink_down(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:32} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
