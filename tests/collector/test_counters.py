"""The counter rule (counters.py): every cumulative field stays monotonic and plausible, with its
baseline and offset persisted in the state directory. Pure: readings in, verdicts out; then the
Modbus source applying it, the ORNO WE-515 template decoded for real from a register table the
test edits between cycles (the emulated RS485 line, test_counter_faults.py, serves sequences
through the real process)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from homewatt_collector.counters import (
    BASELINE_READS,
    COUNTERS_FILE,
    RISE_SLACK_S,
    SAVE_INTERVAL_S,
    CounterGuard,
    RiseLimit,
    Series,
    Verdict,
    is_cumulative,
)
from homewatt_collector.models import Reading
from homewatt_collector.sources.modbus.config import ModbusSourceConfig
from homewatt_collector.sources.modbus.plan import Block
from homewatt_collector.sources.modbus.source import ModbusSource
from tests.collector.meters_data import orno_with_gap_registers

SERIES = Series("main", "total", "orno-we515", "energy_total_kwh")
# ORNO WE-515: 25.3 kW at most, counter steps of 0.01 kWh
LIMIT = RiseLimit(max_power_w=25_300, resolution=0.01)
GARBLED = 42_949_672.95  # FFFF FFFF x 0.01, had it got past the decoder


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def guard_at(directory: Path, clock: Clock | None = None) -> CounterGuard:
    return CounterGuard.load(directory / COUNTERS_FILE, clock or Clock())


def feed(guard: CounterGuard, readings: list[tuple[float, float]]) -> list[Verdict]:
    """(reading, ts) pairs through the guard, in order."""
    return [guard.check(SERIES, value, ts, LIMIT) for value, ts in readings]


def stored(verdicts: list[Verdict]) -> list[float | None]:
    return [v.value for v in verdicts]


def with_baseline(tmp_path: Path, value: float = 1234.56, ts: float = 100) -> CounterGuard:
    guard = guard_at(tmp_path)
    feed(guard, [(value, ts - 2), (value, ts - 1), (value, ts)])
    return guard


def test_a_new_counter_is_stored_from_the_third_consistent_read_and_a_garbled_first_read_never_becomes_the_baseline(  # noqa: E501
    tmp_path: Path,
) -> None:
    guard = guard_at(tmp_path)
    verdicts = feed(guard, [(1234.56, 1), (1234.56, 2), (1234.57, 3), (1234.57, 4)])
    assert stored(verdicts) == [None, None, 1234.57, 1234.57]
    assert [v.rejected for v in verdicts] == ["", "", "", ""], "taking a baseline is no fault"

    guard = guard_at(tmp_path / "other")
    verdicts = feed(guard, [(98765.43, 1), (1234.56, 2), (1234.56, 3), (1234.57, 4), (1234.57, 5)])
    assert stored(verdicts) == [None, None, None, 1234.57, 1234.57]
    assert verdicts[1].rejected, "the read that disagrees with the one before is counted"
    assert BASELINE_READS == 3


def test_a_step_back_is_rejected_and_the_good_reads_after_it_are_kept(tmp_path: Path) -> None:
    guard = with_baseline(tmp_path)
    verdicts = feed(guard, [(1234.57, 101), (1200.00, 102), (1234.57, 103), (1234.58, 104)])
    assert stored(verdicts) == [1234.57, None, 1234.57, 1234.58]
    assert verdicts[1].rejected == "went back from 1234.57 to 1200"
    assert not verdicts[2].rejected and not verdicts[3].rejected


def test_a_rise_beyond_max_power_w_times_the_elapsed_time_is_rejected_like_a_step_back(
    tmp_path: Path,
) -> None:
    guard = with_baseline(tmp_path)
    # 25.3 kW for 1 s (+10 s slack) is 0.077 kWh: a garbled low word (+327.68 kWh) is not,
    # nor is the all-ones value had it got past the decoder
    verdicts = feed(guard, [(1234.56 + 327.68, 101), (GARBLED, 102), (1234.60, 103)])
    assert stored(verdicts) == [None, None, 1234.60]
    assert "more than max_power_w 25300 W allows" in verdicts[0].rejected
    assert "rose from 1234.56 to 4.29497e+07" in verdicts[1].rejected
    # the same +1 kWh is implausible after 1 s, plausible after an hour at 1 kW
    assert guard.check(SERIES, 1235.60, 104, LIMIT).rejected
    assert guard.check(SERIES, 1235.60, 103 + 3600, LIMIT) == Verdict(1235.60)


def test_one_counter_step_within_a_second_is_plausible_whatever_the_power(tmp_path: Path) -> None:
    guard = with_baseline(tmp_path)
    tiny = RiseLimit(max_power_w=1, resolution=0.01)  # 1 W: 0.003 Wh in 11 s
    assert guard.check(SERIES, 1234.57, 101, tiny) == Verdict(1234.57)
    assert guard.check(SERIES, 1234.59, 102, tiny).rejected, "two steps are not"


def test_without_max_power_w_rises_are_not_bounded_but_steps_back_are(tmp_path: Path) -> None:
    guard = with_baseline(tmp_path)
    free = RiseLimit(max_power_w=None)
    assert guard.check(SERIES, 99999.0, 101, free) == Verdict(99999.0)
    assert guard.check(SERIES, 1.0, 102, free).rejected


def test_the_baseline_is_persisted_so_the_first_read_after_a_restart_is_checked_too(
    tmp_path: Path,
) -> None:
    guard = with_baseline(tmp_path, 1234.56, ts=100)
    guard.close()
    restarted = guard_at(tmp_path)
    verdicts = feed(restarted, [(GARBLED, 160), (1200.00, 161), (1234.80, 162)])
    assert stored(verdicts) == [None, None, 1234.80], "checked against the baseline from disk"
    assert verdicts[0].rejected and verdicts[1].rejected
    # an hour later (the collector was stopped), the rise of an hour is plausible at once
    assert guard_at(tmp_path).check(SERIES, 1240.00, 3700, LIMIT) == Verdict(1240.00)


def test_a_genuine_reset_is_absorbed_by_an_offset_persisted_at_once_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guard = with_baseline(tmp_path, 1234.56, ts=100)
    with caplog.at_level(logging.WARNING):
        # the meter is replaced: its counter starts near 0 and counts on
        verdicts = feed(guard, [(0.05, 101), (0.06, 102), (0.07, 103), (0.08, 104), (0.10, 105)])
    assert stored(verdicts) == [None, None, 1234.58, 1234.59, 1234.61]
    assert verdicts[0].rejected == "went back from 1234.56 to 0.05"
    assert verdicts[1].rejected
    assert not verdicts[2].rejected, "the third consistent read is the new baseline"
    assert caplog.text.count("restarted at 0.05 (replaced or reset?)") == 1
    assert "stored values go on from 1234.56" in caplog.text
    # persisted at once (no close, no save interval): a crash now keeps the offset
    saved = json.loads((tmp_path / COUNTERS_FILE).read_text())
    [series] = saved["series"]
    assert series["offset"] == pytest.approx(1234.51)
    restarted = guard_at(tmp_path)
    assert restarted.check(SERIES, 0.11, 106, LIMIT) == Verdict(1234.62)
    assert restarted.check(SERIES, 0.02, 107, LIMIT).rejected, "the new counter is monotonic too"


def test_a_replacement_meter_with_a_higher_reading_is_absorbed_without_a_jump(
    tmp_path: Path,
) -> None:
    guard = with_baseline(tmp_path, 1234.56, ts=100)
    verdicts = feed(guard, [(50000.00, 101), (50000.01, 102), (50000.01, 103), (50000.02, 104)])
    assert stored(verdicts) == [None, None, 1234.57, 1234.58]


def test_readings_that_disagree_with_each_other_never_make_a_reset(tmp_path: Path) -> None:
    guard = with_baseline(tmp_path, 1234.56, ts=100)
    glitches = [(0.0, 101), (GARBLED, 102), (3.0, 103), (0.0, 104), (GARBLED, 105), (1234.57, 106)]
    verdicts = feed(guard, glitches)
    assert stored(verdicts) == [None] * 5 + [1234.57]


def test_baselines_are_written_at_most_every_save_interval_and_at_close(tmp_path: Path) -> None:
    clock = Clock()
    guard = guard_at(tmp_path, clock)
    path = tmp_path / COUNTERS_FILE
    feed(guard, [(1.0, 1), (1.0, 2), (1.0, 3)])
    assert json.loads(path.read_text())["series"][0]["value"] == 1.0
    clock.now = 1.0
    feed(guard, [(1.01, 4)])
    assert json.loads(path.read_text())["series"][0]["value"] == 1.0, "not every cycle (SD card)"
    clock.now = SAVE_INTERVAL_S + 0.5
    feed(guard, [(1.02, 5)])
    assert json.loads(path.read_text())["series"][0]["value"] == 1.02
    feed(guard, [(1.03, 6)])
    guard.close()
    assert json.loads(path.read_text())["series"][0] == {
        "device": "main",
        "channel": "total",
        "model": "orno-we515",
        "field": "energy_total_kwh",
        "value": 1.03,
        "ts": 6.0,
        "offset": 0.0,
    }


@pytest.mark.parametrize(
    "content",
    [
        b"\0" * 100,
        b"\xff\xfe not text",
        b'{"version": 1, "series": [{"device": "main"}]}',
        b'{"version": 1, "series": [{"device": "m", "channel": "total", "model": "x",'
        b' "field": "energy_total_kwh", "value": NaN, "ts": 1, "offset": 0}]}',
        b"[]",
        b'{"version": 9}',
    ],
    ids=["zeroed", "not-utf8", "missing-keys", "nan", "not-an-object", "unknown-version"],
)
def test_a_damaged_state_file_is_moved_aside_with_one_line_and_counters_take_a_new_baseline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (tmp_path / COUNTERS_FILE).write_bytes(content)
    with caplog.at_level(logging.ERROR):
        guard = guard_at(tmp_path)
    assert len(caplog.records) == 1
    assert "is damaged" in caplog.text and "moved aside to counters.json.damaged-" in caplog.text
    [aside] = tmp_path.glob(f"{COUNTERS_FILE}.damaged-*")
    assert aside.read_bytes() == content
    assert stored(feed(guard, [(5.0, 1), (5.0, 2), (5.0, 3)])) == [None, None, 5.0]
    assert json.loads((tmp_path / COUNTERS_FILE).read_text())["series"][0]["value"] == 5.0


def test_a_state_directory_that_cannot_be_written_costs_one_line_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guard = guard_at(tmp_path / "missing")  # its directory does not exist: every write fails
    with caplog.at_level(logging.ERROR):
        verdicts = feed(guard, [(1.0, 1), (1.0, 2), (1.0, 3), (1.01, 4)])
        guard.close()
    assert stored(verdicts) == [None, None, 1.0, 1.01]
    assert caplog.text.count("cannot save") == 1, "once a minute, not every write"


@pytest.mark.parametrize(
    ("name", "cumulative"),
    [
        ("energy_total_kwh", True),
        ("energy_import_kwh", True),
        ("energy_t4_kwh", True),
        ("reactive_energy_export_kvarh", True),
        ("power_w", False),
        ("reactive_power_var", False),
        ("energy_kwh", False),
    ],
)
def test_which_fields_are_cumulative_counters(name: str, cumulative: bool) -> None:
    assert is_cumulative(name) is cumulative


class TableBus:
    """Answers every read from `registers` (address -> value), as a meter would."""

    def __init__(self, registers: dict[int, int]) -> None:
        self.registers = registers

    def open(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def read(self, block: Block, device_id: int, timeout_s: float, retries: int = 0) -> list[int]:
        return [self.registers.get(a, 0) for a in range(block.start, block.start + block.count)]


def orno_source(state_dir: Path, **meter: Any) -> tuple[ModbusSource, dict[int, int]]:
    registers = orno_with_gap_registers()
    config = ModbusSourceConfig.model_validate(
        {
            "kind": "modbus",
            "port": "/dev/ttyUSB0",
            "meters": [{"name": "m", "model": "orno-we515", "device_id": 1, **meter}],
        }
    )
    bus = TableBus(registers)
    return ModbusSource(config, "h", bus=bus, state_dir=state_dir), registers  # type: ignore[arg-type]


def energy(reading: Reading) -> Any:
    [sample] = [s for s in reading.samples if s.tags["channel"] == "total"]
    return sample.fields.get("energy_total_kwh")


def set_energy(registers: dict[int, int], kwh: float) -> None:
    counts = round(kwh * 100)
    registers[0xA000], registers[0xA001] = counts >> 16, counts & 0xFFFF


def test_the_modbus_source_counts_one_all_ones_energy_read_as_a_read_error_and_keeps_the_good_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, registers = orno_source(tmp_path)
    set_energy(registers, 1000.00)
    baseline = [source.read(ts) for ts in range(1, BASELINE_READS + 1)]
    assert [energy(r) for r in baseline] == [None] * (BASELINE_READS - 1) + [1000.00]
    registers[0xA000] = registers[0xA001] = 0xFFFF  # 42,949,672.95 kWh
    garbled = source.read(BASELINE_READS + 1)
    assert energy(garbled) is None and garbled.errors == 1
    for ts in range(BASELINE_READS + 2, BASELINE_READS + 5):
        set_energy(registers, 1000.00 + 0.01 * ts)
        good = source.read(ts)
        assert (energy(good), good.errors) == (round(1000.00 + 0.01 * ts, 2), 0)
    source.close()
    assert "restarted" not in caplog.text, "no counter reset is taken"


def test_the_modbus_source_bounds_a_rise_by_the_meter_s_max_power_w_and_the_seconds_elapsed(
    tmp_path: Path,
) -> None:
    """The meter's own max_power_w (here 3.6 kW: 1 Wh a second) overrides its template's."""
    source, registers = orno_source(tmp_path, max_power_w=3600)
    set_energy(registers, 500.00)
    [source.read(ts) for ts in range(1, BASELINE_READS + 1)]
    last_good = BASELINE_READS
    # 10 s later the most it can have counted is (10 + slack) s x 1 Wh/s, plus one step
    most = (10 + RISE_SLACK_S) * 3600 / 3.6e6 + 0.01
    set_energy(registers, 500.00 + most + 0.05)
    jump = source.read(last_good + 10)
    assert energy(jump) is None and jump.errors == 1
    kept = source.read(last_good + 100)  # the same reading, 100 s after the last good one
    assert energy(kept) == round(500.00 + most + 0.05, 2) and kept.errors == 0
    source.close()
