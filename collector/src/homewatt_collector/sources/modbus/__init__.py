"""The `modbus` source kind: energy meters on an RS485 line, Modbus RTU, read every second.

One folder holds the kind: `meters.py` (meter models as data: serial settings, register specs,
templates) and `templates/*.yaml` (the shipped register maps, package data), `config.py` (its
config model: the line and its meters), `plan.py` and `decode.py` (pure: request blocks, register
values to SI units), `bus.py` (the serial client: our own FC03/FC04 exchange with CRC checks),
`source.py` (the Source: backoff of silent meters, the counter rule), `scan.py` (which device
ids answer, with which settings), `display.py` and `cli.py` (`homewatt-collector modbus
read|scan`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from homewatt_collector.sources.modbus.config import ModbusSourceConfig

if TYPE_CHECKING:
    from homewatt_collector.sources.modbus.source import ModbusSource

__all__ = ["ModbusSourceConfig", "check", "create"]


def create(config: ModbusSourceConfig, site: str, state_dir: Path | None) -> ModbusSource:
    """The registry's factory. The serial client (pyserial) is imported only here: other
    kinds' commands do not pay for it."""
    from homewatt_collector.sources.modbus.source import ModbusSource  # noqa: PLC0415 (start-up)

    return ModbusSource(config, site, state_dir=state_dir)


def check(config: ModbusSourceConfig) -> list[tuple[str, tuple[str | int, ...]]]:
    """check-config's warnings: the adapter missing now (the collector waits for it)."""
    if Path(config.port).exists():
        return []
    message = (
        f"{config.port} does not exist now (is the adapter plugged in? the collector waits for it)"
    )
    return [(message, ("port",))]
