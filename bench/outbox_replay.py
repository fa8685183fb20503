"""Benchmark: replay a 24 h backlog (86,400 one-second samples) from the outbox into the sink.

    .tools/venv/bin/python bench/outbox_replay.py [--samples 86400]

The backlog is what a day-long database outage leaves behind: 86,400 `electricity` samples
of a three-phase meter (four channels a second would be 4x this; one is the design's figure).
They are put into a real outbox, then sent with the collector's forwarder (batches of 5,000,
gzip, the InfluxDB v2 write API) to VictoriaMetrics, and counted back there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homewatt_collector.forwarder import Forwarder  # noqa: E402
from homewatt_collector.models import Sample  # noqa: E402
from homewatt_collector.outbox import Outbox  # noqa: E402
from homewatt_collector.sinks.influxdb import InfluxDBSink  # noqa: E402
from homewatt_collector.sources.demo import DemoSource, DemoSourceConfig  # noqa: E402
from tests.support.processes import wait_until  # noqa: E402
from tests.support.victoria import VictoriaMetrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=86_400)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="homewatt-bench-"))
    vm = VictoriaMetrics(work / "vm").start()
    outbox = Outbox(work / "outbox.sqlite", max_bytes=200 * 2**20)
    source = DemoSource(DemoSourceConfig(), site="bench")
    start_ts = int(time.time()) - args.samples

    began = time.perf_counter()
    batch: list[Sample] = []
    for ts in range(start_ts, start_ts + args.samples):
        batch.extend(source.read(ts).samples)
        if len(batch) >= 1000:
            outbox.put(batch)
            batch = []
    outbox.put(batch)
    fill_s = time.perf_counter() - began
    size_mb = outbox.stats().size_bytes / 2**20

    sink = InfluxDBSink(name="vm", url=vm.url, org="o", bucket="b", token=None, timeout_s=30)
    forwarder = Forwarder(outbox, sink, threading.Event(), batch_size=5000)
    began = time.perf_counter()
    sent = forwarder.drain()
    replay_s = time.perf_counter() - began
    wait_until(
        lambda: len(vm.samples("electricity_power_w")) >= args.samples, 120, "every sample in VM"
    )
    arrived = len(vm.samples("electricity_power_w"))
    sink.close()
    outbox.close()
    vm.stop()
    shutil.rmtree(work, ignore_errors=True)
    figures = {
        "samples": args.samples,
        "outbox_size_mb": round(size_mb, 1),
        "outbox_fill_s": round(fill_s, 1),
        "replay_s": round(replay_s, 1),
        "replay_samples_per_s": round(sent / replay_s),
        "arrived_in_victoria_metrics": arrived,
    }
    for key, value in figures.items():
        print(f"{key:32} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
