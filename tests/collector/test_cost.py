"""The cost's pure parts (tariff file, bill from counters, day options) and its one-line errors
through the command itself. The end-to-end bills against InfluxDB 1.6.7 are in
test_cost_influxdb.py."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from homewatt_collector.cost.bill import (
    SLOT_S,
    CounterSeries,
    Reading,
    Slot,
    billed_channels,
    compute_bill,
    day_start,
    slot_energy,
)
from homewatt_collector.cost.cli import choose_days
from homewatt_collector.cost.config import load_cost_config
from homewatt_collector.cost.report import coverage_notes, day_just_ended
from homewatt_collector.cost.tariff import Tariff, hours_of, load_tariff
from homewatt_common.problems import ProblemsError
from tests.collector.conftest import COLLECTOR_BIN, REPO

WARSAW = {"timezone": "Europe/Warsaw", "currency": "PLN", "import_price": 1.0}


def tariff_of(**data: object) -> Tariff:
    return Tariff.model_validate({**WARSAW, **data})


def test_the_example_tariff_and_cost_config_are_valid() -> None:
    tariff = load_tariff(REPO / "collector" / "tariff.example.yaml")
    assert tariff.period_names() == ["peak", "offpeak"]
    assert tariff.period_at(datetime(2026, 12, 1, 7, 0)) == ("peak", 1.18)
    assert tariff.period_at(datetime(2026, 12, 25, 7, 0)) == ("offpeak", 0.64), "a holiday"
    assert tariff.period_at(datetime(2026, 12, 5, 8, 0)) == ("offpeak", 0.64), "a Saturday"
    config = load_cost_config(REPO / "collector" / "cost.example.yaml")
    assert config.influxdb.token_credential == "influxdb-cost-token"


def test_a_night_across_midnight_is_matched_with_each_hours_own_day() -> None:
    """As tariff.example.yaml says: days [fri] with "22-06" is Friday's two ends, not the night
    from Friday into Saturday; that night is days [fri, sat]."""
    friday_only = tariff_of(
        import_price=None,
        periods=[
            {"name": "night", "price": 0.5, "days": ["fri"], "hours": ["22-06"]},
            {"name": "day", "price": 1.0},
        ],
    )
    fri, sat = date(2026, 12, 4), date(2026, 12, 5)
    assert (fri.strftime("%a"), sat.strftime("%a")) == ("Fri", "Sat")
    at = friday_only.period_at
    assert at(datetime(2026, 12, 4, 23, 0))[0] == "night"
    assert at(datetime(2026, 12, 4, 2, 0))[0] == "night"
    assert at(datetime(2026, 12, 5, 2, 0))[0] == "day"


def test_hour_ranges_wrap_past_midnight_and_refuse_what_is_not_a_range() -> None:
    assert hours_of("07-13") == frozenset(range(7, 13))
    assert hours_of("22-06") == frozenset({22, 23, 0, 1, 2, 3, 4, 5})
    assert hours_of("00-24") == frozenset(range(24))
    for bad in ("7-13", "07-07", "25-03", "07:00-13:00"):
        with pytest.raises(ValueError, match="is not an hour range"):
            hours_of(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timezone: Europe/Warsow\n", "timezone: 'Europe/Warsow' is not an IANA time zone name"),
        ("currency: zl\n", "currency: String should match pattern"),
        ("import_price: -1\n", "import_price: Input should be greater than or equal to 0"),
        ("import_price: .nan\n", "import_price: Input should be a finite number"),
        ("standing_charge: 1\n", "standing_charge: unknown key (a typo?"),
        ("holidays: ['2026-02-30']\n", "holidays[0]: Input should be a valid date"),
        (
            "periods: [{name: peak, price: 1, hours: ['7-13']}]\n",
            "periods[0].hours: '7-13' is not an hour range",
        ),
        (
            "periods: [{name: peak, price: 1, days: [mon]}]\n",
            "periods: no period covers Tuesday 00:00-01:00",
        ),
        (
            "periods: [{name: a, price: 1}, {name: a, price: 2}]\n",
            "periods: period names must be unique: ['a']",
        ),
        ("periods: [{name: a, price: 1, days: [monday]}]\n", "periods[0].days[0]: Input should be"),
    ],
)
def test_a_bad_tariff_is_one_line_naming_the_file_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    base = {"timezone": "Europe/Warsaw", "currency": "PLN"}
    keys = yaml.safe_load(text)
    if "periods" not in keys:
        base["import_price"] = 1.0  # type: ignore[assignment]
    path = tmp_path / "tariff.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in base.items() if k not in keys}) + text)
    with pytest.raises(ProblemsError) as caught:
        load_tariff(path)
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{path}:"), str(problem)
    assert expected in str(problem)


def test_a_tariff_needs_exactly_one_of_a_flat_price_and_periods() -> None:
    for data in ({"import_price": None}, {"periods": [{"name": "a", "price": 1}]}):
        with pytest.raises(ValueError, match="give either import_price"):
            tariff_of(**data)


def test_a_local_day_is_96_quarter_hours_or_92_and_100_when_the_clocks_change() -> None:
    tariff = tariff_of()
    for day, hours in ((date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 11, 29), 24)):
        start = day_start(day, tariff)
        end = day_start(date.fromordinal(day.toordinal() + 1), tariff)
        assert (end - start) == hours * 3600
        assert (end - start) // SLOT_S == hours * 4


START = int(datetime(2026, 11, 29, tzinfo=UTC).timestamp())


def series(slots: list[tuple[int, float, float, float]], **near: Reading) -> CounterSeries:
    return CounterSeries(
        "m",
        "total",
        "energy_total_kwh",
        tuple(Slot(START + i * SLOT_S, *v) for i, *v in slots),
        **near,  # type: ignore[arg-type]
    )


def test_a_drop_below_half_is_a_reset_counted_from_zero_and_a_small_step_back_adds_nothing() -> (
    None
):
    reset = series([(0, 10.1, 10.5, 10.5), (1, 10.6, 11.0, 0.3)], before=Reading(START, 10.0))
    assert slot_energy(reset, START, START + 2 * SLOT_S) == pytest.approx([0.5, 0.1 + 0.4 + 0.3])
    noise = series([(0, 10.1, 10.5, 10.5), (1, 10.4, 10.6, 10.6)], before=Reading(START, 10.0))
    assert slot_energy(noise, START, START + 2 * SLOT_S) == pytest.approx([0.5, 0.1])


def test_a_gap_is_shared_evenly_by_its_quarter_hours_and_the_neighbour_days_take_their_part() -> (
    None
):
    gap = series([(0, 10.0, 10.5, 10.5), (3, 11.5, 11.6, 11.6)], before=Reading(START - 60, 10.0))
    assert slot_energy(gap, START, START + 4 * SLOT_S) == pytest.approx(
        [0.5, 1 / 3, 1 / 3, 1 / 3 + 0.1]
    )
    # the range's last reading, then the next one a quarter hour after its end: half of the
    # energy between them belongs to the next day
    edge = series([(0, 10.0, 10.5, 10.5)], after=Reading(START + 3 * SLOT_S, 11.5))
    assert slot_energy(edge, START, START + 2 * SLOT_S) == pytest.approx([0.5, 0.5])


def test_energy_before_the_first_reading_is_unknown_and_the_span_says_so() -> None:
    late = series([(2, 10.0, 10.2, 10.2)])
    assert slot_energy(late, START, START + 4 * SLOT_S) == pytest.approx([0, 0, 0.2, 0])
    assert late.span() == (START + 2 * SLOT_S, START + 3 * SLOT_S)


def test_the_bill_adds_a_devices_total_channel_not_its_phases_and_only_the_devices_billed() -> None:
    keys = [
        ("main", "l1"),
        ("main", "l2"),
        ("main", "total"),
        ("plug", "total"),
        ("ct", "a"),
        ("ct", "b"),
    ]
    assert billed_channels(keys, None) == {
        ("main", "total"),
        ("plug", "total"),
        ("ct", "a"),
        ("ct", "b"),
    }
    assert billed_channels(keys, ["main"]) == {("main", "total")}


def test_only_billed_series_that_do_not_cover_the_range_are_noted() -> None:
    # An Emporia Vue as the poller writes it (mains `total`, circuits) and a plug outside
    # `devices:`, their sums begun at noon; a meter whose `total` covers the day, its phase not.
    tariff = tariff_of()
    day = date(2026, 11, 29)
    start = day_start(day, tariff)
    noon, end = start + 48 * SLOT_S, day_start(date(2026, 11, 30), tariff)

    def counter(device: str, channel: str, first: int) -> CounterSeries:
        slots = tuple(Slot(t, 1.0, 1.0, 1.0) for t in range(first, end, SLOT_S))
        return CounterSeries(device, channel, "energy_total_kwh", slots)

    late = [counter("Home", ch, noon) for ch in ("total", "1", "2", "Balance")]
    meter = [counter("meter", "total", start), counter("meter", "l1", noon)]
    bill = compute_bill(
        tariff, day, day, [*late, counter("Kettle", "total", noon), *meter], ["Home", "meter"]
    )
    assert bill.billed == {("Home", "total"), ("meter", "total")}
    assert coverage_notes(bill, "home", "homewatt") == [
        "Home/total: readings from 2026-11-29 12:00 to 2026-11-30 00:00 only:"
        " energy outside is not billed"
    ]


def test_import_comes_from_the_import_counter_where_there_is_one_else_the_total() -> None:
    tariff = tariff_of(export_price=0.5)
    day = date(2026, 11, 29)
    start = day_start(day, tariff)

    def counter(field: str, kwh: float) -> CounterSeries:
        return CounterSeries(
            "m", "total", field, (Slot(start, 0.0, kwh, kwh),), Reading(start, 0.0)
        )

    bill = compute_bill(
        tariff,
        day,
        day,
        [
            counter("energy_total_kwh", 9.0),
            counter("energy_import_kwh", 2.0),
            counter("energy_export_kwh", 1.0),
        ],
    )
    assert [(ln.period, ln.energy_kwh, ln.cost) for ln in bill.lines] == [
        ("flat", 2.0, 2.0),
        ("export", 1.0, -0.5),
    ]
    assert bill.total_cost == pytest.approx(1.5)


def test_the_day_just_ended_is_the_sites_local_yesterday() -> None:
    tariff = tariff_of(timezone="Pacific/Auckland")
    assert day_just_ended(datetime(2026, 11, 29, 12, 0, tzinfo=UTC), tariff) == date(2026, 11, 29)
    assert day_just_ended(datetime(2026, 11, 29, 10, 0, tzinfo=UTC), tariff) == date(2026, 11, 28)


def test_day_options_give_a_range_of_whole_local_days() -> None:
    def days(**given: str | None) -> tuple[date, date, str]:
        options = {"day": None, "month": None, "year": None, "since": None, "until": None}
        return choose_days(**{**options, **given})  # type: ignore[arg-type]

    assert days(day="2026-11-29")[:2] == (date(2026, 11, 29), date(2026, 11, 29))
    assert days(month="2026-02")[:2] == (date(2026, 2, 1), date(2026, 2, 28))
    assert days(month="2026-12")[:2] == (date(2026, 12, 1), date(2026, 12, 31))
    assert days(year="2026")[:2] == (date(2026, 1, 1), date(2026, 12, 31))
    assert days(since="2026-10-24", until="2026-10-26")[:2] == (
        date(2026, 10, 24),
        date(2026, 10, 26),
    )


def run_cost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COLLECTOR_BIN), "cost", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"day": "2026-13-01"}, "--day: '2026-13-01' is not a date like 2026-11-29"),
        ({"month": "2026-11-01"}, "--month: '2026-11-01' is not a month like 2026-11"),
        ({"day": "2026-11-29", "month": "2026-11"}, "--month: give one of --day, --month"),
        ({"since": "2026-11-29"}, "--to: give both --from and --to"),
        ({"since": "2026-11-29", "until": "2026-11-01"}, "--to: 2026-11-01 is before --from"),
        ({}, "--day: give --day, --month, --year or --from/--to"),
    ],
)
def test_a_bad_day_option_is_a_problem_naming_the_option(
    given: dict[str, str], expected: str
) -> None:
    options = {"day": None, "month": None, "year": None, "since": None, "until": None}
    with pytest.raises(ProblemsError) as caught:
        choose_days(**{**options, **given})  # type: ignore[arg-type]
    assert str(caught.value).startswith(expected)


def test_an_unreachable_influxdb_or_a_bad_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "tariff.yaml").write_text(yaml.safe_dump(WARSAW))
    config = tmp_path / "home.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "home",
                "tariff": "tariff.yaml",
                "influxdb": {"url": "http://127.0.0.1:9", "anonymous": True},
            }
        )
    )
    done = run_cost("--config", str(config), "--day", "2026-11-29")
    assert done.returncode == 1
    assert done.stderr.startswith(
        "homewatt-collector: error: InfluxDB http://127.0.0.1:9/query (database homewatt):"
        " cannot connect ("
    ), done.stderr
    assert len(done.stderr.splitlines()) == 1

    config.write_text("site: home\ninfluxdb:\n  url: http://127.0.0.1:9\n  token: s3cret\n")
    done = run_cost("--config", str(config), "--day", "2026-11-29")
    assert done.returncode == 1
    assert "s3cret" not in done.stderr
    assert (
        f"{config}:3: influxdb: token must not be written in the config file: put the secret"
        " in a file named by token_file (mode 0600) or in a systemd credential named by"
        " token_credential (LoadCredential=)\n"
    ) in done.stderr

    influxdb = {"url": "http://127.0.0.1:9", "anonymous": True}
    config.write_text(
        yaml.safe_dump({"site": "home", "tariff": "tariff.yaml", "influxdb": influxdb})
    )
    # -c before the sub-command too, as for every homewatt-collector command
    done = subprocess.run(
        [str(COLLECTOR_BIN), "-c", str(config), "cost", "--day", "2026-11-32"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "homewatt-collector: error: --day: '2026-11-32' is not a date like 2026-11-29\n"
    )


def cost_site(tmp_path: Path, tariff: dict, token_file: Path | None = None) -> Path:
    (tmp_path / "tariff.yaml").write_text(yaml.safe_dump(tariff))
    influxdb: dict = {"url": "http://127.0.0.1:9"}
    influxdb.update({"token_file": str(token_file)} if token_file else {"anonymous": True})
    config = tmp_path / "home.yaml"
    config.write_text(
        yaml.safe_dump({"site": "home", "tariff": "tariff.yaml", "influxdb": influxdb})
    )
    return config


def test_cost_check_validates_the_config_and_its_tariff_without_a_server(tmp_path: Path) -> None:
    config = cost_site(tmp_path, WARSAW)
    done = run_cost("--check", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"{config}: site home, InfluxDB http://127.0.0.1:9"
    assert f"  tariff {tmp_path / 'tariff.yaml'}: Europe/Warsaw, PLN" in done.stdout
    assert done.stdout.splitlines()[-1] == "ok"


def test_cost_check_refuses_a_bad_tariff_naming_its_key(tmp_path: Path) -> None:
    config = cost_site(tmp_path, {**WARSAW, "currency": "zloty"})
    done = run_cost("--check", "-c", str(config))
    assert done.returncode == 1
    assert f"{tmp_path / 'tariff.yaml'}:" in done.stderr and "currency" in done.stderr
    alone = run_cost("--check", "--tariff", str(tmp_path / "tariff.yaml"))
    assert alone.returncode == 1 and "currency" in alone.stderr


def test_cost_check_reads_the_token_unless_no_secrets(tmp_path: Path) -> None:
    token = tmp_path / "cost.token"
    config = cost_site(tmp_path, WARSAW, token_file=token)
    missing = run_cost("--check", "-c", str(config))
    assert missing.returncode == 1 and str(token) in missing.stderr
    skipped = run_cost("--check", "--no-secrets", "-c", str(config))
    assert skipped.returncode == 0, skipped.stderr
    assert "    not read (--no-secrets)" in skipped.stdout.splitlines()
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    read = run_cost("--check", "-c", str(config))
    assert read.returncode == 0, read.stderr
    assert "s3cret-token" not in read.stdout + read.stderr


def test_cost_no_secrets_or_tariff_without_check_is_refused(tmp_path: Path) -> None:
    done = run_cost("--no-secrets", "-c", str(cost_site(tmp_path, WARSAW)))
    assert done.returncode != 0
    assert "--check: --no-secrets and --tariff go with --check" in done.stderr
