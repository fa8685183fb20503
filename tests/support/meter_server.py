"""A pymodbus RTU server playing one or more meters on a serial port (run as its own process).

    python -m tests.support.meter_server --port /path/to/pty --baudrate 9600 \
        --device 1=/path/orno.json --device 3=/path/sdm630.json

Each device file is JSON: {"holding": {"<address>": <raw uint16>, ...}, "input": {...}}.
Addresses not listed are unmapped: reading them answers exception 2 (illegal data address), as
a meter does. Device ids not listed stay silent, as on a real bus.

A value that changes from read to read (a counter that counts, a register that answers
FFFF FFFF once) is a sequence: {"holding_sequence": {"<address>": [[<raw uint16>, ...], ...]}}
(likewise "input_sequence"). Each read request that covers the address answers with the next
entry, written from that address on; the last entry then stays.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Awaitable, Callable
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


Sequences = dict[int, dict[int, list[list[int]]]]  # function code -> address -> entries


def sequence_action(sequences: Sequences) -> Callable[..., Awaitable[None]]:
    """A SimDevice action: before each read, step the sequences the request covers."""

    async def action(  # noqa: PLR0917 (pymodbus passes these six positionally)
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | None,
    ) -> None:
        if set_values is not None:
            return
        for where, entries in sequences.get(function_code, {}).items():
            if address <= where < address + count:
                entry = entries.pop(0) if len(entries) > 1 else entries[0]
                offset = where - start_address
                registers[offset : offset + len(entry)] = entry

    return action


def load_device(device_id: int, path: Path) -> SimDevice:
    spec = json.loads(path.read_text())
    holding = {int(a): int(v) for a, v in spec.get("holding", {}).items()}
    inputs = {int(a): int(v) for a, v in spec.get("input", {}).items()}
    sequences: Sequences = {
        function: {
            int(a): [list(e) for e in v] for a, v in spec.get(f"{table}_sequence", {}).items()
        }
        for function, table in ((3, "holding"), (4, "input"))
    }
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
        action=sequence_action(sequences) if any(sequences.values()) else None,
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
