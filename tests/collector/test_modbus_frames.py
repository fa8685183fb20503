"""The RTU frames of our FC03/FC04 exchange (sources/modbus/bus.py): requests byte for byte as
pymodbus's own framer builds them, answers found in what a line delivers (split, after noise,
after a broken frame) and checked (device id, function, byte count, CRC)."""

from __future__ import annotations

import struct

import pytest
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

from homewatt_collector.sources.modbus.bus import crc16, find_response, read_request


def answer(device_id: int, function: int, registers: list[int]) -> bytes:
    body = struct.pack(
        f">BBB{len(registers)}H", device_id, function, 2 * len(registers), *registers
    )
    return body + crc16(body)


@pytest.mark.parametrize(
    ("function", "request_class"),
    [(3, ReadHoldingRegistersRequest), (4, ReadInputRegistersRequest)],
)
@pytest.mark.parametrize(
    ("device_id", "start", "count"), [(1, 0, 10), (247, 0x0156, 2), (9, 0xFFFE, 1)]
)
def test_a_request_is_the_frame_pymodbus_builds(
    function: int, request_class: type, device_id: int, start: int, count: int
) -> None:
    framer = FramerRTU(DecodePDU(False))
    expected = framer.buildFrame(request_class(address=start, count=count, dev_id=device_id))
    assert read_request(device_id, function, start, count) == expected


def bitwise_crc(frame: bytes) -> bytes:
    """The CRC as the Modbus over serial line specification (v1.02, 6.2.2) describes it, bit by
    bit: start at 0xFFFF, XOR each byte in, shift right 8 times, XOR 0xA001 when a 1 falls out;
    sent low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


@pytest.mark.parametrize("frame", [b"\x01\x03\x00\x00\x00\x0a", bytes(range(256)), b""])
def test_the_crc_is_the_specifications(frame: bytes) -> None:
    assert crc16(frame) == bitwise_crc(frame)


def test_an_answer_is_found_only_once_whole() -> None:
    frame = answer(3, 4, [0x4366, 0xE666, 0x0001])
    for cut in range(len(frame)):
        assert find_response(frame[:cut], 3, 4, 3) is None, cut
    assert find_response(frame, 3, 4, 3) == ([0x4366, 0xE666, 0x0001], len(frame))


def test_noise_and_a_broken_frame_before_the_answer_are_skipped() -> None:
    good = answer(1, 3, [7, 8])
    broken = good[:-1] + bytes([good[-1] ^ 1])
    line = b"\x00\x01\xff\x01\x03" + broken + good
    assert find_response(line, 1, 3, 2) == ([7, 8], len(line))
    assert find_response(b"\x01\x03\x04" + broken, 1, 3, 2) is None


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (answer(2, 3, [7, 8]), "another device's answer"),
        (answer(1, 4, [7, 8]), "another function's answer"),
        (answer(1, 3, [7, 8, 9]), "a byte count that is not the one asked for"),
    ],
)
def test_an_answer_to_another_question_is_not_taken(frame: bytes, why: str) -> None:
    assert find_response(frame, 1, 3, 2) is None, why


def test_an_exception_answer_gives_its_code() -> None:
    body = bytes([1, 0x83, 2])
    assert find_response(body + crc16(body), 1, 3, 10) == (2, 5)
    assert find_response(body + b"\x00\x00", 1, 3, 10) is None, "CRC checked"
