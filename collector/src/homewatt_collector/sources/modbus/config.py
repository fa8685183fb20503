"""The `modbus` kind's config model: one RS485 line (its port and serial settings), its meters
(name, model, Modbus device id) and custom register templates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from homewatt_collector.sources.modbus.meters import (
    CHANNEL,
    MeterTemplate,
    SerialSettings,
    builtin_templates,
)
from homewatt_common.configmodel import ConfigModel
from homewatt_common.lineprotocol import name_problem


class MeterConfig(ConfigModel):
    name: str = Field(pattern=CHANNEL, description="the `device` tag")
    model: str = Field(
        description="a shipped template (orno-we515, sdm630...) or one in `templates`"
    )
    device_id: int = Field(ge=1, le=247, description="the meter's Modbus address (slave id)")
    timeout_s: float | None = Field(None, ge=0.05, le=10, description="default: the template's")
    retries: int = Field(0, ge=0, le=1, description="re-asks after no answer within one cycle")
    serial: SerialSettings | None = Field(None, description="default: the template's")
    fields: list[str] | None = Field(None, description="read only these fields (saves bus time)")
    max_power_w: float | None = Field(
        None,
        gt=0,
        le=10_000_000,
        description="default: the template's (the most power it measures, in W; bounds how fast"
        " its energy counters may rise)",
    )


class ModbusSourceConfig(ConfigModel):
    kind: Literal["modbus"] = "modbus"
    port: str = Field(description="the adapter, best by its stable path /dev/serial/by-id/...")
    serial: SerialSettings | None = Field(
        None, description="the line's settings; default: those of its meters' templates"
    )
    meters: list[MeterConfig] = Field(min_length=1)
    templates: dict[str, MeterTemplate] = Field(
        default_factory=dict, description="custom meter models, by name (data, not code)"
    )

    @field_validator("templates")
    @classmethod
    def _writable_names(cls, templates: dict[str, MeterTemplate]) -> dict[str, MeterTemplate]:
        for name in templates:
            problem = name_problem(name, "tag value")
            if problem is not None or name == "":
                raise ValueError(f"template name {name!r} (the model tag) {problem or 'is empty'}")
        return templates

    @model_validator(mode="after")
    def _consistent(self) -> ModbusSourceConfig:
        builtin = builtin_templates()
        clash = sorted(name for name in self.templates if name in builtin)
        if clash:
            raise ValueError(f"custom template names clash with shipped ones: {clash}")
        for key in ("name", "device_id"):
            values = [getattr(m, key) for m in self.meters]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"meter {key}s must be unique on a line: {twice}")
        for meter in self.meters:
            template = self.template_of(meter)
            if meter.fields is not None:
                known = {spec.field for spec in template.registers}
                unknown = sorted(set(meter.fields) - known)
                if unknown:
                    raise ValueError(f"meter {meter.name}: {meter.model} has no fields {unknown}")
        settings = {m.name: self.serial_of(m) for m in self.meters}
        if len(set(settings.values())) > 1:
            described = ", ".join(f"{name} {s.describe()}" for name, s in settings.items())
            raise ValueError(
                f"meters on one RS485 line must share serial settings ({described}):"
                " set `serial:` for the line, or put them on separate adapters"
            )
        return self

    def template_of(self, meter: MeterConfig) -> MeterTemplate:
        if meter.model in self.templates:
            return self.templates[meter.model]
        builtin = builtin_templates()
        if meter.model not in builtin:
            known = ", ".join(builtin.names() + sorted(self.templates))
            raise ValueError(f"meter {meter.name}: unknown model {meter.model!r} (known: {known})")
        return builtin.get(meter.model)

    def serial_of(self, meter: MeterConfig) -> SerialSettings:
        return self.serial or meter.serial or self.template_of(meter).serial

    def line_serial(self) -> SerialSettings:
        return self.serial_of(self.meters[0])

    def describe(self) -> str:
        meters = ", ".join(f"{m.name} ({m.model}, id {m.device_id})" for m in self.meters)
        return f"port {self.port} at {self.line_serial().describe()}, meters {meters}"
