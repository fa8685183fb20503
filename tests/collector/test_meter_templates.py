"""Meter templates: the shipped ones follow the data model; custom ones and mistakes in config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import serial

from homewatt_collector.config import validate_config
from homewatt_collector.errors import ConfigError
from homewatt_collector.sources.modbus.bus import ModbusBus, PortUnavailable
from homewatt_collector.sources.modbus.config import ModbusSourceConfig
from homewatt_collector.sources.modbus.meters import builtin_templates
from homewatt_collector.sources.modbus.plan import Block
from homewatt_collector.sources.modbus.source import ModbusSource

UNIT_SUFFIXES = ("_w", "_v", "_a", "_hz", "_var", "_va", "_kwh", "_kvarh", "_deg")


def test_the_shipped_models_are_registered_by_name_and_alias() -> None:
    names = builtin_templates().names()
    for model in ("orno-we514", "orno-we515", "orno-we516", "orno-we517", "sdm120", "sdm630"):
        assert model in names
    assert builtin_templates().get("orno-we517") is builtin_templates().get("orno-we516")


def test_every_shipped_field_follows_the_data_model_naming() -> None:
    for name in builtin_templates().names():
        for spec in builtin_templates().get(name).registers:
            assert spec.field.endswith(UNIT_SUFFIXES) or spec.field == "power_factor", spec.field
            assert spec.channel in ("l1", "l2", "l3", "total")


def test_orno_t3_and_t4_addresses_are_marked_unverified() -> None:
    template = builtin_templates().get("orno-we515")
    unverified = {s.field for s in template.registers if not s.verified}
    assert unverified == {
        "energy_t3_kwh",
        "energy_t4_kwh",
        "reactive_energy_t3_kvarh",
        "reactive_energy_t4_kvarh",
    }


def test_serial_defaults_come_from_the_published_meter_settings() -> None:
    registry = builtin_templates()
    assert registry.get("orno-we515").serial.describe() == "9600 8E1"
    assert registry.get("orno-we515").timeout_s == 0.6
    assert registry.get("sdm120").serial.describe() == "2400 8N1"
    assert registry.get("sdm630").serial.describe() == "9600 8N1"


def test_the_meters_serial_settings_reach_pyserial(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On ptys the bus tests run 8N1; what the ORNO needs on a real line is checked here."""
    port = tmp_path / "ttyUSB0"
    port.touch()
    opened: list[dict[str, Any]] = []

    def fake_serial_for_url(url: str, **kwargs: Any) -> None:
        opened.append({"url": url, **kwargs})
        raise serial.SerialException("recorded")

    monkeypatch.setattr(serial, "serial_for_url", fake_serial_for_url)
    config = ModbusSourceConfig.model_validate(
        {"port": str(port), "meters": [{"name": "main", "model": "orno-we515", "device_id": 1}]}
    )
    source = ModbusSource(config, "home")
    with pytest.raises(PortUnavailable):
        source.bus.read(Block(3, 0x130, 2, ()), 1, 0.6)
    (kwargs,) = opened
    assert kwargs["url"] == str(port)
    assert (kwargs["baudrate"], kwargs["parity"], kwargs["bytesize"], kwargs["stopbits"]) == (
        9600,
        "E",
        8,
        1,
    )
    assert kwargs["exclusive"] is True


def modbus_config(**source: Any) -> dict[str, Any]:
    line = {
        "kind": "modbus",
        "port": "/dev/ttyUSB0",
        "meters": [{"name": "main", "model": "orno-we515", "device_id": 1}],
    }
    line.update(source)
    return {
        "site": "home",
        "source": line,
        "sinks": [{"url": "http://127.0.0.1:8086", "org": "o", "bucket": "b", "anonymous": True}],
    }


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(data, "main.yaml")
    return str(info.value)


def test_an_unknown_model_lists_the_known_ones() -> None:
    message = config_error(
        modbus_config(meters=[{"name": "m", "model": "orno-we51", "device_id": 1}])
    )
    assert message.startswith(
        "main.yaml: source: meter m: unknown model 'orno-we51' (known: orno-we514, orno-we515"
    )


def test_meters_with_different_serial_settings_cannot_share_a_line() -> None:
    message = config_error(
        modbus_config(
            meters=[
                {"name": "main", "model": "orno-we515", "device_id": 1},
                {"name": "pv", "model": "sdm120", "device_id": 2},
            ]
        )
    )
    assert "must share serial settings (main 9600 8E1, pv 2400 8N1)" in message


def test_a_line_setting_makes_mixed_meters_agree() -> None:
    config = validate_config(
        modbus_config(
            serial={"baudrate": 9600, "parity": "N"},
            meters=[
                {"name": "main", "model": "sdm630", "device_id": 1},
                {"name": "pv", "model": "sdm120", "device_id": 2},
            ],
        ),
        "main.yaml",
    )
    assert isinstance(config.source, ModbusSourceConfig)
    assert config.source.line_serial().describe() == "9600 8N1"


def test_duplicate_ids_and_unknown_fields_are_refused() -> None:
    twice = [
        {"name": "a", "model": "orno-we515", "device_id": 1},
        {"name": "b", "model": "orno-we515", "device_id": 1},
    ]
    assert "meter device_ids must be unique on a line: [1]" in config_error(
        modbus_config(meters=twice)
    )
    fields = [
        {"name": "a", "model": "orno-we515", "device_id": 1, "fields": ["power_w", "torque_nm"]}
    ]
    assert "orno-we515 has no fields ['torque_nm']" in config_error(modbus_config(meters=fields))


def test_a_custom_meter_is_data_in_the_config() -> None:
    custom = {
        "my-meter": {
            "description": "a DIN-rail meter from the drawer",
            "serial": {"baudrate": 9600, "parity": "E"},
            "registers": [
                {"field": "voltage_v", "address": 0, "type": "u16", "scale": 0.1},
                {
                    "field": "energy_total_kwh",
                    "address": 0x100,
                    "type": "u32",
                    "word_order": "little",
                    "scale": 0.01,
                },
            ],
        }
    }
    config = validate_config(
        modbus_config(
            templates=custom, meters=[{"name": "garage", "model": "my-meter", "device_id": 4}]
        ),
        "main.yaml",
    )
    assert isinstance(config.source, ModbusSourceConfig)
    source = ModbusSource(config.source, "home")
    assert [(b.start, b.count) for b in source.meters[0].blocks] == [(0, 1), (0x100, 2)]


def test_custom_template_mistakes_are_named() -> None:
    overlapping = {
        "bad": {
            "registers": [
                {"field": "a_w", "address": 0, "type": "u32"},
                {"field": "b_w", "address": 1, "type": "u16"},
            ]
        }
    }
    message = config_error(
        modbus_config(templates=overlapping, meters=[{"name": "m", "model": "bad", "device_id": 1}])
    )
    assert "registers of a_w and b_w overlap at 0x0001" in message
    clash = {"sdm630": {"registers": [{"field": "a_w", "address": 0, "type": "u16"}]}}
    assert "clash with shipped ones: ['sdm630']" in config_error(modbus_config(templates=clash))
    bad_type = {"x": {"registers": [{"field": "a_w", "address": 0, "type": "u24"}]}}
    assert "source.templates.x.registers[0].type" in config_error(
        modbus_config(templates=bad_type, meters=[{"name": "m", "model": "x", "device_id": 1}])
    )


def test_a_missing_adapter_is_not_fatal_at_start(tmp_path: Path) -> None:
    bus = ModbusBus(str(tmp_path / "ttyUSB-unplugged"), builtin_templates().get("sdm630").serial)
    assert bus.open() is False
    with pytest.raises(PortUnavailable, match="is not there"):
        bus.read(Block(4, 0, 2, ()), 1, 0.5)


def test_every_shipped_template_bounds_its_counters_by_100_a_at_253_v_per_phase() -> None:
    for name in builtin_templates().names():
        template = builtin_templates().get(name)
        phases = 3 if any(s.channel == "l3" for s in template.registers) else 1
        assert template.max_power_w == 100 * 253 * phases, name


def test_max_power_w_is_set_per_template_or_per_meter_and_must_be_positive() -> None:
    data = modbus_config(
        meters=[
            {"name": "main", "model": "orno-we515", "device_id": 1},
            {"name": "ct", "model": "orno-we515", "device_id": 2, "max_power_w": 100_000},
        ]
    )
    source = validate_config(data, "t.yaml").source
    assert isinstance(source, ModbusSourceConfig)
    plans = ModbusSource(source, "h").meters
    assert [p.max_power_w for p in plans] == [25300, 100_000]
    custom = modbus_config(
        templates={
            "mine": {"registers": [{"field": "energy_total_kwh", "address": 0, "type": "u32"}]}
        },
        meters=[{"name": "m", "model": "mine", "device_id": 1}],
    )
    source = validate_config(custom, "t.yaml").source
    assert isinstance(source, ModbusSourceConfig)
    [plan] = ModbusSource(source, "h").meters
    assert plan.max_power_w == 3 * 100 * 253, "a template without it: 3 x 100 A x 253 V"
    bad = modbus_config(meters=[{"name": "m", "model": "orno-we515", "device_id": 1}])
    bad["source"]["meters"][0]["max_power_w"] = 0
    assert "max_power_w" in config_error(bad) and "greater than 0" in config_error(bad)
