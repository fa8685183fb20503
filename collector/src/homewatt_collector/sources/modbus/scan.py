"""Which device ids answer on a line, at which serial settings, and which meter they look like."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from homewatt_collector.sources.modbus.bus import (
    ModbusBus,
    ModbusExceptionResponse,
    NoResponse,
    PortUnavailable,
)
from homewatt_collector.sources.modbus.decode import DecodeError, decode_value
from homewatt_collector.sources.modbus.meters import (
    MeterTemplate,
    SerialSettings,
    builtin_templates,
)
from homewatt_collector.sources.modbus.plan import Block

# What most meters ship with: ORNO 9600 8E1, Eastron SDM630 9600 8N1 and SDM120 2400 8N1.
COMMON_SETTINGS = (
    SerialSettings(baudrate=9600, parity="E"),
    SerialSettings(baudrate=9600, parity="N"),
    SerialSettings(baudrate=2400, parity="N"),
    SerialSettings(baudrate=19200, parity="N"),
)
FULL_SETTINGS = tuple(
    SerialSettings(baudrate=baud, parity=parity)
    for baud in (1200, 2400, 4800, 9600, 19200, 38400)
    for parity in ("N", "E", "O")
)
DEFAULT_IDS = range(1, 11)
FULL_IDS = range(1, 248)
# A mains voltage: how a template's voltage register tells a meter model apart.
MAINS_VOLTS = (80.0, 300.0)


@dataclass(frozen=True)
class Found:
    device_id: int
    settings: SerialSettings
    models: list[str]  # templates whose voltage register reads a mains voltage


def probe(bus: ModbusBus, device_id: int, timeout_s: float) -> bool:
    """Does anything answer at this id? An exception response is an answer too."""
    try:
        bus.read(Block(3, 0, 1, ()), device_id, timeout_s)
    except ModbusExceptionResponse:
        return True
    except NoResponse:
        return False
    return True


def _unique_templates() -> list[tuple[str, MeterTemplate]]:
    registry = builtin_templates()
    seen: set[int] = set()
    out = []
    for name in registry.names():
        template = registry.get(name)
        if id(template) not in seen:
            seen.add(id(template))
            out.append((name, template))
    return out


def identify(bus: ModbusBus, device_id: int, timeout_s: float) -> list[str]:
    """Shipped models whose voltage register reads a mains voltage on this device."""
    models = []
    for name, template in _unique_templates():
        spec = next((s for s in template.registers if s.field == "voltage_v"), None)
        if spec is None:
            continue
        try:
            registers = bus.read(
                Block(spec.function, spec.address, spec.size, (spec,)), device_id, timeout_s
            )
            volts = decode_value(registers, spec, template.word_order)
        except (ModbusExceptionResponse, NoResponse, DecodeError):
            continue
        if MAINS_VOLTS[0] <= volts <= MAINS_VOLTS[1]:
            models.append(name)
    return models


def scan(
    port: str,
    ids: Iterable[int],
    settings: Sequence[SerialSettings],
    timeout_s: float,
    progress: Callable[[], None] = lambda: None,
) -> list[Found]:
    """Probe every id at every setting (PortUnavailable if the port cannot be opened)."""
    found = []
    id_list = list(ids)
    for setting in settings:
        bus = ModbusBus(port, setting, announce=False)
        if not bus.open():
            raise PortUnavailable(bus.problem or f"serial port {port} cannot be opened")
        try:
            for device_id in id_list:
                if probe(bus, device_id, timeout_s):
                    found.append(Found(device_id, setting, identify(bus, device_id, timeout_s)))
                progress()
        finally:
            bus.close()
    return found
