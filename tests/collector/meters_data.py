"""Register contents of meters on the test bus, written out by hand from the register maps in
../shared/reference/meters.md (not produced by the collector's own code), with the values a
correct reader must report."""

from __future__ import annotations

import struct


def f32_words(value: float) -> tuple[int, int]:
    """IEEE-754 float32, high word first, as Eastron meters send it."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


# ORNO OR-WE-515, holding registers (FC03), fixed point, 32-bit values high word first.
ORNO_WE515_HOLDING = {
    0x0130: 5002,  # 50.02 Hz
    0x0131: 23012,  # 230.12 V
    0x0139: 0,
    0x013A: 5123,  # 5.123 A
    0x0140: 0,
    0x0141: 1178,  # 1178 W
    0x0148: 0,
    0x0149: 95,  # 95 var
    0x0150: 0,
    0x0151: 1182,  # 1182 VA
    0x0158: 997,  # PF 0.997
    0xA000: 150,
    0xA001: 46143,  # 150 * 65536 + 46143 = 9876543 -> 98765.43 kWh (both words)
    0xA002: 1,
    0xA003: 4464,  # 70000 -> 700.00 kWh
    0xA004: 0,
    0xA005: 53456,  # 534.56 kWh
    0xA006: 0,
    0xA007: 0,
    0xA008: 0,
    0xA009: 0,
    0xA01E: 0,
    0xA01F: 8888,  # 88.88 kvarh
    0xA020: 0,
    0xA021: 5000,  # 50.00 kvarh
    0xA022: 0,
    0xA023: 3888,  # 38.88 kvarh
    0xA024: 0,
    0xA025: 0,
    0xA026: 0,
    0xA027: 0,
}
ORNO_WE515_EXPECTED = {
    "frequency_hz": 50.02,
    "voltage_v": 230.12,
    "current_a": 5.123,
    "power_w": 1178.0,
    "reactive_power_var": 95.0,
    "apparent_power_va": 1182.0,
    "power_factor": 0.997,
    "energy_total_kwh": 98765.43,
    "energy_t1_kwh": 700.0,
    "energy_t2_kwh": 534.56,
    "energy_t3_kwh": 0.0,
    "energy_t4_kwh": 0.0,
    "reactive_energy_total_kvarh": 88.88,
    "reactive_energy_t1_kvarh": 50.0,
    "reactive_energy_t2_kvarh": 38.88,
    "reactive_energy_t3_kvarh": 0.0,
    "reactive_energy_t4_kvarh": 0.0,
}

# Eastron SDM630, input registers (FC04), float32.
SDM630_VALUES: dict[tuple[str, str], tuple[int, float]] = {
    ("voltage_v", "l1"): (0x0000, 230.1),
    ("voltage_v", "l2"): (0x0002, 231.4),
    ("voltage_v", "l3"): (0x0004, 229.8),
    ("current_a", "l1"): (0x0006, 1.25),
    ("current_a", "l2"): (0x0008, 2.5),
    ("current_a", "l3"): (0x000A, 0.75),
    ("power_w", "l1"): (0x000C, 280.5),
    ("power_w", "l2"): (0x000E, 560.25),
    ("power_w", "l3"): (0x0010, 170.0),
    ("apparent_power_va", "l1"): (0x0012, 287.6),
    ("apparent_power_va", "l2"): (0x0014, 578.5),
    ("apparent_power_va", "l3"): (0x0016, 172.35),
    ("reactive_power_var", "l1"): (0x0018, 63.4),
    ("reactive_power_var", "l2"): (0x001A, 144.2),
    ("reactive_power_var", "l3"): (0x001C, -27.1),
    ("power_factor", "l1"): (0x001E, 0.975),
    ("power_factor", "l2"): (0x0020, 0.968),
    ("power_factor", "l3"): (0x0022, -0.986),
    ("power_w", "total"): (0x0034, 1010.75),
    ("apparent_power_va", "total"): (0x0038, 1038.45),
    ("reactive_power_var", "total"): (0x003C, 180.5),
    ("power_factor", "total"): (0x003E, 0.973),
    ("phase_angle_deg", "total"): (0x0042, 13.2),
    ("frequency_hz", "total"): (0x0046, 49.98),
    ("energy_import_kwh", "total"): (0x0048, 12345.6),
    ("energy_export_kwh", "total"): (0x004A, 12.5),
    ("reactive_energy_import_kvarh", "total"): (0x004C, 2345.25),
    ("reactive_energy_export_kvarh", "total"): (0x004E, 40.5),
    ("energy_total_kwh", "total"): (0x0156, 12358.1),
    ("reactive_energy_total_kvarh", "total"): (0x0158, 2385.75),
    ("energy_import_kwh", "l1"): (0x015A, 4115.2),
    ("energy_import_kwh", "l2"): (0x015C, 6172.8),
    ("energy_import_kwh", "l3"): (0x015E, 2057.6),
    ("energy_export_kwh", "l1"): (0x0160, 0.0),
    ("energy_export_kwh", "l2"): (0x0162, 0.0),
    ("energy_export_kwh", "l3"): (0x0164, 12.5),
    ("energy_total_kwh", "l1"): (0x0166, 4115.2),
    ("energy_total_kwh", "l2"): (0x0168, 6172.8),
    ("energy_total_kwh", "l3"): (0x016A, 2070.1),
    ("reactive_energy_import_kvarh", "l1"): (0x016C, 781.75),
    ("reactive_energy_import_kvarh", "l2"): (0x016E, 1172.5),
    ("reactive_energy_import_kvarh", "l3"): (0x0170, 391.0),
    ("reactive_energy_export_kvarh", "l1"): (0x0172, 0.0),
    ("reactive_energy_export_kvarh", "l2"): (0x0174, 0.0),
    ("reactive_energy_export_kvarh", "l3"): (0x0176, 40.5),
    ("reactive_energy_total_kvarh", "l1"): (0x0178, 781.75),
    ("reactive_energy_total_kvarh", "l2"): (0x017A, 1172.5),
    ("reactive_energy_total_kvarh", "l3"): (0x017C, 431.5),
}


def sdm630_input_registers(fill_gaps: bool = True) -> dict[int, int]:
    """An SDM630 answers reads across its unused addresses (zeros there)."""
    registers: dict[int, int] = {}
    if fill_gaps:
        registers.update(dict.fromkeys(range(0x0000, 0x0050), 0))
        registers.update(dict.fromkeys(range(0x0156, 0x017E), 0))
    for address, value in SDM630_VALUES.values():
        registers[address], registers[address + 1] = f32_words(value)
    return registers


def sdm630_expected() -> dict[str, dict[str, float]]:
    """channel -> field -> value."""
    out: dict[str, dict[str, float]] = {}
    for (field, channel), (_, value) in SDM630_VALUES.items():
        out.setdefault(channel, {})[field] = value
    return out


def orno_with_gap_registers() -> dict[int, int]:
    """An ORNO firmware that answers reads across 0x0130..0x0158 (zeros in between)."""
    registers = dict.fromkeys(range(0x0130, 0x0159), 0)
    registers.update(ORNO_WE515_HOLDING)
    return registers
