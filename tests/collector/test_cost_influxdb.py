"""`homewatt-collector cost` end to end: counters written to a real InfluxDB 1.6.7 (v1 /write,
as InfluxDB stores what the collector delivers), the command run as a subprocess reading them
back with InfluxQL over /query, its bill compared with bills computed by hand.

The data: one reading every 10 s of each counter, generated from a power profile whose power
is constant within each local hour, so each period's energy is hours x kW, worked out below in
the comments. InfluxDB 2 (the Pi's) serves the same InfluxQL through its v1 API and a DBRP
mapping; it cannot run here (platform.md), so only InfluxDB 1.6.7 answers these queries.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.collector.conftest import COLLECTOR_BIN
from tests.support.influxdb1 import InfluxDB1

pytestmark = pytest.mark.timeout(300)

DB = "homewatt"
STEP_S = 10
WARSAW = ZoneInfo("Europe/Warsaw")
LONDON = ZoneInfo("Europe/London")

# Time of use, every day: night 22-07 at 0.55, day 07-17 at 0.95, evening 17-22 at 1.20 PLN.
TOU = {
    "timezone": "Europe/Warsaw",
    "currency": "PLN",
    "standing_charge_per_day": 1.25,
    "export_price": 0.25,
    "periods": [
        {"name": "day", "price": 0.95, "hours": ["07-17"]},
        {"name": "evening", "price": 1.20, "hours": ["17-22"]},
        {"name": "night", "price": 0.55},
    ],
}
FLAT = {
    "timezone": "Europe/Warsaw",
    "currency": "PLN",
    "standing_charge_per_day": 1.25,
    "import_price": 0.90,
}


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path_factory.mktemp("influxdb1")).start()
    try:
        server.create_database(DB)
        # as on a Pi: energy_cost goes to the long-term retention policy (InfluxDB 2: its bucket)
        server.query(
            f'CREATE RETENTION POLICY "longterm" ON "{DB}" DURATION INF REPLICATION 1', post=True
        )
        yield server
    finally:
        server.stop()


def counter_lines(  # noqa: PLR0917 (one counter's whole description, read like a sentence)
    site: str,
    device: str,
    field: str,
    zone: ZoneInfo,
    first: date,
    last: date,
    kw: Callable[[datetime], float],
    start_kwh: float = 1000.0,
    resets: tuple[datetime, ...] = (),
    gaps: tuple[tuple[datetime, datetime], ...] = (),
    channel: str = "total",
) -> list[str]:
    """Readings every STEP_S s from an hour before local `first` to an hour after `last`: the
    counter rises by kw(local start of each step) x STEP_S / 3600; after each reset the counter
    restarts from 0 (the reading at the reset still shows the old counter); no reading inside a
    gap (open interval), the counter goes on."""
    begin = int(datetime.combine(first, datetime.min.time(), zone).timestamp()) - 3600
    end = int(datetime.combine(last + timedelta(days=1), datetime.min.time(), zone).timestamp())
    reset_ts = {int(r.timestamp()) for r in resets}
    gap_ts = [(int(a.timestamp()), int(b.timestamp())) for a, b in gaps]
    value = start_kwh
    lines = []
    for ts in range(begin, end + 3600 + 1, STEP_S):
        if not any(a < ts < b for a, b in gap_ts):
            lines.append(
                f"electricity,site={site},source=modbus,device={device},channel={channel}"
                f",model=sdm630 {field}={value!r} {ts}"
            )
        if ts in reset_ts:
            value = 0.0
        value += kw(datetime.fromtimestamp(ts, zone)) * STEP_S / 3600
    return lines


def write(influx: InfluxDB1, lines: list[str]) -> None:
    for first in range(0, len(lines), 20_000):
        influx.write(DB, lines[first : first + 20_000])


def site_files(tmp_path: Path, influx: InfluxDB1, site: str, tariff: dict, **extra: object) -> Path:
    (tmp_path / "tariff.yaml").write_text(yaml.safe_dump(tariff))
    config = {
        "site": site,
        "tariff": str(tmp_path / "tariff.yaml"),
        "influxdb": {"url": influx.url, "database": DB, "anonymous": True},
        **extra,
    }
    path = tmp_path / f"{site}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cost(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COLLECTOR_BIN), "cost", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(table: str) -> dict[tuple[str, ...], list[str]]:
    """The printed table's rows: (device, channel, period) -> the other cells."""
    out: dict[tuple[str, ...], list[str]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("│|").split("│")]
        if len(cells) >= 6 and cells[0] not in ("device", ""):
            out[tuple(cells[:3])] = cells[3:]
    return out


def by_local_hour(profile: dict[range, float]) -> Callable[[datetime], float]:
    def kw(local: datetime) -> float:
        return next(p for hours, p in profile.items() if local.hour in hours)

    return kw


# Import: 0.5 kW at night (22-07), 2 kW in the day (07-17), 1.5 kW in the evening (17-22).
HOUSE = by_local_hour({range(0, 7): 0.5, range(7, 17): 2.0, range(17, 22): 1.5, range(22, 24): 0.5})
# Export: 0.5 kW from 10:00 to 14:00 (solar), else nothing.
SOLAR = by_local_hour({range(10, 14): 0.5, range(0, 10): 0.0, range(14, 24): 0.0})


def test_a_flat_day_is_billed_from_the_main_meter_and_shows_a_plug_outside_the_total(
    influx: InfluxDB1, tmp_path: Path
) -> None:
    """2026-11-29 (Sunday, CET): the main meter draws 0.5 kW 22-07 (9 h), 2 kW 07-17 (10 h),
    1.5 kW 17-22 (5 h): 4.5 + 20 + 7.5 = 32 kWh x 0.90 = 28.80 PLN, + 1.25 standing charge =
    30.05 PLN. The fridge plug behind it (0.1 kW: 2.4 kWh, 2.16 PLN) is shown, not added."""
    day = date(2026, 11, 29)
    lines = counter_lines("flat", "main", "energy_total_kwh", WARSAW, day, day, HOUSE)
    lines += counter_lines(
        "flat", "fridge", "energy_total_kwh", WARSAW, day, day, lambda _: 0.1, start_kwh=12.0
    )
    write(influx, lines)
    config = site_files(tmp_path, influx, "flat", FLAT, devices=["main"])

    done = cost(config, "--day", "2026-11-29")

    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[("main", "total", "flat")][:3] == ["32.000", "0.9000", "28.80"]
    assert table[("fridge", "total", "flat")] == ["2.400", "0.9000", "2.16", "not in the total"]
    assert table[("standing charge", "", "")][1:3] == ["1.2500/day", "1.25"]
    assert table[("total", "", "")][0] == "32.000"
    assert table[("total", "", "")][2] == "30.05"
    assert done.stderr == ""


def test_time_of_use_across_both_dst_changes_with_a_gap_at_a_period_boundary(
    influx: InfluxDB1, tmp_path: Path
) -> None:
    """Europe/Warsaw, the same house and 0.5 kW of solar export 10-14 (2 kWh, 0.50 PLN credit).

    2026-10-25, 25 h (02:00-03:00 twice): night 00-07 is 8 h + 22-24 2 h = 10 h x 0.5 = 5 kWh
    (2.75 PLN), day 10 h x 2 = 20 kWh (19.00), evening 5 h x 1.5 = 7.5 kWh (9.00): 32.5 kWh,
    30.75 + 1.25 - 0.50 = 31.50 PLN.

    2026-03-29, 23 h (no 02:00-03:00), no reading from 21:45 to 22:15 (the collector down): the
    rule shares the gap's 0.375 + 0.125 = 0.5 kWh evenly by its two quarter hours, 0.25 to the
    evening's last and 0.25 to the night's first. Night 6 h + 2 h = 8 h x 0.5 = 4 + 0.125 =
    4.125 kWh (2.26875), day 20 kWh (19.00), evening 7.5 - 0.125 = 7.375 kWh (8.85): 31.5 kWh,
    30.11875 + 1.25 - 0.50 = 30.86875 PLN."""
    autumn, spring = date(2026, 10, 25), date(2026, 3, 29)
    gap = (
        datetime(2026, 3, 29, 21, 45, tzinfo=WARSAW),
        datetime(2026, 3, 29, 22, 15, tzinfo=WARSAW),
    )
    for day, gaps in ((autumn, ()), (spring, (gap,))):
        lines = counter_lines(
            "tou", "main", "energy_import_kwh", WARSAW, day, day, HOUSE, gaps=gaps
        )
        lines += counter_lines(
            "tou", "main", "energy_export_kwh", WARSAW, day, day, SOLAR, start_kwh=300.0, gaps=gaps
        )
        write(influx, lines)
    config = site_files(tmp_path, influx, "tou", TOU)

    done = cost(config, "--day", "2026-10-25")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[("main", "total", "night")][:3] == ["5.000", "0.5500", "2.75"]
    assert table[("main", "total", "day")][:3] == ["20.000", "0.9500", "19.00"]
    assert table[("main", "total", "evening")][:3] == ["7.500", "1.2000", "9.00"]
    assert table[("main", "total", "export")][:3] == ["2.000", "-0.2500", "-0.50"]
    assert table[("total", "", "")][0] == "32.500"
    assert table[("total", "", "")][2] == "31.50"

    done = cost(config, "--day", "2026-03-29")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[("main", "total", "night")][:3] == ["4.125", "0.5500", "2.27"]
    assert table[("main", "total", "day")][:3] == ["20.000", "0.9500", "19.00"]
    assert table[("main", "total", "evening")][:3] == ["7.375", "1.2000", "8.85"]
    assert table[("main", "total", "export")][:3] == ["2.000", "-0.2500", "-0.50"]
    assert table[("total", "", "")][0] == "31.500"
    assert table[("total", "", "")][2] == "30.87"


def test_a_counter_reset_inside_a_day_loses_nothing_it_could_know(
    influx: InfluxDB1, tmp_path: Path
) -> None:
    """2026-11-28 in Europe/London, a flat 0.245 GBP/kWh and 0.60 GBP a day: a 1 kW heater
    plug rebooted twice, at 12:07:30 (inside a quarter hour) and at 18:00:00 (on a boundary),
    each time counting again from 0: 24 h x 1 kW = 24 kWh, 5.88 + 0.60 = 6.48 GBP (a plain
    last-minus-first would say 1000 kWh less)."""
    tariff = {
        "timezone": "Europe/London",
        "currency": "GBP",
        "import_price": 0.245,
        "standing_charge_per_day": 0.60,
    }
    day = date(2026, 11, 28)
    resets = (
        datetime(2026, 11, 28, 12, 7, 30, tzinfo=LONDON),
        datetime(2026, 11, 28, 18, 0, tzinfo=LONDON),
    )
    write(
        influx,
        counter_lines(
            "reset", "heater", "energy_total_kwh", LONDON, day, day, lambda _: 1.0, resets=resets
        ),
    )
    config = site_files(tmp_path, influx, "reset", tariff)

    done = cost(config, "--day", "2026-11-28")

    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[("heater", "total", "flat")][:3] == ["24.000", "0.2450", "5.88"]
    assert table[("total", "", "")][2] == "6.48"


def energy_cost_points(
    influx: InfluxDB1, site: str
) -> dict[tuple[int, str, str, str], tuple[float, float]]:
    """(time, device, channel, period) -> (energy, cost) of measurement energy_cost."""
    out = {}
    q = f"SELECT energy, cost FROM longterm.energy_cost WHERE site = '{site}' GROUP BY *"  # noqa: S608
    for result in influx.query(q, db=DB, epoch="s"):
        for series in result.get("series", []):
            tags = series["tags"]
            for ts, energy, cost_value in series["values"]:
                out[(ts, tags["device"], tags["channel"], tags["period"])] = (energy, cost_value)
    return out


def test_write_stores_each_day_at_local_midnight_and_a_rerun_overwrites(
    influx: InfluxDB1, tmp_path: Path
) -> None:
    """--from 2026-10-24 --to 2026-10-26 --write (Saturday, the 25 h Sunday, Monday): one
    energy_cost point per day and period for the meter and a `bill` point per day, stamped at
    local midnight (22:00 UTC before the change, 23:00 UTC after). Hand bills: a 24 h day has
    night 9 h (4.5 kWh, 2.475), day 20 kWh (19.00), evening 7.5 kWh (9.00), export 2 kWh
    (-0.50): 34 kWh... import 32 kWh, 30.475 + 1.25 - 0.50 = 31.225 PLN; the 25 h day 31.50.
    Running it again (or for one day of it) writes the same series and times: nothing new."""
    first, last = date(2026, 10, 24), date(2026, 10, 26)
    lines = counter_lines("writes", "main", "energy_import_kwh", WARSAW, first, last, HOUSE)
    lines += counter_lines(
        "writes", "main", "energy_export_kwh", WARSAW, first, last, SOLAR, start_kwh=300.0
    )
    write(influx, lines)
    config = site_files(tmp_path, influx, "writes", TOU)

    done = cost(config, "--from", "2026-10-24", "--to", "2026-10-26", "--write")

    assert done.returncode == 0, done.stderr
    assert "energy_cost points written" in done.stdout
    points = energy_cost_points(influx, "writes")
    midnights = {
        first: int(datetime(2026, 10, 23, 22, tzinfo=UTC).timestamp()),
        date(2026, 10, 25): int(datetime(2026, 10, 24, 22, tzinfo=UTC).timestamp()),
        last: int(datetime(2026, 10, 25, 23, tzinfo=UTC).timestamp()),
    }
    assert len(points) == 3 * (4 + 1)  # night, day, evening, export, and the bill
    bills = {ts: value for (ts, device, _, period), value in points.items() if period == "bill"}
    assert sorted(bills) == sorted(midnights.values())
    assert bills[midnights[first]] == pytest.approx((32.0, 31.225))
    assert bills[midnights[date(2026, 10, 25)]] == pytest.approx((32.5, 31.5))
    assert bills[midnights[last]] == pytest.approx((32.0, 31.225))
    autumn = midnights[date(2026, 10, 25)]
    assert points[(autumn, "main", "total", "night")] == pytest.approx((5.0, 2.75))
    assert points[(autumn, "main", "total", "export")] == pytest.approx((2.0, -0.5))

    again = cost(config, "--day", "2026-10-25", "--write")
    assert again.returncode == 0, again.stderr
    assert energy_cost_points(influx, "writes") == points


def test_a_month_of_time_of_use_with_a_holiday_matches_the_hand_bill(
    influx: InfluxDB1, tmp_path: Path
) -> None:
    """February 2026 at a constant 1 kW, peak on weekdays 07-13 and 16-21 (11 h) at 1.18,
    off-peak otherwise at 0.64, Monday 16th a holiday: 19 peak days x 11 = 209 kWh (246.62),
    672 - 209 = 463 kWh off-peak (296.32), 28 x 1.25 standing: 577.94 PLN for 672 kWh."""
    tariff = {
        "timezone": "Europe/Warsaw",
        "currency": "PLN",
        "standing_charge_per_day": 1.25,
        "periods": [
            {
                "name": "peak",
                "price": 1.18,
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "hours": ["07-13", "16-21"],
            },
            {"name": "offpeak", "price": 0.64},
        ],
        "holidays": ["2026-02-16"],
    }
    write(
        influx,
        counter_lines(
            "month",
            "main",
            "energy_total_kwh",
            WARSAW,
            date(2026, 2, 1),
            date(2026, 2, 28),
            lambda _: 1.0,
        ),
    )
    config = site_files(tmp_path, influx, "month", tariff)

    done = cost(config, "--month", "2026-02")

    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[("main", "total", "peak")][:3] == ["209.000", "1.1800", "246.62"]
    assert table[("main", "total", "offpeak")][:3] == ["463.000", "0.6400", "296.32"]
    assert table[("standing charge", "", "")][2:4] == ["35.00", "28 days"]
    assert table[("total", "", "")][0] == "672.000"
    assert table[("total", "", "")][2] == "577.94"
    assert done.stderr == ""


def test_a_site_without_counters_is_said_on_stderr_and_billed_its_standing_charge(
    influx: InfluxDB1, tmp_path: Path
) -> None:
    """A site name the collector never wrote (a typo): the table holds the standing charge only,
    and one line on stderr says that no counter was found."""
    config = site_files(tmp_path, influx, "nowhere", FLAT)

    done = cost(config, "--day", "2026-11-29")

    assert done.returncode == 0, done.stderr
    assert rows(done.stdout)[("total", "", "")][2] == "1.25"
    assert done.stderr == (
        "no energy counter of site 'nowhere' in database 'homewatt' in or near these days:"
        " the bill is the standing charge alone (is the site or the database wrong?)\n"
    )
