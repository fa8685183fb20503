"""The reference for bench/modbus_loop.py: a simple one-request-per-register collector.

    python bench/minimalmodbus_reference.py --port P --registers FILE --seconds N --json OUT

What many home setups run: minimalmodbus (pinned in constraints.txt), one `read_register`
(16-bit), `read_long` (32-bit integers) or `read_float` (float32) per mapped register, every
meter once a second, or back to back when a round takes longer than that. It only reads: no
database, no health points. `--registers` is a JSON list of {"meter", "device_id", "address",
"function", "type", "word_order"} written by the benchmark from the same meter templates the
collector uses; this script imports nothing of homewatt, so its RSS is minimalmodbus's own.
Writes {"version", "seconds", "cpu_s" (user + system CPU of the read loop, without start-up),
"rounds", "register_reads", "errors", "meters"} to `--json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import minimalmodbus
import serial


def read_one(instrument: minimalmodbus.Instrument, register: dict[str, object]) -> float:
    address = int(str(register["address"]))
    function = int(str(register["function"]))
    kind = str(register["type"])
    little = register["word_order"] == "little"
    if kind in ("u16", "s16"):
        return float(
            instrument.read_register(address, 0, functioncode=function, signed=kind == "s16")
        )
    byteorder = minimalmodbus.BYTEORDER_LITTLE_SWAP if little else minimalmodbus.BYTEORDER_BIG
    if kind == "f32":
        return float(instrument.read_float(address, function, 2, byteorder))
    return float(instrument.read_long(address, function, kind == "s32", byteorder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--registers", type=Path, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    registers = json.loads(args.registers.read_text())
    instruments: dict[int, minimalmodbus.Instrument] = {}
    for register in registers:
        device_id = int(register["device_id"])
        if device_id not in instruments:
            instrument = minimalmodbus.Instrument(args.port, device_id)
            instrument.serial.baudrate = args.baud
            instrument.serial.parity = serial.PARITY_NONE
            instrument.serial.timeout = args.timeout
            instruments[device_id] = instrument
    rounds = reads = errors = 0
    cpu_before = time.process_time()
    started = time.monotonic()
    end = started + args.seconds
    next_round = started
    while time.monotonic() < end:
        for register in registers:
            try:
                read_one(instruments[int(register["device_id"])], register)
                reads += 1
            except (OSError, ValueError, minimalmodbus.ModbusException):
                errors += 1
        rounds += 1
        next_round += 1.0
        pause = next_round - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            next_round = time.monotonic()
    seconds = time.monotonic() - started
    cpu_s = time.process_time() - cpu_before
    meters = sorted({str(r["meter"]) for r in registers})
    args.json.write_text(
        json.dumps(
            {
                "version": minimalmodbus.__version__,
                "seconds": seconds,
                "cpu_s": cpu_s,
                "rounds": rounds,
                "register_reads": reads,
                "errors": errors,
                "meters": meters,
            }
        )
    )


if __name__ == "__main__":
    main()
