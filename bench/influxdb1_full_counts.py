"""Benchmark: what the per-shard counts of an InfluxDB 1.x full backup cost, next to the backup
itself, and how long a restore then waits for influxd to load what it was sent.

    .tools/venv/bin/python bench/influxdb1_full_counts.py [--days 3] [--json FILE]

A real InfluxDB 1.6.7 (tests/support/influxdb1.py) gets `--days` of one-second data ending now:
per second a three-phase meter's four points (l1, l2, l3, total; ten fields each, the data
model's names) and one collector health point (five fields): 45 field values a second, about
3.9 million a day. Then, through the backup's own engine (homewatt_backup.engines.influxdb1):
the per-shard `SELECT COUNT(*)` a full backup now runs before `influxd backup -portable`
(timed on its own), the whole `dump_full` (counts + influxd backup + shard file checks), and a
`restore_full` of it into a new database (influxd restore + the wait until the restored
database counts as much). Data written over HTTP sits partly in influxd's cache: the figures
are for a database whose older shards are compacted TSM files (cache-max-memory-size 64 MiB).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homewatt_backup.config import InfluxDB1Config, Secrets  # noqa: E402
from homewatt_backup.engines.influxdb1 import InfluxDB1Engine  # noqa: E402
from tests.support.influxdb1 import InfluxDB1  # noqa: E402

DB = "homewatt"
METER_FIELDS = (
    "power_w={p},voltage_v=229.8,current_a=1.01,frequency_hz=50.01,power_factor=0.98,"
    "reactive_power_var=12.5,apparent_power_va=240.1,energy_total_kwh={e},"
    "energy_import_kwh={e},energy_export_kwh=0.5"
)
HEALTH = (
    "homewatt_health,site=bench,unit=collector cycle_lateness_ms={n}i,read_errors=0i,"
    "outbox_backlog=0i,outbox_dropped=0i,sink_errors=0i {ts}"
)
VALUES_PER_SECOND = 4 * 10 + 5


def fill(influx: InfluxDB1, days: float) -> int:
    seconds = int(days * 86400)
    start = int(time.time()) - seconds
    batch: list[str] = []
    for i in range(seconds):
        ts = start + i
        fields = METER_FIELDS.format(p=230 + i % 17, e=1000 + i / 3600)
        for channel in ("l1", "l2", "l3", "total"):
            batch.append(
                f"electricity,site=bench,source=modbus,device=meter1,channel={channel},"
                f"model=orno-we-516 {fields} {ts}"
            )
        batch.append(HEALTH.format(n=i % 5, ts=ts))
        if len(batch) >= 25_000:
            influx.write(DB, batch)
            batch = []
    if batch:
        influx.write(DB, batch)
    return seconds * VALUES_PER_SECOND


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, float | int] = {"days": args.days}
    with tempfile.TemporaryDirectory(prefix="homewatt-bench-") as tmp:
        work = Path(tmp)
        influx = InfluxDB1(work / "influxdb1").start()
        try:
            influx.create_database(DB)
            began = time.monotonic()
            figures["field_values"] = fill(influx, args.days)
            figures["fill_s"] = round(time.monotonic() - began, 1)
            config = InfluxDB1Config(
                engine="influxdb1", url=influx.url, database=DB, rpc_address=influx.rpc_address
            )
            engine = InfluxDB1Engine(config, Secrets(None, None, None))
            shards = engine.shards(DB)
            figures["shards"] = len(shards)
            began = time.monotonic()
            counted = sum(sum(engine.shard_field_values(DB, s).values()) for s in shards)
            figures["counts_s"] = round(time.monotonic() - began, 2)
            figures["counted"] = counted
            (work / "dump").mkdir()
            began = time.monotonic()
            full = engine.dump_full(work / "dump", datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
            figures["dump_full_s"] = round(time.monotonic() - began, 2)
            figures["backup_bytes"] = sum(p.stat().st_size for _, p in full.files)
            began = time.monotonic()
            engine.restore_full(work / "dump", "restored", merge=False, shards=full.shards)
            figures["restore_full_s"] = round(time.monotonic() - began, 2)
        finally:
            influx.stop()
    for key, value in figures.items():
        print(f"{key:>16}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
