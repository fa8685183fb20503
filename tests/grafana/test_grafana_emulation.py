"""The emulation of Grafana's query preparation does what Grafana's code does (the cases are
those of Grafana's own unit tests where they exist: rangeutil, datemath, TemplateSrv)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.grafana.grafana_emulation import (
    EmulationError,
    TimeRange,
    Variables,
    escape_regex,
    expand_macros,
    format_interval,
    interpolate,
    panel_range,
    parse,
    round_interval,
)

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("ms", "rounded"),
    [(5, 1), (900, 1000), (1499, 1000), (3000, 2000), (86400, 60000), (21600, 20000),
     (2592000, 1800000), (3600000 * 30, 86400000)],
)  # fmt: skip
def test_intervals_are_rounded_like_rangeutil(ms: int, rounded: int) -> None:
    assert round_interval(ms) == rounded


@pytest.mark.parametrize(
    ("ms", "text"), [(1000, "1s"), (60000, "1m"), (90000, "1m"), (86400000, "1d"), (500, "500ms")]
)
def test_intervals_are_formatted_like_gtime(ms: int, text: str) -> None:
    assert format_interval(ms) == text


def test_rounding_to_days_and_weeks_happens_in_the_dashboards_zone() -> None:
    now = at(2026, 3, 30, 10, 15)  # the Monday after the spring change
    assert parse("now/d", now, round_up=False) == at(2026, 3, 30)
    assert parse("now-1d/d", now, round_up=False) == at(2026, 3, 29)
    end = parse("now-1d/d", now, round_up=True)
    assert end.isoformat() == "2026-03-29T23:59:59.999000+02:00"
    assert round((end.timestamp() - at(2026, 3, 29).timestamp()) * 1000) == 23 * 3600000 - 1
    assert parse("now/w", at(2026, 4, 2, 9), round_up=False) == at(2026, 3, 30)


def test_months_are_subtracted_and_clamped_like_moment() -> None:
    now = at(2026, 3, 31, 12, 30)
    assert parse("now-1M", now, round_up=False) == at(2026, 2, 28, 12, 30)
    assert parse("now-1M/M", now, round_up=False) == at(2026, 2, 1)
    assert parse("now-1M/M", now, round_up=True).isoformat() == "2026-02-28T23:59:59.999000+01:00"


def test_panel_relative_time_and_time_shift() -> None:
    dashboard = {"time": {"from": "now-24h", "to": "now"}}
    now = at(2026, 11, 30, 8, 3, 45)
    this_month = panel_range(dashboard, {"timeFrom": "now/M"}, now)
    assert (this_month.start, this_month.end) == (at(2026, 11, 1), now)
    last_month = panel_range(dashboard, {"timeFrom": "now/M", "timeShift": "1M/M"}, now)
    assert last_month.start == at(2026, 10, 1)
    assert last_month.end.isoformat() == "2026-10-31T23:59:59.999000+01:00"
    live = panel_range(dashboard, {"timeFrom": "15m"}, now)
    assert (live.to_ms - live.from_ms) == 900000


def test_variables_are_regex_escaped_and_joined() -> None:
    assert escape_regex("cabin-2.main/x") == "cabin-2\\.main\\/x"
    variables = Variables({"site": ["home", "cabin-2.b"], "device": None}, {"device": ".*"})
    query = 'WHERE "site" =~ /^${site:regex}$/ AND "device" =~ /^${device:regex}$/'
    assert interpolate(query, variables, "Europe/Berlin") == (
        'WHERE "site" =~ /^(home|cabin-2\\.b)$/ AND "device" =~ /^.*$/'
    )
    assert interpolate("tz('${__timezone:raw}')", variables, "X") == "tz('X')"


@pytest.mark.parametrize("query", ["$site", "[[site]]", "${site}", "${site:csv}", "${__from}"])
def test_variable_forms_this_emulation_does_not_implement_are_refused(query: str) -> None:
    with pytest.raises(EmulationError):
        interpolate(query, Variables({"site": ["x"]}), "X")


def test_backend_macros_expand_like_the_influxdb_datasource() -> None:
    tr = TimeRange(at(2026, 1, 1), at(2026, 1, 2))
    query = "WHERE $timeFilter GROUP BY time($__interval) -- $__interval_ms"
    assert expand_macros(query, tr, 60000) == (
        f"WHERE time >= {tr.from_ms}ms and time <= {tr.to_ms}ms GROUP BY time(1m) -- 60000"
    )
