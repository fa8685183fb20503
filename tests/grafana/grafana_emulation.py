"""What Grafana 11.6 does to a dashboard query before InfluxDB sees it, re-implemented for the
tests (no Grafana server can run here). Each step names the Grafana source it follows:

1. The panel's time range (dashboard range, then the panel's relative time and time shift):
   scenes' PanelTimeRange (public/app/features/dashboard-scene/scene/PanelTimeRange.tsx) with
   `rangeUtil.describeTextRange` and `dateMath.parse` / `parseDateMath` (packages/grafana-data
   datetime/rangeutil.ts, datemath.ts), rounding (`/d`, `/w`, `/M`, `/y`) in the dashboard's time
   zone, weeks from Monday (the dashboards' `weekStart`), months subtracted the moment.js way.
2. `$__interval`: `rangeUtil.calculateInterval(range, maxDataPoints, minInterval)` with
   `roundInterval`'s ladder, the lower limit being the panel's `interval` or else the
   datasource's `timeInterval`.
3. Template variables, interpolated in the browser (TemplateSrv / scenes' sceneInterpolator):
   `${var:regex}` escapes each value with `escapeRegex` and joins several as `(a|b)`; the
   custom "All" value is inserted as it is; `${__timezone:raw}` is the dashboard's time zone.
   Any other variable syntax is refused here,
   so a query cannot use a form this emulation does not implement.
4. Macros, expanded by the InfluxDB datasource's backend (pkg/tsdb/influxdb/models/query.go,
   Build): `$timeFilter` -> `time >= <from>ms and time <= <to>ms`, then `$interval`,
   `$__interval_ms` and `$__interval` (gtime.FormatInterval: the largest whole unit).
   Alert rules get the same expansion over their relativeTimeRange, with no template variables.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# rangeutil.ts roundInterval: (upper bound exclusive, rounded value), in ms.
_LADDER = [
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
    (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000),
    (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
    (1814400000, 604800000), (3628800000, 2592000000),
]  # fmt: skip
_YEAR_MS = 31536000000
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
# rangeutil.ts rangeOptions with to = 'now' (describeTextRange looks up "<expr> to now").
_QUICK = {"now/d", "now/w", "now/M", "now/y"}


class EmulationError(ValueError):
    """A query or panel uses something this emulation of Grafana does not implement."""


def round_interval(interval_ms: float) -> int:
    for bound, value in _LADDER:
        if interval_ms < bound:
            return value
    return _YEAR_MS


def interval_to_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|[smhdwMy])", text)
    if not match:
        raise EmulationError(f"interval {text!r}")
    count, unit = int(match.group(1)), match.group(2)
    return count if unit == "ms" else count * _UNITS_S[unit] * 1000


def format_interval(ms: int) -> str:
    """gtime.FormatInterval."""
    for unit, size in (("y", _YEAR_MS), ("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms >= 1 else "1ms"


# ------------------------------------------------------------------------------- date math


def _start_of(t: datetime, unit: str) -> datetime:
    if unit == "d":
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return _local(day.replace(tzinfo=None) - timedelta(days=day.weekday()), t.tzinfo)
    if unit == "M":
        return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "y":
        return t.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "h":
        return t.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return t.replace(second=0, microsecond=0)
    raise EmulationError(f"rounding to {unit!r}")


def _local(naive: datetime, tz: object) -> datetime:
    """A wall-clock time in `tz`, normalised (moment-timezone shifts nonexistent times forward)."""
    assert isinstance(tz, ZoneInfo)
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz)


def _add(t: datetime, count: int, unit: str) -> datetime:
    tz = t.tzinfo
    naive = t.replace(tzinfo=None)
    if unit in ("M", "y"):
        months = count * (12 if unit == "y" else 1)
        total = naive.month - 1 + months
        year, month = naive.year + total // 12, total % 12 + 1
        day = min(naive.day, calendar.monthrange(year, month)[1])  # moment clamps to month end
        return _local(naive.replace(year=year, month=month, day=day), tz)
    if unit in ("d", "w"):
        return _local(naive + timedelta(days=count * (7 if unit == "w" else 1)), tz)
    return (t.astimezone(UTC) + timedelta(seconds=count * _UNITS_S[unit])).astimezone(tz)


def parse_date_math(expr: str, base: datetime, round_up: bool) -> datetime:
    """datemath.ts parseDateMath: `-1M/M`, `+2d`, `/d` ... applied to `base` in its zone."""
    t = base
    i = 0
    while i < len(expr):
        op = expr[i]
        if op == "/":
            unit = expr[i + 1]
            start = _start_of(t, unit)
            if round_up:  # the last millisecond of the unit (moment's endOf)
                start = (
                    _add(start, 1, unit).astimezone(UTC) - timedelta(milliseconds=1)
                ).astimezone(start.tzinfo)
            t = start
            i += 2
            continue
        match = re.match(r"([+-])(\d+)([smhdwMy])", expr[i:])
        if not match:
            raise EmulationError(f"date math {expr!r}")
        sign = 1 if match.group(1) == "+" else -1
        t = _add(t, sign * int(match.group(2)), match.group(3))
        i += match.end()
    return t


def parse(text: str, now: datetime, round_up: bool) -> datetime:
    """dateMath.parse for 'now...' expressions."""
    if not text.startswith("now"):
        raise EmulationError(f"absolute time {text!r}")
    return parse_date_math(text[3:], now, round_up)


def _describe(expr: str) -> tuple[str, str]:
    """rangeUtil.describeTextRange: (from, to) of a panel's relative time."""
    if "now" not in expr:
        expr = "now-" + expr
    if expr in _QUICK:
        return expr, "now"
    if not re.match(r"^now[-+]\d+\w", expr):
        raise EmulationError(f"relative time {expr!r}")
    return expr, "now"


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # aware, in the dashboard's zone
    end: datetime

    @property
    def from_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


def panel_range(dashboard: dict[str, object], panel: dict[str, object], now: datetime) -> TimeRange:
    """The time range a panel's queries get (dashboard range, then relative time, time shift)."""
    time = dashboard["time"]
    assert isinstance(time, dict)
    start = parse(time["from"], now, round_up=False)
    end = parse(time["to"], now, round_up=True)
    time_from = panel.get("timeFrom")
    if isinstance(time_from, str) and time_from:
        f, t = _describe(time_from)
        start, end = parse(f, now, round_up=False), parse(t, now, round_up=False)
    time_shift = panel.get("timeShift")
    if isinstance(time_shift, str) and time_shift:
        _describe(time_shift)
        start = parse_date_math("-" + time_shift, start, round_up=False)
        end = parse_date_math("-" + time_shift, end, round_up=True)
    return TimeRange(start, end)


def interval_ms(
    panel: dict[str, object], time_range: TimeRange, resolution: int, ds_min: str
) -> int:
    """rangeUtil.calculateInterval with the panel's min interval or the datasource's."""
    low = interval_to_ms(str(panel.get("interval") or ds_min))
    computed = round_interval((time_range.to_ms - time_range.from_ms) / resolution)
    return max(computed, low)


# ------------------------------------------------------------------------- interpolation


def escape_regex(value: str) -> str:
    """@grafana/data escapeRegex."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


@dataclass
class Variables:
    """The dashboard's template variables as a user set them: a list of values, or ALL."""

    values: dict[str, list[str] | None] = field(default_factory=dict)  # None: "All"
    all_value: dict[str, str] = field(default_factory=dict)

    def regex(self, name: str) -> str:
        if name not in self.values:
            raise EmulationError(f"variable {name!r} has no value in this test")
        chosen = self.values[name]
        if chosen is None:
            return self.all_value[name]  # a custom all value is inserted unformatted
        escaped = [escape_regex(v) for v in chosen]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::([A-Za-z]+))?\}|\[\[(\w+)\]\]|\$([A-Za-z_]\w*)")
_BACKEND = {"timeFilter", "interval", "__interval", "__interval_ms"}


def interpolate(query: str, variables: Variables, timezone: str) -> str:
    """The browser's step: template variables and global variables; backend macros untouched."""

    def replace(match: re.Match[str]) -> str:
        name, fmt, legacy, plain = match.groups()
        if legacy:
            raise EmulationError(f"[[{legacy}]] syntax")
        if plain:
            if plain in _BACKEND:
                return match.group(0)
            raise EmulationError(f"${plain}: write ${{{plain}:regex}} so the format is explicit")
        if name == "__timezone" and fmt == "raw":
            return timezone
        if fmt == "regex":
            return variables.regex(name)
        raise EmulationError(f"${{{name}:{fmt}}}")

    return _VARIABLE.sub(replace, query)


def expand_macros(query: str, time_range: TimeRange, interval: int) -> str:
    """pkg/tsdb/influxdb/models/query.go Build, for a raw query."""
    time_filter = f"time >= {time_range.from_ms}ms and time <= {time_range.to_ms}ms"
    query = query.replace("$timeFilter", time_filter)
    query = query.replace("$interval", format_interval(interval))
    query = query.replace("$__interval_ms", str(interval))
    return query.replace("$__interval", format_interval(interval))


def alert_range(relative: dict[str, int], now: datetime) -> TimeRange:
    """An alert query's range: relativeTimeRange seconds before the evaluation time."""
    return TimeRange(
        now - timedelta(seconds=relative["from"]), now - timedelta(seconds=relative.get("to", 0))
    )
