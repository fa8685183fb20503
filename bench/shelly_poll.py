"""Benchmark: one shelly instance polling 20 plugs on loopback every second.

    .tools/venv/bin/python bench/shelly_poll.py [--cycles 600]

Twenty Gen2 plugs (tests/support/shelly_devices.py, Digest auth with SHA-256 enforced) in
another process on 127.0.2.x: 18 healthy, one answering after 2 s (beyond its 1 s timeout),
one unreachable (its SYNs dropped). The shelly source's own device threads poll them in this
process, as in the collector; every poll result is taken from the source's queue. Reported,
for the 18 healthy plugs: slots filled (target at least 99.9 %), poll lateness p50/p99/max
(the poll's start after its slot's deadline; target p99 under 20 ms); and the CPU time of this
process per poll (user + system, over every poll including the failing ones), the two sick
plugs' attempts (backoff) and the RSS.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homewatt_collector.sources.shelly.config import ShellySourceConfig  # noqa: E402
from homewatt_collector.sources.shelly.poller import PollResult  # noqa: E402
from homewatt_collector.sources.shelly.source import ShellySource  # noqa: E402
from tests.support.processes import unreachable_address  # noqa: E402

NETWORK = "127.0.2"
PASSWORD = "bench-password"  # noqa: S105 (a test device's, on loopback)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((f"{NETWORK}.2", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=600, help="seconds to run (default 600)")
    parser.add_argument("--verbose", action="store_true", help="list the ten latest polls")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.shelly_devices",
            "--plugs",
            "19",
            "--slow",
            "1",
            "--port",
            str(port),
            "--password",
            PASSWORD,
            "--network",
            NETWORK,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # a poll cut short by a timeout breaks a pipe over there
        text=True,
    )
    try:
        assert server.stdout is not None
        addresses: list[str] = json.loads(server.stdout.readline())
        with unreachable_address(f"{NETWORK}.250") as dead:
            return run(addresses, dead, args.cycles, args.verbose, args.json)
    finally:
        server.terminate()
        server.wait(10)


def run(
    addresses: list[str], dead: str, cycles: int, verbose: bool = False, out: Path | None = None
) -> int:
    devices = [
        {"name": f"plug{i:02d}", "host": a, "interval_s": 1, "timeout_s": 1.0}
        for i, a in enumerate(addresses)
    ]
    devices.append({"name": "unreachable", "host": dead, "interval_s": 1, "timeout_s": 1.0})
    config = ShellySourceConfig.model_validate({"kind": "shelly", "devices": devices})
    names = [d["name"] for d in devices]
    slow, sick = names[0], {names[0], "unreachable"}
    source = ShellySource(config, "bench", dict.fromkeys(names, PASSWORD))
    process = psutil.Process()
    results: list[PollResult] = []
    print(f"polling {len(names)} plugs every second for {cycles} s ({slow} answers after 2 s)")
    source.open()
    time.sleep(2)  # first contact (/shelly, Shelly.GetStatus, the Digest challenge)
    while not source.results.empty():
        source.results.get_nowait()
    cpu_before = process.cpu_times()
    started = time.time()
    time.sleep(cycles)
    source.close()
    cpu_after = process.cpu_times()
    while True:
        try:
            results.append(source.results.get_nowait())
        except queue.Empty:
            break
    first_slot, last_slot = int(started) + 1, int(started) + cycles - 1
    window = [r for r in results if first_slot <= r.ts <= last_slot]
    healthy = [r for r in window if r.device not in sick]
    expected = (last_slot - first_slot + 1) * (len(names) - len(sick))
    filled = len({(r.device, r.ts) for r in healthy if r.ok})
    lateness_ms = [r.lateness_s * 1000 for r in healthy]
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    polls = len(results)
    failed = {name: sum(1 for r in window if r.device == name) for name in sorted(sick)}
    report = {
        "slots_expected": expected,
        "slots_filled": filled,
        "slots_filled_pct": round(100 * filled / expected, 3),
        "lateness_ms_p50": round(statistics.median(lateness_ms), 2),
        "lateness_ms_p99": round(percentile(lateness_ms, 0.99), 2),
        "lateness_ms_max": round(max(lateness_ms), 2),
        "polls": polls,
        "cpu_ms_per_poll": round(cpu_s * 1000 / polls, 3),
        "cpu_pct_of_one_core": round(100 * cpu_s / cycles, 2),
        "sick_plug_attempts": failed,
        "rss_mb": round(process.memory_info().rss / 2**20, 1),
        "load_average_1m": round(psutil.getloadavg()[0], 2),
    }
    print(json.dumps(report, indent=1))
    if out is not None:
        out.write_text(json.dumps(report, indent=1) + "\n")
    if verbose:
        worst = sorted(healthy, key=lambda r: -r.lateness_s)[:10]
        for r in worst:
            print(f"late: {r.device} slot {r.ts - first_slot} {r.lateness_s * 1000:.1f} ms")
    ok = report["slots_filled_pct"] >= 99.9 and report["lateness_ms_p99"] < 20
    print("PASS" if ok else "FAIL", "(targets: >= 99.9 % of slots, p99 lateness < 20 ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
