"""Expected results computed in Python from the points homewatt wrote, independently of
InfluxDB: calendar days and weeks from zoneinfo, energy from the counters, plain arithmetic.
Each function states the meaning the panel or rule gives its number."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from tests.grafana.dataset import Point

Key = tuple[str, ...]
Rows = dict[Key, dict[int, float]]  # series (group tag values) -> {time ms: value}


def local_bucket(ts: int, tz: str, period: str) -> int:
    """Start (epoch seconds) of the local hour, calendar day or week (from Monday) holding `ts`."""
    local = datetime.fromtimestamp(ts, UTC).astimezone(ZoneInfo(tz))
    if period == "hour":
        return int(local.replace(minute=0, second=0, microsecond=0).timestamp())
    day = local.date()
    if period == "week":
        day -= timedelta(days=day.weekday())
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).timestamp())


def grouped(points: Iterable[Point], group: tuple[str, ...]) -> dict[Key, list[Point]]:
    out: dict[Key, list[Point]] = {}
    for p in points:
        out.setdefault(tuple(p.tags[t] for t in group), []).append(p)
    return out


def readings(
    points: list[Point], field: str, start_ms: int, end_ms: int
) -> list[tuple[int, float]]:
    return sorted(
        (p.ts, float(p.fields[field]))
        for p in points
        if field in p.fields and start_ms <= p.ts * 1000 <= end_ms
    )


def energy_per_period(
    points: Iterable[Point],
    field: str,
    group: tuple[str, ...],
    *,
    tz: str,
    start_ms: int,
    end_ms: int,
    period: str,
) -> Rows:
    """kWh per local hour/day/week: the counter's last reading in the period minus its last
    reading in the previous period with readings (a drop, i.e. a counter reset, gives no row);
    the first period with readings in [start, end] gives none."""
    out: Rows = {}
    for key, series in grouped(points, group).items():
        last: dict[int, float] = {}
        for ts, value in readings(series, field, start_ms, end_ms):
            last[local_bucket(ts, tz, period)] = value  # readings are in time order
        starts = sorted(last)
        rows = {b * 1000: last[b] - last[a] for a, b in pairwise(starts) if last[b] - last[a] >= 0}
        if rows:
            out[key] = rows
    return out


def totals(rows: Rows) -> dict[Key, float]:
    return {key: sum(values.values()) for key, values in rows.items()}


def per_bucket(
    points: Iterable[Point],
    field: str,
    group: tuple[str, ...],
    *,
    start_ms: int,
    end_ms: int,
    bucket: Callable[[int], int],
    reduce: Callable[[list[float]], float],
) -> Rows:
    """`reduce` of the readings in each bucket (bucket(ts) -> bucket start, seconds)."""
    out: Rows = {}
    for key, series in grouped(points, group).items():
        buckets: dict[int, list[float]] = {}
        for ts, value in readings(series, field, start_ms, end_ms):
            buckets.setdefault(bucket(ts), []).append(value)
        if buckets:
            out[key] = {start * 1000: reduce(values) for start, values in buckets.items()}
    return out


def over_range(
    points: Iterable[Point],
    field: str,
    group: tuple[str, ...],
    *,
    start_ms: int,
    end_ms: int,
    reduce: Callable[[list[float]], float],
) -> dict[Key, float]:
    """`reduce` of all readings in the range, per series that has any."""
    out = {}
    for key, series in grouped(points, group).items():
        values = [v for _, v in readings(series, field, start_ms, end_ms)]
        if values:
            out[key] = reduce(values)
    return out


def last_of(
    points: Iterable[Point], field: str, group: tuple[str, ...], start_ms: int, end_ms: int
) -> dict[Key, tuple[int, float]]:
    """The newest reading in the range: (time ms, value), per series."""
    out = {}
    for key, series in grouped(points, group).items():
        values = readings(series, field, start_ms, end_ms)
        if values:
            ts, value = values[-1]
            out[key] = (ts * 1000, value)
    return out


def moving_average_of_counts(
    points: Iterable[Point],
    field: str,
    group: tuple[str, ...],
    *,
    start_ms: int,
    end_ms: int,
    width_s: int,
    window: int,
) -> dict[Key, float]:
    """The last value of moving_average(count(field), window) over GROUP BY time(width) fill(0):
    readings per bucket, buckets aligned to the epoch from the one holding the range's start to
    the one holding its end, the mean of the last `window` counts."""
    out = {}
    first_bucket = start_ms // 1000 // width_s * width_s
    last_bucket = end_ms // 1000 // width_s * width_s
    for key, series in grouped(points, group).items():
        values = readings(series, field, start_ms, end_ms)
        if not values:
            continue
        counts: dict[int, int] = {}
        for ts, _ in values:
            counts[ts // width_s * width_s] = counts.get(ts // width_s * width_s, 0) + 1
        buckets = range(first_bucket, last_bucket + 1, width_s)
        series_counts = [counts.get(b, 0) for b in buckets]
        out[key] = sum(series_counts[-window:]) / window
    return out


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
