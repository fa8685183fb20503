"""Sources read devices and return typed samples; they never talk to the database.

A source kind is registered here by name with its config model and its factory; the config's
`source.kind` selects it. A source keeps what must survive a restart (counter baselines and
offsets) in the instance's state directory it is given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from homewatt_collector.models import Reading
from homewatt_collector.registry import Registry
from homewatt_collector.sources import emporia, shelly
from homewatt_collector.sources.demo import DemoSource, DemoSourceConfig
from homewatt_collector.sources.modbus import ModbusSource, ModbusSourceConfig


class Source(Protocol):
    kind: str

    def open(self) -> None:
        """Acquire the device (a serial port, a session). May raise SourceError."""

    def read(self, ts: int) -> Reading:
        """One cycle's samples, timestamped `ts`; faults are counted in Reading.errors."""

    def close(self) -> None: ...


@runtime_checkable
class PacedSource(Protocol):
    """A source that can keep its requests within the cycle and stop between them (a bus)."""

    def read_within(self, ts: int, until: float | None, stop: threading.Event | None) -> Reading:
        """read(ts), with no request started after `stop` is set, and optional ones (probes of
        silent devices) only if they end before `until` (monotonic seconds)."""


@dataclass(frozen=True)
class SourceKind:
    config_model: type[BaseModel]
    # (its config model instance, site, state directory or None) -> Source
    factory: Callable[[Any, str, Path | None], Source]
    # A kind with secrets (device passwords): reads every one its config names, as the factory
    # would (ConfigError naming the key and the file); check-config calls it unless --no-secrets.
    read_secrets: Callable[[Any], object] | None = None


def _demo(config: DemoSourceConfig, site: str, state_dir: Path | None) -> Source:
    return DemoSource(config, site)  # its counter is a function of time: no state


def _modbus(config: ModbusSourceConfig, site: str, state_dir: Path | None) -> Source:
    return ModbusSource(config, site, state_dir=state_dir)


SOURCES: Registry[SourceKind] = Registry("source kind")
SOURCES.register("demo", SourceKind(DemoSourceConfig, _demo))
SOURCES.register("modbus", SourceKind(ModbusSourceConfig, _modbus))
SOURCES.register(
    "shelly", SourceKind(shelly.ShellySourceConfig, shelly.create, shelly.read_passwords)
)
SOURCES.register(
    "emporia", SourceKind(emporia.EmporiaSourceConfig, emporia.create, emporia.read_passwords)
)


def create_source(config: BaseModel, site: str, state_dir: Path | None = None) -> Source:
    kind = SOURCES.get(config.kind)  # type: ignore[attr-defined]
    return kind.factory(config, site, state_dir)
