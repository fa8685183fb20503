"""Decoding the devices' answers (pure functions) from the reconstructed fixtures: units per
generation (Gen1 PM watt-minutes, Gen1 EM and Gen2 Wh), every channel and phase, export."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from homewatt_collector.sources.shelly import gen1, gen2
from homewatt_collector.sources.shelly.decode import BadAnswer, ChannelValues, parse_info
from tests.support.shelly_devices import load_fixture


def channels_of(values: list[ChannelValues]) -> dict[str, dict[str, float]]:
    return {v.channel: v.fields for v in values}


def gen2_channels(name: str) -> dict[str, dict[str, float]]:
    fixture = load_fixture(name)
    answers = fixture["answers"]
    status = {}
    for key, answer in answers.items():
        method, _, index = key.removeprefix("/rpc/").partition(".GetStatus?id=")
        status[f"{method.lower()}:{index}"] = answer
    out: list[ChannelValues] = []
    for component in gen2.components(status):
        out += gen2.decode_component(
            component, [answers[f"/rpc/{m}?id={component.id}"] for m in component.methods]
        )
    return channels_of(out)


def test_every_fixture_names_its_sources_and_says_it_is_reconstructed() -> None:
    from tests.support.shelly_devices import FIXTURES  # noqa: PLC0415

    for path in sorted(FIXTURES.glob("*.json")):
        fixture = load_fixture(path.stem)
        assert "reconstructed" in fixture["note"], path.name
        assert "shelly-api-docs.shelly.cloud" in fixture["source"], path.name


@pytest.mark.parametrize(
    ("name", "gen", "model", "app"),
    [
        ("gen1-plug-s", 1, "SHPLG-S", "Shelly Plug S"),
        ("gen1-3em", 1, "SHEM-3", "Shelly 3EM"),
        ("gen2-plus-plug-s", 2, "SNPL-00112EU", "PlusPlugS"),
        ("gen3-pm-mini", 3, "S3PM-001PCEU16", "MiniPMG3"),
    ],
)
def test_the_generation_is_told_by_the_shelly_endpoint(
    name: str, gen: int, model: str, app: str
) -> None:
    info = parse_info(load_fixture(name)["shelly"])
    assert (info.gen, info.model, info.app, info.auth) == (gen, model, app, False)


def test_a_gen1_answer_without_gen_and_with_auth_is_gen1_with_a_password() -> None:
    info = parse_info({"type": "SHSW-PM", "mac": "A4CF12F3A1D4", "auth": True, "num_meters": 1})
    assert (info.gen, info.auth, info.num_meters, info.device_id) == (1, True, 1, "shsw-pm-f3a1d4")


@pytest.mark.parametrize("answer", [[], {"name": "x"}, {"gen": 2}, "<html>"])
def test_an_answer_that_is_not_a_shelly_is_refused_with_a_reason(answer: Any) -> None:
    with pytest.raises(BadAnswer, match="/shelly"):
        parse_info(answer)


def test_gen1_plug_counters_are_watt_minutes() -> None:
    channels, problems = gen1.decode_status(load_fixture("gen1-plug-s")["answers"]["/status"])
    assert problems == []
    assert channels_of(channels) == {
        "switch0": {"power_w": 1843.5, "energy_total_kwh": round(2632 / 60_000, 9)}
    }


def test_gen1_2_5_reads_both_meters() -> None:
    channels, _ = gen1.decode_status(load_fixture("gen1-2.5")["answers"]["/status"])
    assert channels_of(channels) == {
        "switch0": {"power_w": 120.5, "energy_total_kwh": round(40210 / 60_000, 9)},
        "switch1": {"power_w": 0.0, "energy_total_kwh": round(17 / 60_000, 9)},
    }


def test_gen1_3em_phases_are_wh_with_the_exporting_phase_returning() -> None:
    channels, _ = gen1.decode_status(load_fixture("gen1-3em")["answers"]["/status"])
    by = channels_of(channels)
    assert list(by) == ["l1", "l2", "l3", "total"]
    assert by["l3"] == {
        "power_w": -1204.6,
        "voltage_v": 233.0,
        "current_a": 5.39,
        "power_factor": -0.97,
        "energy_import_kwh": 402.3458,
        "energy_export_kwh": 3345.6782,
    }
    assert by["total"] == {"power_w": -396.9}


def test_gen1_em_has_two_channels_with_reactive_power() -> None:
    channels, _ = gen1.decode_status(load_fixture("gen1-em")["answers"]["/status"])
    by = channels_of(channels)
    assert by["em0"]["reactive_power_var"] == 120.4
    assert by["em1"]["energy_export_kwh"] == 2345.6789


def test_an_invalid_gen1_meter_is_a_problem_not_a_value() -> None:
    status = copy.deepcopy(load_fixture("gen1-3em")["answers"]["/status"])
    status["emeters"][1]["is_valid"] = False
    channels, problems = gen1.decode_status(status)
    assert [c.channel for c in channels] == ["l1", "l3", "total"]
    assert problems == ["emeters[1]: is_valid is false"]


def test_a_gen1_device_without_a_meter_is_refused() -> None:
    with pytest.raises(BadAnswer, match="not a metering device"):
        gen1.decode_status({"relays": [{"ison": True}], "meters": [{"power": 0}]})


def test_a_non_number_is_refused_by_name() -> None:
    status = copy.deepcopy(load_fixture("gen1-plug")["answers"]["/status"])
    status["meters"][0]["total"] = "12"
    with pytest.raises(BadAnswer, match=r"meters\[0\]\.total is '12'"):
        gen1.decode_status(status)


def test_gen2_switch_energy_is_wh_and_return_energy_is_export() -> None:
    by = gen2_channels("gen3-2pm")
    assert by["switch0"]["energy_total_kwh"] == 123.456789
    assert by["switch0"]["energy_export_kwh"] == 0.0105
    assert by["switch1"]["power_w"] == -300.0
    assert by["switch1"]["energy_export_kwh"] == 9.876543


def test_gen2_pm1_is_read_as_channel_pm0() -> None:
    assert gen2_channels("gen3-pm-mini")["pm0"]["energy_total_kwh"] == 4.567123


def test_gen2_pro_3em_has_three_phases_and_a_total_from_em_and_emdata() -> None:
    by = gen2_channels("gen2-pro-3em")
    assert list(by) == ["l1", "l2", "l3", "total"]
    assert by["l3"]["power_w"] == -2210.4
    assert by["l3"]["energy_export_kwh"] == 0.98591
    assert by["total"] == {
        "power_w": -1664.1,
        "apparent_power_va": 3006.5,
        "current_a": 13.039,
        "energy_import_kwh": 2589.7734,
        "energy_export_kwh": 1.02661,
    }


def test_gen2_pro_em_reads_each_em1_with_its_em1data() -> None:
    by = gen2_channels("gen2-pro-em")
    assert by["em0"]["energy_import_kwh"] == 887.76655
    assert by["em1"]["energy_export_kwh"] == 445.56677


def test_a_gen2_switch_that_does_not_meter_is_left_out() -> None:
    status = {"switch:0": {"id": 0, "output": True}, "pm1:0": {"apower": 1.0}, "sys": {}}
    assert gen2.components(status) == [gen2.Component("pm1", 0)]
    with pytest.raises(BadAnswer, match="no switch, pm1, em or em1"):
        gen2.components({"switch:0": {"id": 0, "output": True}})
