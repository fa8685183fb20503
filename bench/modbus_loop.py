"""Benchmark: the 1 s Modbus loop with three meters on one emulated 9600-baud RS485 line.

    .tools/venv/bin/python bench/modbus_loop.py [--cycles 600] [--cases healthy,silent,reference]
        [--no-load]

The real collector process reads an ORNO WE-515 (id 1), an SDM120 (id 2) and an SDM630 (id 3)
served by a pymodbus RTU server behind tests/support/rs485.py, which delays every character
11 bits at 9600 baud (a bare pty ignores the baud rate), and delivers to VictoriaMetrics.
Another process keeps the other core busy. Cases, run one after the other in one invocation on
the same line, each for `--cycles` one-second slots:
- healthy: the three meters;
- silent: the three meters and a fourth configured at an id nobody answers (9), an ORNO with
  its 0.6 s timeout: the live meters must keep every slot;
- reference: minimalmodbus (pinned in constraints.txt), one read_register / read_long /
  read_float per mapped register of the same three meters, once a second (or back to back
  when a round takes longer), in a child process of the same priority: the simple collector
  many home setups run. It only reads (no database, no health), which flatters it.
Reported per case: loop lateness p50/p99, slots filled per meter, CPU time per meter reading
and per register read, bus time per cycle next to the theoretical minimum for the same
requests, and the process's RSS. Collector figures come from its own homewatt_health samples,
read back from VictoriaMetrics, and from /proc via psutil.
"""

from __future__ import annotations

import argparse
import json
import os
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

from homewatt_collector.sources.modbus.config import ModbusSourceConfig  # noqa: E402
from homewatt_collector.sources.modbus.source import ModbusSource  # noqa: E402
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
LINE_NICE = -10  # the line emulator's and meter server's priority (as root)


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


LIVE_METERS = [
    {"name": "main", "model": "orno-we515", "device_id": 1},
    {"name": "pv", "model": "sdm120", "device_id": 2},
    {"name": "heatpump", "model": "sdm630", "device_id": 3},
]
SILENT_METER = {"name": "ghost", "model": "orno-we515", "device_id": 9}  # nobody answers id 9


@dataclass
class Bench:
    meters: MeterBus
    vm: VictoriaMetrics
    config: Path
    theory_s: float
    registers: int  # mapped registers of the live meters


def start_line(work: Path) -> MeterBus:
    devices = {
        1: {"holding": orno_with_gap_registers()},
        2: {"input": sdm120_registers()},
        3: {"input": sdm630_input_registers()},
    }
    return start_meter_bus(
        work, devices, emulate_timing=True, line_baud=BAUD, bits_per_char=BITS_PER_CHAR
    )


def set_up(work: Path, meters: MeterBus, silent: bool) -> Bench:
    """VictoriaMetrics and the collector's config for the meters on the line."""
    vm = VictoriaMetrics(work / "vm").start()
    source = {
        "kind": "modbus",
        "port": meters.port,
        "serial": {"baudrate": BAUD, "parity": "N"},
        "meters": LIVE_METERS + ([SILENT_METER] if silent else []),
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
    live = ModbusSource(
        ModbusSourceConfig.model_validate({**source, "meters": LIVE_METERS}), "bench"
    )
    registers = sum(len(m.template.registers) for m in live.meters)
    return Bench(meters, vm, config, live.min_bus_time_s(BITS_PER_CHAR), registers)


def figures_of(
    bench: Bench, window: tuple[int, int], cycles: int, measured: dict[str, Any]
) -> dict[str, Any]:
    """The figures from the collector's own health samples in VictoriaMetrics."""
    vm = bench.vm

    def values(metric: str) -> list[float]:
        return [v for ts, v, _ in vm.samples(metric) if window[0] <= ts <= window[1]]

    lateness = values("homewatt_health_cycle_lateness_ms")
    by_ts: dict[int, dict[str, float]] = {}
    for metric in ("cycle_lateness_ms", "read_duration_ms", "read_errors", "skipped_slots"):
        for ts, v, _ in vm.samples("homewatt_health_" + metric):
            if window[0] <= ts <= window[1]:
                by_ts.setdefault(ts, {})[metric] = v
    late = [
        f"{ts - window[0]}: late {c.get('cycle_lateness_ms', 0):.0f} ms, read"
        f" {c.get('read_duration_ms', 0):.0f} ms, {c.get('read_errors', 0):.0f} errors,"
        f" {c.get('skipped_slots', 0):.0f} skipped"
        for ts, c in sorted(by_ts.items())
        if c.get("cycle_lateness_ms", 0) > 100 or c.get("skipped_slots", 0) > 0
    ]
    read_ms = statistics.median(values("homewatt_health_read_duration_ms"))
    filled = {}
    for meter in [str(m["name"]) for m in LIVE_METERS]:
        samples = vm.samples("electricity_power_w", device=meter, channel="total")
        filled[meter] = len({ts for ts, _, _ in samples if window[0] <= ts <= window[1]})
    readings = cycles * len(filled)
    return {
        "case": measured["case"],
        "cycles": cycles,
        "other_core_busy": measured["loaded"],
        "lateness_ms_p50": round(percentile(lateness, 50), 2),
        "lateness_ms_p99": round(percentile(lateness, 99), 2),
        "lateness_ms_max": round(max(lateness), 2),
        "slots_filled_pct": {m: round(100 * n / cycles, 2) for m, n in filled.items()},
        "skipped_slots": sum(values("homewatt_health_skipped_slots")),
        "late_cycles (over 100 ms; first 10)": late[:10],
        "read_errors": sum(values("homewatt_health_read_errors")),
        "cpu_us_per_meter_reading": round(measured["cpu_s"] / readings * 1e6),
        "cpu_us_per_register_read": round(
            measured["cpu_s"] / (sum(filled.values()) / len(filled) * bench.registers) * 1e6, 1
        ),
        "cpu_pct_of_one_core": round(100 * measured["cpu_s"] / cycles, 2),
        "bus_time_ms_per_cycle_p50": round(read_ms, 1),
        "wire_busy_ms_per_cycle": round(1000 * measured["wire_s"] / cycles, 1),
        "theoretical_min_bus_ms_per_cycle": round(bench.theory_s * 1000, 1),
        "bus_time_over_theory_pct": round(100 * (read_ms / 1000 / bench.theory_s - 1), 1),
        "collector_rss_mb_max": round(max(measured["rss"]) / 2**20, 1),
        "uptime": measured["uptime"],
    }


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def sample_process(proc: psutil.Process, seconds: float) -> dict[str, Any]:
    """CPU seconds used by `proc` over `seconds`, and its RSS once a second."""
    rss: list[int] = []
    cpu_before = sum(proc.cpu_times()[:2])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rss.append(proc.memory_info().rss)
        time.sleep(1)
    return {"cpu_s": sum(proc.cpu_times()[:2]) - cpu_before, "rss": rss}


def run_collector(
    work: Path,
    line: MeterBus,
    cycles: int,
    *,
    silent: bool,
    loaded: bool,
    profile: Path | None = None,
) -> dict[str, Any]:
    bench = set_up(work, line, silent)
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
    try:
        # let it settle (imports, the first requests; a silent meter is backed off after its
        # 3rd timeout), then measure `cycles` slots
        wait_until(
            lambda: len(bench.vm.samples("homewatt_health_read_errors")) >= 5, 60, "first cycles"
        )
        start_ts = int(time.time()) + 1
        wire_before = line.line.stats.busy_s
        spy = None
        if profile is not None:  # py-spy samples the stacks without stopping the process
            spy = subprocess.Popen(
                [
                    str(REPO / ".tools/venv/bin/py-spy"),
                    "record",
                    "--nonblocking",
                    "--gil",
                    "--threads",
                    "--rate",
                    "1000",
                    "--format",
                    "raw",
                    "--duration",
                    str(cycles),
                    "--pid",
                    str(collector.pid),
                    "-o",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        measured = sample_process(proc, cycles + 1)
        if spy is not None:
            spy.wait(timeout=60)
        measured.update(
            case="silent" if silent else "healthy",
            wire_s=line.line.stats.busy_s - wire_before,
            loaded=loaded,
            uptime=uptime(),
        )
    finally:
        collector.stop()
    time.sleep(2)
    figures = figures_of(bench, (start_ts, start_ts + cycles - 1), cycles, measured)
    bench.vm.stop()
    return figures


def run_reference(work: Path, line: MeterBus, cycles: int, loaded: bool) -> dict[str, Any]:
    """minimalmodbus reading every mapped register of the live meters, one request each."""
    result = work / "reference.json"
    source = ModbusSourceConfig.model_validate(
        {
            "kind": "modbus",
            "port": line.port,
            "serial": {"baudrate": BAUD, "parity": "N"},
            "meters": LIVE_METERS,
        }
    )
    registers = [
        {
            "meter": meter.name,
            "device_id": meter.device_id,
            "address": spec.address,
            "function": spec.function,
            "type": spec.type,
            "word_order": spec.word_order or source.template_of(meter).word_order,
        }
        for meter in source.meters
        for spec in source.template_of(meter).registers
    ]
    (work / "registers.json").write_text(json.dumps(registers))
    reference = ServerProcess(
        "minimalmodbus",
        [
            sys.executable,
            str(Path(__file__).with_name("minimalmodbus_reference.py")),
            "--port",
            line.port,
            "--baud",
            str(BAUD),
            "--registers",
            str(work / "registers.json"),
            "--seconds",
            str(cycles),
            "--json",
            str(result),
        ],
        work / "reference.log",
    ).start()
    proc = psutil.Process(reference.pid)
    time.sleep(3)  # imports, the port opened
    measured = sample_process(proc, max(1, cycles - 5))  # RSS; CPU and reads: its own loop's
    uptime_now = uptime()
    assert reference.process is not None
    reference.process.wait(timeout=60)
    counts = json.loads(result.read_text())
    reads = counts["register_reads"]
    return {
        "case": "reference (minimalmodbus " + counts["version"] + ")",
        "cycles": cycles,
        "other_core_busy": loaded,
        "register_reads": reads,
        "register_read_errors": counts["errors"],
        "rounds_per_s": round(counts["rounds"] / counts["seconds"], 3),
        "slots_filled_pct": {
            m: round(min(100.0, 100 * counts["rounds"] / counts["seconds"]), 2)
            for m in counts["meters"]
        },
        "cpu_us_per_meter_reading": round(
            counts["cpu_s"] / (counts["rounds"] * len(counts["meters"])) * 1e6
        ),
        "cpu_us_per_register_read": round(counts["cpu_s"] / reads * 1e6, 1),
        "cpu_pct_of_one_core": round(100 * counts["cpu_s"] / counts["seconds"], 2),
        "collector_rss_mb_max": round(max(measured["rss"]) / 2**20, 1),
        "uptime": uptime_now,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=600)
    parser.add_argument(
        "--cases", default="healthy,silent,reference", help="comma-separated, run in this order"
    )
    parser.add_argument("--no-load", action="store_true", help="leave the other core idle")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--line-same-priority",
        action="store_true",
        help=f"leave the line emulator and meter server at the normal priority (default, as"
        f" root: nice {LINE_NICE}, so a busy machine does not make the meters answer late)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the collector of the healthy case with py-spy (collapsed stacks; only"
        " samples holding the GIL, so waiting in select() is left out)"
        " into this file; bench/profile_summary.py sums it up",
    )
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = set(cases) - {"healthy", "silent", "reference"}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}")

    work = Path(tempfile.mkdtemp(prefix="homewatt-bench-"))
    line = start_line(work)
    line_nice = None
    if not args.line_same_priority and os.geteuid() == 0:
        # The emulated meters and wire stand in for hardware with its own CPU: on a machine
        # busy with other work they must not answer late because they wait for a core.
        for pid in (line.server.pid, line.line.thread_id):
            if pid is not None:
                os.setpriority(os.PRIO_PROCESS, pid, LINE_NICE)
        line_nice = LINE_NICE
    burner = None if args.no_load else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    results = []
    try:
        for index, case in enumerate(cases):
            case_dir = work / f"{index}-{case}"
            case_dir.mkdir()
            if case == "reference":
                figures = run_reference(case_dir, line, args.cycles, not args.no_load)
            else:
                figures = run_collector(
                    case_dir,
                    line,
                    args.cycles,
                    silent=case == "silent",
                    loaded=not args.no_load,
                    profile=args.profile if case == "healthy" else None,
                )
            figures["line_emulator_nice"] = line_nice
            results.append(figures)
            for key, value in figures.items():
                print(f"{key:36} {value}")
            print(flush=True)
    finally:
        if burner is not None:
            burner.kill()
        line.stop()
    shutil.rmtree(work, ignore_errors=True)
    ours = next((r for r in results if r["case"] == "healthy"), None)
    ref = next((r for r in results if r["case"].startswith("reference")), None)
    if ours is not None and ref is not None:
        print(
            "reference / homewatt, CPU per register read:"
            f" {ref['cpu_us_per_register_read'] / ours['cpu_us_per_register_read']:.2f}x;"
            f" RSS {ref['collector_rss_mb_max']} MB / {ours['collector_rss_mb_max']} MB"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
