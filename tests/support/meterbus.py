"""Meters on an emulated RS485 line: the line (rs485.py) and a pymodbus server behind it."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from pymodbus.client import ModbusSerialClient

from tests.support.processes import ServerProcess
from tests.support.rs485 import RS485Line

REPO = Path(__file__).resolve().parents[2]
# The readiness probe expects "no response" until the server is up: not worth a log line.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

# device id -> {"holding"|"input": {address: raw uint16}}
Devices = dict[int, dict[str, dict[int, int]]]
# device id -> {"holding"|"input": {address: [registers answered by the 1st read, the 2nd...]}}
Sequences = dict[int, dict[str, dict[int, list[list[int]]]]]


@dataclass
class MeterBus:
    line: RS485Line
    server: ServerProcess

    @property
    def port(self) -> str:
        """What the collector opens (a stable path, like /dev/serial/by-id/...)."""
        return str(self.line.client_path)

    def stop(self) -> None:
        self.server.stop()
        self.line.stop()


def _answers(port: Path, device_id: int, function: int, address: int) -> bool:
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


def start_meter_bus(
    workdir: Path,
    devices: Devices,
    *,
    emulate_timing: bool = False,
    line_baud: int = 9600,
    bits_per_char: int = 11,
    sequences: Sequences | None = None,
) -> MeterBus:
    """Start the line and the meter server; return once the first meter answers.
    `sequences` give registers whose answer changes from read to read (meter_server.py); the
    readiness probe reads the first register of `devices`, so keep sequences off it."""
    line = RS485Line(
        workdir,
        line_baud=line_baud,
        bits_per_char=bits_per_char,
        emulate_timing=emulate_timing,
        present_ids=set(devices),
    ).start()
    args = []
    for device_id, tables in devices.items():
        spec = workdir / f"device-{device_id}.json"
        document: dict[str, dict[str, object]] = {
            k: {str(a): v for a, v in t.items()} for k, t in tables.items()
        }
        for table, by_address in (sequences or {}).get(device_id, {}).items():
            document[f"{table}_sequence"] = {str(a): v for a, v in by_address.items()}
        spec.write_text(json.dumps(document))
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
        workdir / "meter-server.log",
        cwd=REPO,
    ).start()
    bus = MeterBus(line, server)
    first_id, tables = next(iter(devices.items()))
    table = "holding" if "holding" in tables else "input"
    address = next(iter(tables[table]))
    try:
        server.wait_ready(
            lambda: _answers(line.client_path, first_id, 3 if table == "holding" else 4, address),
            timeout=30,
        )
    except BaseException:
        bus.stop()
        raise
    return bus
