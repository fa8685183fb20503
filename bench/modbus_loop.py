"""Benchmark: the 1 s Modbus loop with three meters on one emulated 9600-baud RS485 line.

    .tools/venv/bin/python bench/modbus_loop.py [--cycles 600] [--no-load]

The real collector process reads an ORNO WE-515 (id 1), an SDM120 (id 2) and an SDM630 (id 3)
served by a pymodbus RTU server behind tests/support/rs485.py, which delays every character
11 bits at 9600 baud (a bare pty ignores the baud rate), and delivers to VictoriaMetrics.
Another process keeps the other core busy. Reported: loop lateness p50/p99, slots filled,
CPU time per meter reading, bus time per cycle next to the theoretical minimum for the same
requests, and the collector's RSS. Figures come from the collector's own homewatt_health
samples, read back from VictoriaMetrics, and from /proc via psutil.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from homewatt_collector.sources.modbus import ModbusSource, ModbusSourceConfig  # noqa: E402
from tests.collector.meters_data import (  # noqa: E402
    f32_words,
    orno_with_gap_registers,
    sdm630_input_registers,
)
from tests.support.meterbus import MeterBus, start_meter_bus  # noqa: E402
from tests.support.processes import ServerProcess, wait_until  # noqa: E402
from tests.support.victoria import VictoriaMetrics  # noqa: E402

BAUD = 9600
BITS_PER_CHAR = 11  # an 8E1 line, as the ORNO runs; the ptys themselves run 8N1


def sdm120_registers() -> dict[int, int]:
    registers = dict.fromkeys(range(0x0000, 0x0020), 0)
    registers.update(dict.fromkeys(range(0x0046, 0x0050), 0))
    registers.update(dict.fromkeys(range(0x0156, 0x015A), 0))
    for address, value in {
        0x00: 229.9,
        0x06: 3.1,
        0x0C: 690.0,
        0x46: 50.01,
        0x48: 812.25,
        0x156: 830.5,
    }.items():
        registers[address], registers[address + 1] = f32_words(value)
    return registers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Bench:
    meters: MeterBus
    vm: VictoriaMetrics
    config: Path
    theory_s: float


def set_up(work: Path) -> Bench:
    """Three meters on the line, VictoriaMetrics, and the collector's config."""
    devices = {
        1: {"holding": orno_with_gap_registers()},
        2: {"input": sdm120_registers()},
        3: {"input": sdm630_input_registers()},
    }
    meters = start_meter_bus(
        work, devices, emulate_timing=True, line_baud=BAUD, bits_per_char=BITS_PER_CHAR
    )
    vm = VictoriaMetrics(work / "vm").start()
    source = {
        "kind": "modbus",
        "port": meters.port,
        "serial": {"baudrate": BAUD, "parity": "N"},
        "meters": [
            {"name": "main", "model": "orno-we515", "device_id": 1},
            {"name": "pv", "model": "sdm120", "device_id": 2},
            {"name": "heatpump", "model": "sdm630", "device_id": 3},
        ],
    }
    config = work / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "bench",
                "unit": "bench",
                "source": source,
                "sinks": [{"url": vm.url, "org": "o", "bucket": "b", "anonymous": True}],
                "outbox": {"dir": str(work / "state")},
                "clock": {"wait_for_sync": False},
            }
        )
    )
    modbus = ModbusSource(ModbusSourceConfig.model_validate(source), "bench")
    return Bench(meters, vm, config, modbus.min_bus_time_s(BITS_PER_CHAR))


def figures_of(
    bench: Bench, window: tuple[int, int], cycles: int, measured: dict[str, Any]
) -> dict[str, Any]:
    """The figures from the collector's own health samples in VictoriaMetrics."""
    vm = bench.vm

    def values(metric: str) -> list[float]:
        return [v for ts, v, _ in vm.samples(metric) if window[0] <= ts <= window[1]]

    lateness = values("homewatt_health_cycle_lateness_ms")
    read_ms = statistics.median(values("homewatt_health_read_duration_ms"))
    filled = {}
    for meter in ("main", "pv", "heatpump"):
        samples = vm.samples("electricity_power_w", device=meter, channel="total")
        filled[meter] = len({ts for ts, _, _ in samples if window[0] <= ts <= window[1]})
    readings = cycles * len(filled)
    return {
        "cycles": cycles,
        "other_core_busy": measured["loaded"],
        "lateness_ms_p50": round(percentile(lateness, 50), 2),
        "lateness_ms_p99": round(percentile(lateness, 99), 2),
        "lateness_ms_max": round(max(lateness), 2),
        "slots_filled_pct": {m: round(100 * n / cycles, 2) for m, n in filled.items()},
        "skipped_slots": sum(values("homewatt_health_skipped_slots")),
        "read_errors": sum(values("homewatt_health_read_errors")),
        "cpu_us_per_meter_reading": round(measured["cpu_s"] / readings * 1e6),
        "cpu_pct_of_one_core": round(100 * measured["cpu_s"] / cycles, 2),
        "bus_time_ms_per_cycle_p50": round(read_ms, 1),
        "wire_busy_ms_per_cycle": round(1000 * measured["wire_s"] / cycles, 1),
        "theoretical_min_bus_ms_per_cycle": round(bench.theory_s * 1000, 1),
        "bus_time_over_theory_pct": round(100 * (read_ms / 1000 / bench.theory_s - 1), 1),
        "collector_rss_mb_max": round(max(measured["rss"]) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=600)
    parser.add_argument("--no-load", action="store_true", help="leave the other core idle")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="homewatt-bench-"))
    bench = set_up(work)
    burner = None if args.no_load else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    collector = ServerProcess(
        "collector",
        [
            str(REPO / ".tools/venv/bin/homewatt-collector"),
            "run",
            "-c",
            str(bench.config),
            "--no-table",
        ],
        bench.config.with_name("collector.log"),
    ).start()
    proc = psutil.Process(collector.pid)
    rss: list[int] = []
    try:
        # let it settle (imports, the first requests), then measure `cycles` slots
        wait_until(
            lambda: len(bench.vm.samples("homewatt_health_read_errors")) >= 5, 60, "first cycles"
        )
        start_ts = int(time.time()) + 1
        cpu_before = sum(proc.cpu_times()[:2])
        wire_before = bench.meters.line.stats.busy_s
        deadline = time.monotonic() + args.cycles + 1
        while time.monotonic() < deadline:
            rss.append(proc.memory_info().rss)
            time.sleep(1)
        measured = {
            "cpu_s": sum(proc.cpu_times()[:2]) - cpu_before,
            "wire_s": bench.meters.line.stats.busy_s - wire_before,
            "rss": rss,
            "loaded": not args.no_load,
        }
    finally:
        collector.stop()
        if burner is not None:
            burner.kill()
        bench.meters.stop()
    time.sleep(2)
    figures = figures_of(bench, (start_ts, start_ts + args.cycles - 1), args.cycles, measured)
    bench.vm.stop()
    shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:36} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
