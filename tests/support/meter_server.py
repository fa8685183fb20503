"""A pymodbus RTU server playing one or more meters on a serial port (run as its own process).

    python -m tests.support.meter_server --port /path/to/pty --baudrate 9600 \
        --device 1=/path/orno.json --device 3=/path/sdm630.json

Each device file is JSON: {"holding": {"<address>": <raw uint16>, ...}, "input": {...}}.
Addresses not listed are unmapped: reading them answers exception 2 (illegal data address), as
a meter does. Device ids not listed stay silent, as on a real bus.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pymodbus.server import StartSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice


def runs(registers: dict[int, int]) -> list[SimData]:
    """Contiguous runs of registers as SimData blocks."""
    blocks: list[SimData] = []
    run: list[int] = []
    start = -1
    for address in sorted(registers):
        if run and address != start + len(run):
            blocks.append(SimData(start, values=run, datatype=DataType.REGISTERS))
            run = []
        if not run:
            start = address
        run.append(registers[address])
    if run:
        blocks.append(SimData(start, values=run, datatype=DataType.REGISTERS))
    return blocks


def load_device(device_id: int, path: Path) -> SimDevice:
    spec = json.loads(path.read_text())
    holding = {int(a): int(v) for a, v in spec.get("holding", {}).items()}
    inputs = {int(a): int(v) for a, v in spec.get("input", {}).items()}
    # A placeholder register keeps each table valid when a meter has none of that kind.
    unused = [SimData(65000, values=[0], datatype=DataType.REGISTERS)]
    return SimDevice(
        device_id,
        simdata=(
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            runs(holding) or unused,
            runs(inputs) or unused,
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", required=True)
    parser.add_argument("--baudrate", type=int, default=9600)
    parser.add_argument("--device", action="append", required=True, help="ID=FILE.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    devices = []
    for item in args.device:
        device_id, path = item.split("=", 1)
        devices.append(load_device(int(device_id), Path(path)))
    StartSerialServer(
        devices,
        port=args.port,
        baudrate=args.baudrate,
        parity="N",  # a pty rejects even parity intermittently: the bus tests run 8N1
        ignore_missing_devices=True,  # ids nobody answers stay silent, as on a real bus
        reconnect_delay=0.5,
    )


if __name__ == "__main__":
    main()
