"""Meter models as data: register templates (shipped: templates/*.yaml; custom ones in config).

A template says, per quantity: the data-model field and channel, the register address, the
function code (3 holding, 4 input), the data type and word order, the scale to SI units, and
whether the address is verified. It also carries the meter's default serial settings and
timeout, whether the meter answers block reads that span unmapped addresses, and the most
power it can measure (`max_power_w`, which bounds how fast its energy counters may rise).
"""

from __future__ import annotations

import functools
import itertools
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from homewatt_collector.errors import ConfigError
from homewatt_collector.registry import Registry
from homewatt_common.configmodel import STRICT, validate
from homewatt_common.lineprotocol import name_problem
from homewatt_common.problems import ProblemsError
from homewatt_common.yamlfile import parse_yaml

FIELD = r"^[a-z][a-z0-9_]*$"
CHANNEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
RegisterType = Literal["u16", "s16", "u32", "s32", "f32"]
WordOrder = Literal["big", "little"]
# The largest read Modbus allows (FC03/FC04: 125 registers).
MODBUS_MAX_READ = 125


class SerialSettings(BaseModel):
    model_config = ConfigDict(**STRICT, frozen=True)

    baudrate: int = Field(9600, description=f"one of {', '.join(map(str, BAUD_RATES))}")
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1

    @field_validator("baudrate")
    @classmethod
    def _standard_baud(cls, value: int) -> int:
        if value not in BAUD_RATES:
            raise ValueError(
                f"{value} is not a standard baud rate ({', '.join(map(str, BAUD_RATES))})"
            )
        return value

    def describe(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


class RegisterSpec(BaseModel):
    model_config = ConfigDict(**STRICT, frozen=True)

    field: str = Field(pattern=FIELD, description="data model field, unit in the name: power_w")
    channel: str = Field("total", pattern=CHANNEL, description="l1, l2, l3 or total")
    address: int = Field(ge=0, le=65535, description="0-based register address")
    function: Literal[3, 4] = Field(3, description="3: holding registers, 4: input registers")
    type: RegisterType
    word_order: WordOrder | None = Field(None, description="for 32-bit types; default: template's")
    scale: float = Field(1.0, description="raw value x scale = value in the field's unit")
    unit: str | None = None
    verified: bool = Field(True, description="false: address inferred, not confirmed on a meter")
    note: str | None = None
    min: float | None = Field(None, description="smallest plausible value (default by field)")
    max: float | None = Field(None, description="largest plausible value (default by field)")

    @field_validator("field")
    @classmethod
    def _writable(cls, value: str) -> str:
        problem = name_problem(value, "field key")
        if problem is not None:
            raise ValueError(f"{value!r} {problem}")
        return value

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value

    def __hash__(self) -> int:
        # Specs key the values of every cycle; pydantic's hash builds a tuple of every field
        # on each call. Frozen, so the hash is kept with the instance's id (a copy, which
        # model_copy(update=...) could change, computes its own); equality stays pydantic's.
        cached = self.__dict__.get("_hash")
        if cached is not None and cached[0] == id(self):
            return int(cached[1])
        value = hash(tuple(self.__dict__[name] for name in type(self).model_fields))
        object.__setattr__(self, "_hash", (id(self), value))  # frozen: set underneath
        return value

    @property
    def size(self) -> int:
        return 1 if self.type in ("u16", "s16") else 2

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.size


# 3 phases x 100 A x 253 V (230 V + 10 %): more than any meter homewatt knows can measure.
DEFAULT_MAX_POWER_W = 3 * 100 * 253.0


class MeterTemplate(BaseModel):
    model_config = ConfigDict(**STRICT, frozen=True)

    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    serial: SerialSettings = Field(default_factory=SerialSettings)
    timeout_s: float = Field(0.5, ge=0.05, le=10, description="per request")
    span_gaps: bool = Field(
        True,
        description="read across unmapped addresses in one request (falls back on exception 2)",
    )
    max_gap_registers: int = Field(
        10, ge=0, le=60, description="largest gap bridged in one read (10 registers ~ one request)"
    )
    max_block_registers: int = Field(100, ge=1, le=MODBUS_MAX_READ)
    word_order: WordOrder = "big"
    max_power_w: float = Field(
        DEFAULT_MAX_POWER_W,
        gt=0,
        description="the most power the meter can measure (max current x 253 V x phases): an"
        " energy counter rising faster is a misread (default: 3 x 100 A x 253 V)",
    )
    registers: list[RegisterSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> MeterTemplate:
        seen: dict[tuple[str, str], int] = {}
        for spec in self.registers:
            key = (spec.field, spec.channel)
            if key in seen:
                raise ValueError(
                    f"{spec.field} on channel {spec.channel} is defined twice"
                    f" (addresses {seen[key]:#06x} and {spec.address:#06x})"
                )
            seen[key] = spec.address
        for function in (3, 4):
            ranges = sorted(
                (s.address, s.end, s.field) for s in self.registers if s.function == function
            )
            for (_, end, field), (start, _, other) in itertools.pairwise(ranges):
                if start < end:
                    raise ValueError(f"registers of {field} and {other} overlap at {start:#06x}")
        return self


@functools.cache
def builtin_templates() -> Registry[MeterTemplate]:
    """The shipped templates (templates/*.yaml beside this module, package data), by file name
    and aliases."""
    registry: Registry[MeterTemplate] = Registry("meter model")
    shipped = resources.files(__package__).joinpath("templates")
    for resource in sorted(shipped.iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".yaml"):
            continue
        name = resource.name.removesuffix(".yaml")
        where = f"built-in template {resource.name}"
        try:
            document = parse_yaml(resource.read_text(encoding="utf-8"), Path(where))
        except ProblemsError as exc:
            raise ConfigError(exc.problems) from None
        template = parse_template(document.data, where)
        registry.register(name, template)
        for alias in template.aliases:
            registry.register(alias, template)
    return registry


def parse_template(data: object, where: str) -> MeterTemplate:
    try:
        return validate(MeterTemplate, data, where)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
