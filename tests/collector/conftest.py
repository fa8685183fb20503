"""Helpers for the collector suites: configs on disk and the collector as a real process."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.meterbus import Devices, MeterBus, start_meter_bus
from tests.support.processes import ServerProcess, wait_until

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_BIN = Path(sys.executable).with_name("homewatt-collector")


def write_config(path: Path, sink_url: str, outbox_dir: Path, **overrides: Any) -> Path:
    """A test instance config: demo source, one anonymous sink with short timeouts/backoff."""
    config: dict[str, Any] = {
        "site": "test",
        "unit": "main",
        "interval_s": 1,
        "source": {"kind": "demo", "device": "sim"},
        "sinks": [
            {
                "name": "local",
                "url": sink_url,
                "org": "homewatt",
                "bucket": "homewatt",
                "anonymous": True,
                "timeout_s": 2,
                "retry_min_s": 0.2,
                "retry_max_s": 1,
                "flush_interval_s": 0.5,
            }
        ],
        "outbox": {"dir": str(outbox_dir), "checkpoint_interval_s": 1},
        "clock": {"wait_for_sync": False},
    }
    for key, value in overrides.items():
        if key != "source" and isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def query(outbox: Path, sql: str) -> int:
    """One number from the outbox of a running collector (read-only; 0 before it exists)."""
    if not outbox.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
        try:
            row = db.execute(sql).fetchone()
        except sqlite3.OperationalError:  # created a moment ago, its tables not yet
            return 0
    return int(row[0]) if row else 0


def pending(outbox: Path) -> int:
    return query(outbox, "SELECT count(*) FROM pending")


def wait_for_samples(outbox: Path, count: int, timeout: float = 30) -> None:
    def enough() -> bool:
        return query(outbox, "SELECT value FROM counters WHERE name = 'enqueued'") >= count

    wait_until(enough, timeout, f"{count} samples in the outbox")


@pytest.fixture
def collector_process(tmp_path: Path) -> Callable[..., ServerProcess]:
    """Start `homewatt-collector run -c CONFIG` as a real process (stopped by pid at teardown)."""
    started: list[ServerProcess] = []

    def start(config: Path, env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(
            "homewatt-collector",
            [str(COLLECTOR_BIN), "run", "-c", str(config), "--no-table"],
            tmp_path / f"collector-{len(started)}.log",
            env={**os.environ, **(env or {})},
        ).start()
        started.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in started:
        process.stop()


# -- Modbus: a meter server on an emulated RS485 line --------------------------------------------


@pytest.fixture
def meter_bus(tmp_path: Path) -> Iterator[Callable[..., MeterBus]]:
    """Start meters on a line: `meter_bus({1: {"holding": {...}}, 3: {"input": {...}}})`."""
    started: list[MeterBus] = []

    def start(devices: Devices, **options: Any) -> MeterBus:
        bus = start_meter_bus(tmp_path, devices, **options)
        started.append(bus)
        return bus

    yield start
    for bus in started:
        bus.stop()
