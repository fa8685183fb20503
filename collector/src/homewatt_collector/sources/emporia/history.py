"""`homewatt-collector emporia import --days N`: hourly and daily history of every channel.

For each account and each channel with chart history, getChartUsage at scale 1H and 1D from
local midnight N days ago up to the last complete hour and day, in windows of WINDOW_DAYS (20)
days (Vuegraf's history import, `time.py: calculateHistoryTimeRange`). Only complete buckets
are written (not the hour or day still running). homewatt's schema writes `power_w` averaged
over the bucket with tag `interval` `1h` or `1d` (no running sums: they start with the
instance's first minute); Vuegraf's writes `detailed` `Hour` (Wh in the hour, at its start)
and `Day` (Wh in the day, at 23:59:59 local in `timezone`), exactly as Vuegraf does.

Idempotent by series and timestamp: the range of buckets imported per channel and scale is
kept in the instance's state directory (IMPORTED_FILE), and a bucket inside it is never
written again, so a second run adds nothing (Vuegraf's `--historydays` writes everything
again). Buckets with no data (None) are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from homewatt_collector.models import Sample
from homewatt_collector.sources.emporia import decode, schema
from homewatt_collector.sources.emporia.api import EmporiaApi
from homewatt_collector.sources.emporia.config import EmporiaSourceConfig
from homewatt_collector.sources.emporia.decode import Channel

IMPORTED_FILE = "emporia-imported.json"
WINDOW_DAYS = 20
SCALES = ("1H", "1D")


@dataclass(frozen=True)
class Window:
    account: str
    channel: Channel
    scale: str
    start: datetime
    end: datetime


def windows(
    channels: list[Channel], scale: str, first: datetime, now: datetime, zone: ZoneInfo
) -> Iterator[Window]:
    """The calls for `scale` from `first` (local midnight) to the end of the last complete
    bucket before `now`, WINDOW_DAYS each."""
    if scale == "1H":
        end = decode.floor_to(now, "1H")
    else:
        end = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    for channel in channels:
        start = first
        while start < end:
            stop = min(start + timedelta(days=WINDOW_DAYS), end)
            yield Window(
                channel.account, channel, scale, start.astimezone(UTC), stop.astimezone(UTC)
            )
            start = stop


def first_day(now: datetime, days: int, zone: ZoneInfo) -> datetime:
    """Local midnight `days` days before `now`'s day."""
    local = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return local - timedelta(days=days)  # wall-clock arithmetic: local midnight again


class Imported:
    """The imported range per (channel key, scale): [first, last] bucket timestamps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ranges: dict[str, list[int]] = {}
        if path.exists():
            self.ranges = {
                k: [int(a), int(b)] for k, (a, b) in json.loads(path.read_text()).items()
            }

    def new(self, key: str, ts: int) -> bool:
        span = self.ranges.get(key)
        return span is None or not span[0] <= ts <= span[1]

    def add(self, key: str, stamps: list[int]) -> None:
        if not stamps:
            return
        span = self.ranges.get(key, [min(stamps), max(stamps)])
        self.ranges[key] = [min(span[0], *stamps), max(span[1], *stamps)]

    def save(self) -> None:
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(self.ranges, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)


def window_samples(
    config: EmporiaSourceConfig,
    site: str,
    api: EmporiaApi,
    window: Window,
    imported: Imported,
) -> tuple[list[Sample], list[int]]:
    """The samples of one window not imported before, and their bucket timestamps (the
    series' range key is the channel's key and the scale)."""
    channel = window.channel
    usage, first = api.chart(
        channel.device_gid, channel.channel_num, window.start, window.end, window.scale
    )
    zone = ZoneInfo(config.timezone)
    key = f"{channel.key}/{window.scale}"
    end = int(window.end.timestamp())
    samples: list[Sample] = []
    stamps: list[int] = []
    buckets = decode.chart_buckets(usage, first, "1H") if window.scale == "1H" else []
    if window.scale == "1D":
        starts = [(int(_day_start(first, i, zone).timestamp()), kwh) for i, kwh in enumerate(usage)]
        buckets = starts
    for start, kwh in buckets:
        if kwh is None or start >= end or not imported.new(key, start):
            continue
        stamps.append(start)
        samples.append(_sample(config, site, channel, window.scale, start, kwh, zone))
    return samples, stamps


def _day_start(first: datetime, index: int, zone: ZoneInfo) -> datetime:
    """Local midnight of the i-th day of a 1D chart (6 h in, away from DST changes)."""
    moment = (first + timedelta(hours=6, days=index)).astimezone(zone)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def local_day_seconds(start: int, zone: ZoneInfo) -> int:
    """The length in seconds of the local day starting at `start` (unix s, a local midnight in
    `zone`): 86,400, or 82,800 / 90,000 on the days the clocks go forward / back. (Aware
    datetimes of one zone subtract as wall clocks, always 24 h: hence unix seconds.)"""
    midnight = datetime.fromtimestamp(start, zone)
    return int((midnight + timedelta(days=1)).timestamp()) - start


def _sample(  # noqa: PLR0917 (one bucket of one channel)
    config: EmporiaSourceConfig,
    site: str,
    channel: Channel,
    scale: str,
    start: int,
    kwh: float,
    zone: ZoneInfo,
) -> Sample:
    if config.schema_ == "vuegraf":
        moment = datetime.fromtimestamp(start, UTC)
        ts = decode.end_of_local_day(moment, zone) if scale == "1D" else start
        return schema.vuegraf_sample(channel, scale, ts, kwh)
    if scale == "1D":  # a local day may have 23 or 25 hours
        kwh = kwh * 24 * 3600 / local_day_seconds(start, zone)
    return schema.homewatt_sample(site, channel, scale, start, kwh, None)


def run_import(
    config: EmporiaSourceConfig,
    site: str,
    apis: dict[str, EmporiaApi],
    state_dir: Path,
    days: int,
    *,
    put: Callable[[list[Sample]], None],
    progress: Callable[[int, int], None],
    now: datetime | None = None,
) -> int:
    """Import `days` days of history for every account into `put` (the outbox); `progress`
    (done, total) after each call. Returns the number of new samples. EmporiaError on a
    failure (what was imported before it is kept and recorded)."""
    moment = now or datetime.now(UTC)
    zone = ZoneInfo(config.timezone)
    first = first_day(moment, days, zone)
    imported = Imported(state_dir / IMPORTED_FILE)
    plan: list[Window] = []
    for account in config.accounts:
        api = apis[account.name]
        channels = [c for c in decode.channels_of(api.devices(), account) if c.has_history]
        for scale in SCALES:
            plan.extend(windows(channels, scale, first, moment, zone))
    added = 0
    try:
        for done, window in enumerate(plan, start=1):
            samples, stamps = window_samples(config, site, apis[window.account], window, imported)
            if samples:
                put(samples)
                added += len(samples)
            imported.add(f"{window.channel.key}/{window.scale}", stamps)
            progress(done, len(plan))
    finally:
        imported.save()
    return added
