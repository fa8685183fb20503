"""From raw register values to SI values (pure), and what counts as an impossible value:
outside the field's plausible range, NaN or infinite, or an unsigned register that is all ones
(FFFF FFFF: what a garbled answer with a valid CRC gives, 42,949,672.95 kWh at scale 0.01)."""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence

from homewatt_collector.sources.modbus.meters import RegisterSpec, WordOrder
from homewatt_collector.sources.modbus.plan import Block

# Registers are 16-bit big-endian words (Modbus application protocol v1.1b3, 4.2); a 32-bit
# value is two words, high word first ("big") or low word first ("little"). The words are
# packed big-endian and read back as the type: what pymodbus's convert_from_registers does,
# without its per-call generality (a fifth of the cycle's decoding time).
_WORDS = {1: struct.Struct(">H"), 2: struct.Struct(">HH")}
_TYPES = {
    "u16": struct.Struct(">H"),
    "s16": struct.Struct(">h"),
    "u32": struct.Struct(">I"),
    "s32": struct.Struct(">i"),
    "f32": struct.Struct(">f"),
}

# Plausible ranges by field name prefix (a template may narrow or widen them per register).
# A value outside is a garbled or misread register, counted as a read error and not stored.
_PLAUSIBLE: tuple[tuple[str, float, float], ...] = (
    ("voltage_v", 0.0, 1000.0),
    ("frequency_hz", 0.0, 100.0),
    ("current_a", -10_000.0, 10_000.0),
    ("power_factor", -1.001, 1.001),
    ("phase_angle_deg", -360.0, 360.0),
    ("power_w", -1e6, 1e6),
    ("reactive_power_var", -1e6, 1e6),
    ("apparent_power_va", -1e6, 1e6),
    ("energy_", 0.0, 1e9),
    ("reactive_energy_", 0.0, 1e9),
)


class DecodeError(ValueError):
    """A register value that cannot be right."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@functools.lru_cache(maxsize=256)
def _decimals(scale: float) -> int:
    """Decimal places a fixed-point scale gives (0.01 -> 2); 0 for scales >= 1."""
    return max(0, -math.floor(math.log10(abs(scale)) + 1e-9)) if abs(scale) < 1 else 0


def decode_value(registers: Sequence[int], spec: RegisterSpec, word_order: WordOrder) -> float:
    """The register(s) of `spec` as a value in the field's unit, rounded to what the meter sent."""
    words = list(registers)
    if len(words) == 2 and (spec.word_order or word_order) == "little":
        words.reverse()
    (raw,) = _TYPES[spec.type].unpack(_WORDS[len(words)].pack(*words))
    if spec.type == "f32":
        # a float32 carries about 7 significant digits; more would be noise from widening
        value = float(f"{float(raw) * spec.scale:.7g}")
    else:
        value = round(raw * spec.scale, _decimals(spec.scale))
    return value


def resolution(spec: RegisterSpec, value: float) -> float:
    """One step of the value as decoded: the scale for integer registers; for float32 the larger
    of the float's spacing at `value` and the 7-significant-digit rounding of decode_value."""
    if spec.type != "f32":
        return abs(spec.scale)
    if value == 0 or not math.isfinite(value):
        return 0.0
    float32_step = math.ulp(value) * 2.0**29  # float32 has 29 fewer mantissa bits
    rounding = 10.0 ** (math.floor(math.log10(abs(value))) - 6)
    return max(abs(float32_step), rounding)


@functools.lru_cache(maxsize=1024)
def _field_range(field: str) -> tuple[float, float]:
    return next(
        ((lo, hi) for prefix, lo, hi in _PLAUSIBLE if field.startswith(prefix)),
        (-math.inf, math.inf),
    )


def plausible_range(spec: RegisterSpec) -> tuple[float, float]:
    low, high = _field_range(spec.field)
    return (spec.min if spec.min is not None else low, spec.max if spec.max is not None else high)


def check_plausible(spec: RegisterSpec, value: float) -> None:
    if not math.isfinite(value):
        where = f"{spec.field} ({spec.channel}) at {spec.address:#06x}"
        raise DecodeError(f"{where} is {value}", spec.field)
    low, high = plausible_range(spec)
    if not low <= value <= high:
        where = f"{spec.field} ({spec.channel}) at {spec.address:#06x}"
        raise DecodeError(f"{where} is {value}, outside {low}..{high}", spec.field)


def decode_block(
    block: Block, registers: Sequence[int], word_order: WordOrder
) -> tuple[dict[RegisterSpec, float], list[DecodeError]]:
    """Every register of a block response: the plausible values and the errors."""
    if len(registers) < block.count:
        short = DecodeError(
            f"{len(registers)} registers returned, {block.count} asked for", "block"
        )
        return {}, [short]
    values: dict[RegisterSpec, float] = {}
    errors: list[DecodeError] = []
    for spec in block.registers:
        offset = spec.address - block.start
        words = registers[offset : offset + spec.size]
        if spec.type in ("u16", "u32") and all(word == 0xFFFF for word in words):
            where = f"{spec.field} ({spec.channel}) at {spec.address:#06x}"
            errors.append(DecodeError(f"{where} is all ones (a garbled read)", spec.field))
            continue
        try:
            value = decode_value(words, spec, word_order)
            check_plausible(spec, value)
        except DecodeError as exc:
            errors.append(exc)
            continue
        values[spec] = value
    return values, errors
