"""Decoding registers and planning requests: pure functions, checked by hand and by property."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homewatt_collector.counters import is_cumulative
from homewatt_collector.sources.modbus.decode import (
    DecodeError,
    check_plausible,
    decode_block,
    decode_value,
)
from homewatt_collector.sources.modbus.meters import RegisterSpec, SerialSettings, builtin_templates
from homewatt_collector.sources.modbus.plan import (
    Block,
    bits_per_char,
    min_bus_time_s,
    plan_blocks,
    split_contiguous,
)


def spec(**kw: object) -> RegisterSpec:
    base: dict[str, object] = {"field": "power_w", "address": 0, "type": "u16"}
    return RegisterSpec.model_validate(base | kw)


@pytest.mark.parametrize(
    ("registers", "kind", "order", "scale", "expected"),
    [
        ([23012], "u16", "big", 0.01, 230.12),
        ([0xFFFF], "s16", "big", 0.001, -0.001),
        ([150, 46143], "u32", "big", 0.01, 98765.43),  # high word first, both words
        ([46143, 150], "u32", "little", 0.01, 98765.43),  # low word first
        ([0xFFFF, 0xFFFE], "s32", "big", 1, -2.0),
        ([0x4366, 0x199A], "f32", "big", 1, 230.1),  # 230.1 as IEEE-754 float32
        ([0x3F80, 0x0000], "f32", "big", 1000, 1000.0),  # 1 kW -> W
    ],
)
def test_values_decode_by_type_word_order_and_scale(
    registers: list[int], kind: str, order: str, scale: float, expected: float
) -> None:
    assert decode_value(registers, spec(type=kind, scale=scale), order) == expected  # type: ignore[arg-type]


@given(st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_any_float32_decodes_to_its_seven_significant_digits(value: float) -> None:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    decoded = decode_value([high, low], spec(type="f32"), "big")
    assert decoded == float(f"{value:.7g}")


def test_impossible_values_are_refused_with_the_register_named() -> None:
    with pytest.raises(
        DecodeError, match=r"frequency_hz \(total\) at 0x0130 is 655.35, outside 0.0..100.0"
    ):
        check_plausible(spec(field="frequency_hz", address=0x130), 655.35)
    with pytest.raises(DecodeError, match="is nan"):
        check_plausible(spec(field="voltage_v"), math.nan)
    check_plausible(spec(field="voltage_v"), 0.0)  # a dead phase reads 0 V: plausible
    check_plausible(spec(field="something_new"), 1e12)  # unknown fields: finite is enough
    with pytest.raises(DecodeError):
        check_plausible(spec(field="something_new", max=10), 11)


def test_a_block_response_decodes_each_register_at_its_offset() -> None:
    a = spec(field="frequency_hz", address=10, type="u16", scale=0.01)
    b = spec(field="current_a", address=13, type="u32", scale=0.001)
    block = Block(3, 10, 5, (a, b))
    values, errors = decode_block(block, [5000, 9, 9, 0, 5123], "big")
    assert values == {a: 50.0, b: 5.123} and errors == []
    short, errors = decode_block(block, [5000], "big")
    assert short == {} and "1 registers returned, 5 asked for" in str(errors[0])


def test_the_orno_we515_is_read_in_three_requests_or_eight_without_spanning_gaps() -> None:
    template = builtin_templates().get("orno-we515")
    spanning = plan_blocks(template.registers, span_gaps=True, max_gap=10, max_block=100)
    assert [(b.start, b.count) for b in spanning] == [(0x130, 41), (0xA000, 10), (0xA01E, 10)]
    plain = plan_blocks(template.registers, span_gaps=False, max_gap=10, max_block=100)
    assert [(b.start, b.count) for b in plain] == [
        (0x130, 2),
        (0x139, 2),
        (0x140, 2),
        (0x148, 2),
        (0x150, 2),
        (0x158, 1),
        (0xA000, 10),
        (0xA01E, 10),
    ]
    assert split_contiguous(spanning[0]) == plain[:6]


def test_the_theoretical_bus_time_counts_frames_gaps_and_bits_per_character() -> None:
    # one read of 2 registers: 8 + (5 + 4) bytes and two 3.5-character gaps = 24 characters
    block = Block(3, 0, 2, ())
    assert min_bus_time_s([block], 9600, 11) == pytest.approx(24 * 11 / 9600)
    assert bits_per_char(SerialSettings(parity="E")) == 11  # start + 8 + parity + stop
    assert bits_per_char(SerialSettings(parity="N")) == 10


register_sets = st.lists(
    st.tuples(st.integers(0, 400), st.sampled_from(["u16", "u32"]), st.sampled_from([3, 4])),
    min_size=1,
    max_size=40,
    unique_by=lambda t: (t[0], t[2]),
)


@given(register_sets, st.booleans(), st.integers(0, 20), st.integers(2, 125))
def test_every_register_is_read_once_within_the_limits(
    raw: list[tuple[int, str, int]], span_gaps: bool, max_gap: int, max_block: int
) -> None:
    specs = []
    taken: set[tuple[int, int]] = set()
    for n, (address, kind, function) in enumerate(raw):
        size = 1 if kind == "u16" else 2
        cells = {(function, address + i) for i in range(size)}
        if cells & taken:
            continue  # overlapping registers are refused by the template model anyway
        taken |= cells
        specs.append(spec(field=f"f{n}_w", address=address, type=kind, function=function))
    blocks = plan_blocks(specs, span_gaps=span_gaps, max_gap=max_gap, max_block=max_block)
    covered = [s for b in blocks for s in b.registers]
    assert sorted(covered, key=id) == sorted(specs, key=id), "each register in exactly one request"
    for block in blocks:
        assert block.count <= max(max_block, *(s.size for s in block.registers))
        assert all(s.function == block.function for s in block.registers)
        assert all(
            block.start <= s.address and s.end <= block.start + block.count for s in block.registers
        )
        if not span_gaps:
            assert not block.spans_gaps


# -- values that are never values: all ones, NaN, +-Inf ----------------------------------------

ALL_ONES = {"u16": [0xFFFF], "s16": [0xFFFF], "u32": [0xFFFF, 0xFFFF], "s32": [0xFFFF, 0xFFFF]}
NOT_A_NUMBER = {
    "nan": [0x7FC0, 0x0000],
    "all-ones-nan": [0xFFFF, 0xFFFF],
    "+inf": [0x7F80, 0x0000],
    "-inf": [0xFF80, 0x0000],
}
CUMULATIVE_REGISTERS = [
    pytest.param(register, id=f"{name}:{register.field}:{register.channel}")
    for name in builtin_templates().names()
    for register in builtin_templates().get(name).registers
    if is_cumulative(register.field)
]


def test_every_template_maps_its_energy_counters_to_cumulative_fields() -> None:
    """The counter rule finds every counter: each shipped template has some, named as such."""
    for name in builtin_templates().names():
        fields = {s.field for s in builtin_templates().get(name).registers}
        counters = {f for f in fields if is_cumulative(f)}
        assert "energy_total_kwh" in counters or "energy_import_kwh" in counters, name
        assert counters == {f for f in fields if "energy" in f}, name


@pytest.mark.parametrize("register", CUMULATIVE_REGISTERS)
def test_every_energy_counter_of_every_template_refuses_all_ones_nan_and_inf(
    register: RegisterSpec,
) -> None:
    garbled = list(ALL_ONES[register.type]) if register.type != "f32" else NOT_A_NUMBER["+inf"]
    answers = [garbled] + ([v for k, v in NOT_A_NUMBER.items()] if register.type == "f32" else [])
    block = Block(register.function, register.address, register.size, (register,))
    for registers in answers:
        values, errors = decode_block(block, registers, "big")
        assert values == {}, f"{registers} stored as {values}"
        assert [e.field for e in errors] == [register.field]


@pytest.mark.parametrize("kind", sorted(ALL_ONES))
def test_all_ones_is_no_counter_value_in_any_register_type(kind: str) -> None:
    counter = spec(field="energy_total_kwh", type=kind, scale=0.01)
    block = Block(3, 0, counter.size, (counter,))
    values, [error] = decode_block(block, ALL_ONES[kind], "big")
    assert values == {}
    assert ("is all ones" in str(error)) is kind.startswith("u"), error
    assert "outside" in str(error) or kind.startswith("u"), "signed all ones is -1: below 0 kWh"


def test_the_issue_s_garbled_orno_total_is_refused_and_the_rest_of_its_block_is_kept() -> None:
    template = builtin_templates().get("orno-we515")
    [block] = [
        b
        for b in plan_blocks(template.registers, span_gaps=True, max_gap=10, max_block=100)
        if b.start == 0xA000
    ]
    registers = [0xFFFF, 0xFFFF, 0x0001, 0x1170, 0, 53456, 0, 0, 0, 0]  # total FFFF FFFF
    values, [error] = decode_block(block, registers, "big")
    assert str(error) == "energy_total_kwh (total) at 0xa000 is all ones (a garbled read)"
    assert {s.field: v for s, v in values.items()} == {
        "energy_t1_kwh": 700.0,
        "energy_t2_kwh": 534.56,
        "energy_t3_kwh": 0.0,
        "energy_t4_kwh": 0.0,
    }


@pytest.mark.parametrize(("kind", "registers", "value"), [("s16", [0xFFFF], -0.001)])
def test_a_signed_instantaneous_minus_one_is_still_a_value(
    kind: str, registers: list[int], value: float
) -> None:
    factor = spec(field="power_factor", type=kind, scale=0.001)
    values, errors = decode_block(Block(3, 0, 1, (factor,)), registers, "big")
    assert values == {factor: value} and errors == []
