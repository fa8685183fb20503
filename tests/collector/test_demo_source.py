"""The demo meter: a plausible household whose energy counter is the integral of its power."""

from __future__ import annotations

import itertools
import statistics

from homewatt_collector.sources.demo.config import DemoSourceConfig
from homewatt_collector.sources.demo.source import DemoSource, household_load

DAY_START = 1_767_225_600  # 2026-01-01T00:00:00Z


def read_series(start: int, seconds: int, step: int = 1, seed: int = 1) -> list[dict[str, float]]:
    source = DemoSource(DemoSourceConfig(seed=seed), site="home")
    out = []
    for ts in range(start, start + seconds, step):
        (sample,) = source.read(ts).samples
        out.append({k: float(v) for k, v in sample.fields.items()})  # type: ignore[arg-type]
    return out


def test_a_simulated_day_looks_like_a_household() -> None:
    day = read_series(DAY_START, 86_400, step=5)
    power = [r["power_w"] for r in day]
    assert 60 < min(power) < 200, "standby base load"
    assert max(power) > 2000, "a kettle, oven or washing machine heater"
    assert 250 < statistics.mean(power) < 700, "a two-person household's mean load"
    assert all(220 < r["voltage_v"] < 240 for r in day)
    assert all(49.9 < r["frequency_hz"] < 50.1 for r in day)
    assert all(0.5 < r["power_factor"] <= 1.0 for r in day)
    evening = statistics.mean(power[(19 * 3600) // 5 : (22 * 3600) // 5])
    night = statistics.mean(power[(2 * 3600) // 5 : (4 * 3600) // 5])
    assert evening > 1.5 * night, "more load in the evening than at night"


def test_the_energy_counter_is_the_integral_of_the_reported_power() -> None:
    readings = read_series(DAY_START + 17 * 3600, 7200)
    integral_kwh = sum(
        (a["power_w"] + b["power_w"]) / 2 / 3_600_000 for a, b in itertools.pairwise(readings)
    )
    delta = readings[-1]["energy_total_kwh"] - readings[0]["energy_total_kwh"]
    assert abs(delta - integral_kwh) < 0.001  # rounding of the reported power (0.1 W) only
    counters = [r["energy_total_kwh"] for r in readings]
    assert counters == sorted(counters), "a meter's counter never goes back"


def test_the_counter_keeps_counting_across_missed_readings() -> None:
    every_second = read_series(DAY_START, 600)
    every_ten = read_series(DAY_START, 600, step=10)
    gained_1 = every_second[-10]["energy_total_kwh"] - every_second[0]["energy_total_kwh"]
    gained_10 = every_ten[-1]["energy_total_kwh"] - every_ten[0]["energy_total_kwh"]
    assert abs(gained_1 - gained_10) / gained_1 < 0.02


def test_current_power_factor_and_apparent_power_agree() -> None:
    for r in read_series(DAY_START + 20 * 3600, 300):
        assert abs(r["apparent_power_va"] - r["voltage_v"] * r["current_a"]) < 1.0
        assert abs(r["power_factor"] - r["power_w"] / r["apparent_power_va"]) < 0.002


def test_the_load_is_reproducible_from_time_and_seed() -> None:
    times = range(DAY_START, DAY_START + 86_400, 60)
    assert [household_load(t, 7) for t in times] == [household_load(t, 7) for t in times]
    assert [household_load(t, 7) for t in times] != [household_load(t, 8) for t in times]


def test_samples_follow_the_data_model() -> None:
    source = DemoSource(DemoSourceConfig(device="garage"), site="home")
    (sample,) = source.read(DAY_START).samples
    assert sample.measurement == "electricity"
    assert dict(sample.tags) == {
        "site": "home",
        "source": "demo",
        "device": "garage",
        "channel": "total",
        "model": "demo",
    }
    assert set(sample.fields) == {
        "power_w",
        "reactive_power_var",
        "apparent_power_va",
        "power_factor",
        "voltage_v",
        "current_a",
        "frequency_hz",
        "energy_total_kwh",
        "energy_import_kwh",
    }
    assert all(isinstance(v, float) for v in sample.fields.values()), "one field type per field"
