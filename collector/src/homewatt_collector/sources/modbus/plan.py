"""Which registers to read in which requests, and what the bus time of that is at best (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from homewatt_collector.sources.modbus.meters import RegisterSpec, SerialSettings

# RTU framing: a read request is 8 bytes (id, function, address, count, CRC); its response is
# 5 + 2N bytes (id, function, byte count, N registers, CRC); frames are separated by at least
# 3.5 characters of silence, one gap before the request and one before the response.
REQUEST_BYTES = 8
RESPONSE_OVERHEAD_BYTES = 5
GAP_CHARS = 3.5


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers from `start` with one function code."""

    function: int
    start: int
    count: int
    registers: tuple[RegisterSpec, ...]

    @property
    def spans_gaps(self) -> bool:
        return sum(spec.size for spec in self.registers) < self.count


def plan_blocks(
    specs: Iterable[RegisterSpec], *, span_gaps: bool, max_gap: int, max_block: int
) -> list[Block]:
    """Group registers into as few requests as the meter allows.

    Registers of one function code that follow each other go into one request; with
    `span_gaps`, a gap of up to `max_gap` unmapped registers is read through too (cheaper than
    a second request's ~20 characters of overhead when the gap is small).
    """
    ordered = sorted(specs, key=lambda s: (s.function, s.address))
    blocks: list[Block] = []
    current: list[RegisterSpec] = []
    allowed_gap = max_gap if span_gaps else 0

    def close() -> None:
        if current:
            start = current[0].address
            end = max(s.end for s in current)
            blocks.append(Block(current[0].function, start, end - start, tuple(current)))

    for spec in ordered:
        if current:
            start, end = current[0].address, max(s.end for s in current)
            same_function = spec.function == current[0].function
            if (
                same_function
                and spec.address - end <= allowed_gap
                and spec.end - start <= max_block
            ):
                current.append(spec)
                continue
            close()
        current = [spec]
    close()
    return blocks


def split_contiguous(block: Block) -> list[Block]:
    """The same registers without reading through gaps (for a meter that refuses it)."""
    return plan_blocks(block.registers, span_gaps=False, max_gap=0, max_block=block.count)


def bits_per_char(serial: SerialSettings) -> int:
    return 1 + serial.bytesize + (0 if serial.parity == "N" else 1) + serial.stopbits


def min_bus_time_s(blocks: Sequence[Block], baudrate: int, bits: int) -> float:
    """The least time the line needs for these requests and responses at `baudrate`."""
    chars = sum(
        REQUEST_BYTES + RESPONSE_OVERHEAD_BYTES + 2 * b.count + 2 * GAP_CHARS for b in blocks
    )
    return chars * bits / baudrate
