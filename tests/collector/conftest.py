"""Helpers for the collector suites: configs on disk and the collector as a real process."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import ServerProcess
from tests.support.rs485 import RS485Line

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


@dataclass
class MeterBus:
    line: RS485Line
    server: ServerProcess

    @property
    def port(self) -> str:
        return str(self.line.client_path)


def _server_answers(port: Path, device_id: int, function: int, address: int) -> bool:
    from pymodbus.client import ModbusSerialClient  # noqa: PLC0415 (test helper only)

    client = ModbusSerialClient(str(port), baudrate=9600, timeout=0.3, retries=0)
    try:
        if not client.connect():
            return False
        read = client.read_holding_registers if function == 3 else client.read_input_registers
        return not read(address, count=1, device_id=device_id).isError()
    except Exception:  # noqa: BLE001 (not up yet: any failure means "try again")
        return False
    finally:
        client.close()


@pytest.fixture
def meter_bus(tmp_path: Path) -> Iterator[Callable[..., MeterBus]]:
    """Start meters on a line: `meter_bus({1: {"holding": {...}}, 3: {"input": {...}}})`."""
    started: list[MeterBus] = []

    def start(
        devices: dict[int, dict[str, dict[int, int]]],
        emulate_timing: bool = False,
        line_baud: int = 9600,
    ) -> MeterBus:
        line = RS485Line(
            tmp_path, line_baud=line_baud, emulate_timing=emulate_timing, present_ids=set(devices)
        ).start()
        args = []
        for device_id, tables in devices.items():
            spec = tmp_path / f"device-{device_id}.json"
            spec.write_text(
                json.dumps({k: {str(a): v for a, v in t.items()} for k, t in tables.items()})
            )
            args += ["--device", f"{device_id}={spec}"]
        server = ServerProcess(
            "meter-server",
            [
                sys.executable,
                "-m",
                "tests.support.meter_server",
                "--port",
                str(line.meter_path),
                "--baudrate",
                str(line_baud),
                *args,
            ],
            tmp_path / "meter-server.log",
            cwd=REPO,
        ).start()
        bus = MeterBus(line, server)
        started.append(bus)
        first_id, tables = next(iter(devices.items()))
        table = "holding" if "holding" in tables else "input"
        address = next(iter(tables[table]))
        server.wait_ready(
            lambda: _server_answers(
                line.client_path, first_id, 3 if table == "holding" else 4, address
            ),
            timeout=30,
        )
        return bus

    yield start
    for bus in started:
        bus.server.stop()
        bus.line.stop()
