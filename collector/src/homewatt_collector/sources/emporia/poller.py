"""One thread per account: once a minute (`lag_s` after it), the last minute of every channel,
the gaps since each channel's high-water mark, and, with `detailed`, per-second data once an
hour.

Each poll:
1. logs in if needed (api.py) and lists the account's devices (at the first poll, every
   DISCOVER_S, and when a usage names a device not seen yet);
2. asks getDeviceListUsages (scale 1MIN, kWh) at `now - lag_s`. homewatt takes the answer as
   the last full minute before that instant (pyemvue's author: "the API will return the last
   full minute data, not the current partial one", magico13/ha-emporia-vue PR #152); Vuegraf's
   schema stamps it at the start of the instant's minute, as Vuegraf does;
3. backfills, for a channel with chart history whose high-water mark is more than a minute
   behind, the minutes in between from getChartUsage (scale 1MIN) in calls of at most
   MINUTE_WINDOW (12 h), reaching back at most MINUTE_REACH (7 days) (Vuegraf `influx.py`;
   Emporia answers 400 to 24 h windows, vuegraf#27), in time order, then adds the live minute:
   the running sums take every minute once, in order (ledger.py);
4. in Vuegraf's schema with `detailed`, when the UTC hour has changed since the last poll,
   the hour before (getDeviceListUsages, scale 1H, at the hour's start: a `Hour` point there),
   and when the local day (`timezone`) has changed, the day before (scale 1D, at 23:59:59
   local of that day: a `Day` point), as Vuegraf's loop does (`vuegraf.py`, `collect.py`);
5. with `detailed`, at most once an hour (Emporia asks for it: per-second data is expensive),
   the seconds since the channel's second high-water mark, at most SECOND_REACH (3 h) back, in
   calls of at most SECOND_WINDOW (1 h).

A failure (EmporiaError: Emporia unreachable, slow, failing, an API change, a refused login)
ends the poll, is counted as one error on every device of the account, logged once, and the
next poll is after a backoff: 1, 2, 4... up to MAX_BACKOFF_MIN minutes; 5, 10, 20, 30
(AUTH_BACKOFF_MIN) after a refused login. The minutes missed meanwhile are backfilled by the
next good poll.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from homewatt_collector.models import DeviceStatus, Sample
from homewatt_collector.sources.emporia import decode, schema
from homewatt_collector.sources.emporia.api import EmporiaApi, EmporiaError
from homewatt_collector.sources.emporia.config import EmporiaAccountConfig, EmporiaSourceConfig
from homewatt_collector.sources.emporia.decode import Channel
from homewatt_collector.sources.emporia.ledger import ChannelState
from homewatt_collector.throttle import LogThrottle

log = logging.getLogger(__name__)

MINUTE = 60
MINUTE_WINDOW = timedelta(hours=12)
MINUTE_REACH = timedelta(days=7)
SECOND_WINDOW = timedelta(hours=1)
SECOND_REACH = timedelta(hours=3)
DETAILED_EVERY_S = 3600
DISCOVER_S = 3600
MAX_BACKOFF_MIN = 15
AUTH_FIRST_MIN = 5
AUTH_BACKOFF_MIN = 30
EMPTY_RETRY_S = 600  # a channel whose backfill found nothing is not asked again for this long


class Stopped(Exception):
    """The source is closing: a long backfill ends between two calls (nothing of it is kept:
    the next start fetches it again from the high-water marks)."""


@dataclass
class PollResult:
    """One poll of an account: samples, the channel states after them (to be saved once the
    samples are in the outbox), and per-device statuses."""

    account: str
    samples: list[Sample] = field(default_factory=list)
    states: dict[str, ChannelState] = field(default_factory=dict)
    devices: list[DeviceStatus] = field(default_factory=list)
    errors: int = 0


class AccountPoller:
    def __init__(  # noqa: PLR0917 (the source wires each poller once)
        self,
        config: EmporiaSourceConfig,
        account: EmporiaAccountConfig,
        api: EmporiaApi,
        site: str,
        states: dict[str, ChannelState],
        results: queue.Queue[PollResult],
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`states`: this account's channel states by key (loaded from the ledger)."""
        self.config = config
        self.account = account
        self.api = api
        self.site = site
        self.states = states
        self.results = results
        self.stop = stop
        self.clock = clock
        self.vuegraf = config.schema_ == "vuegraf"
        self.channels: dict[tuple[int, str], Channel] = {}
        self.discovered_at = -float(DISCOVER_S)
        self.detailed_at = -float(DETAILED_EVERY_S)
        self.work: dict[str, ChannelState] = {}
        self.empty_until: dict[str, float] = {}
        self.failures = 0
        self.auth_failed = False
        self.throttle = LogThrottle()
        self.answering: bool | None = None
        self.zone = ZoneInfo(config.timezone)
        self.hour_seen: int | None = None  # Vuegraf's rollups: the hour and the local day
        self.day_seen: datetime | None = None  # of the last poll (None: not yet)
        self.thread = threading.Thread(
            target=self._run, name=f"emporia-{account.name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        next_at = self.clock()
        while not self.stop.wait(max(next_at - self.clock(), 0.0)):
            try:
                result = self.poll()
            except Exception as exc:  # a bug: counted, logged, retried like a failure
                log.exception("emporia %s: unexpected %s", self.account.name, type(exc).__name__)
                result = self._failed(EmporiaError(f"unexpected {type(exc).__name__}: {exc}"))
            self.results.put(result)
            next_at = self._next_poll()

    def _next_poll(self) -> float:
        """The next instant lag_s after a whole `interval_min` minute (at 12:00:02 with lag 5 s
        that is 12:00:05, not 12:01:05: a poll at a minute's first seconds, such as the first
        one after a start, does not skip that minute's poll), or later when backing off: 1, 2,
        4... up to MAX_BACKOFF_MIN minutes after failures, AUTH_FIRST_MIN, 2 x... up to
        AUTH_BACKOFF_MIN after a refused login (a wrong password is not hammered)."""
        step = self.config.interval_min * MINUTE
        now = self.clock()
        slot = now - self.config.lag_s  # the poll at `at` asks for the minute before at - lag_s
        at = slot - slot % step + step + self.config.lag_s
        if self.failures:
            if self.auth_failed:
                pause = min(AUTH_FIRST_MIN * 2 ** (self.failures - 1), AUTH_BACKOFF_MIN)
            else:
                pause = min(2 ** (self.failures - 1), MAX_BACKOFF_MIN)
            at = max(at, now + pause * MINUTE - MINUTE)
        return at

    def poll(self) -> PollResult:
        """One poll (see the module doc); an EmporiaError is counted in the result."""
        try:
            result = self._poll()
        except EmporiaError as exc:
            return self._failed(exc)
        except Stopped:
            return PollResult(self.account.name)
        self.failures = 0
        if self.answering is False:
            log.info("emporia %s answers again", self.account.name)
        self.answering = True
        return result

    def _failed(self, exc: EmporiaError) -> PollResult:
        self.failures += 1
        self.auth_failed = exc.auth
        if exc.auth:
            self.api.logout()
        if self.answering is not False or self.throttle.ready(str(exc)):
            log.error("%s (retried in a few minutes; the gap is backfilled)", exc)
        self.answering = False
        devices = {(c.device, c.model) for c in self.channels.values()}
        statuses = [  # backoff: retried after growing pauses (_next_poll)
            DeviceStatus(d, m, errors=1, ok=False, backoff=True) for d, m in sorted(devices)
        ]
        return PollResult(self.account.name, devices=statuses, errors=1)

    def _poll(self) -> PollResult:
        now = self.clock()
        if now - self.discovered_at >= DISCOVER_S or not self.channels:
            self._discover(now)
        instant = datetime.fromtimestamp(int(now) - self.config.lag_s, UTC)
        gids = sorted({c.device_gid for c in self.channels.values()})
        answer = self.api.minute_usage(gids, instant)
        if any((gid, num) not in self.channels for gid, num, _ in answer.usage):
            self._discover(now, [(gid, num) for gid, num, _ in answer.usage])
        # Vuegraf stamps the answer at its instant's minute; homewatt at the minute before
        live = int(decode.floor_to(instant, "1MIN").timestamp()) - (0 if self.vuegraf else MINUTE)
        result = PollResult(self.account.name)
        # on a copy: a poll that fails half way leaves the states as they were
        self.work = {key: replace(state) for key, state in self.states.items()}
        read: dict[str, bool] = {}
        models: dict[str, str] = {}
        for gid, num, kwh in answer.usage:
            channel = self.channels.get((gid, num))
            if channel is None:
                continue
            models[channel.device] = channel.model
            read[channel.device] = read.get(channel.device, False) or kwh is not None
            self._channel(result, channel, live, kwh, now)
        if self.vuegraf and self.config.detailed:
            self._rollups(result, instant, gids)
        if self.config.detailed and now - self.detailed_at >= DETAILED_EVERY_S:
            for channel in self.channels.values():
                if channel.has_history and channel.key in self.work:
                    self._seconds(result, channel, instant)
            self.detailed_at = now
        self.states = self.work
        result.devices = [
            DeviceStatus(device, models[device], errors=0, ok=ok)
            for device, ok in sorted(read.items())
        ]
        return result

    def _rollups(self, result: PollResult, instant: datetime, gids: list[int]) -> None:
        """Vuegraf's Hour and Day points when the hour or the local day changed."""
        hour = int(decode.floor_to(instant, "1H").timestamp())
        day = instant.astimezone(self.zone).replace(hour=23, minute=59, second=59, microsecond=0)
        if self.hour_seen is not None and hour != self.hour_seen:
            self._rollup(result, gids, datetime.fromtimestamp(self.hour_seen, UTC), "1H")
        if self.day_seen is not None and day != self.day_seen:
            self._rollup(result, gids, self.day_seen.astimezone(UTC), "1D")
        self.hour_seen, self.day_seen = hour, day

    def _rollup(self, result: PollResult, gids: list[int], at: datetime, scale: str) -> None:
        answer = self.api.minute_usage(gids, at, scale)
        ts = int(at.timestamp())
        for gid, num, kwh in answer.usage:
            channel = self.channels.get((gid, num))
            if channel is not None and kwh is not None:
                result.samples.append(schema.vuegraf_sample(channel, scale, ts, kwh))

    def _discover(self, now: float, seen: list[tuple[int, str]] | None = None) -> None:
        """The account's channels: the device list's, plus those a usage answer has (`seen`:
        Balance and TotalUsage are only there)."""
        seen = (
            seen
            if seen is not None
            else [(c.device_gid, c.channel_num) for c in self.channels.values()]
        )
        channels = decode.channels_of(self.api.devices(), self.account, seen)
        self.channels = {(c.device_gid, c.channel_num): c for c in channels}
        self.discovered_at = now
        log.info(
            "emporia %s: %d devices, %d channels",
            self.account.name,
            len({c.device_gid for c in channels}),
            len(channels),
        )

    def _channel(
        self, result: PollResult, channel: Channel, live: int, kwh: float | None, now: float
    ) -> None:
        state = self.work.get(channel.key)
        if state is None:  # a new channel: its sums start with this minute
            state = self.work[channel.key] = ChannelState(minute=live - MINUTE)
        behind = state.minute < live - MINUTE and channel.has_history
        if behind and now >= self.empty_until.get(channel.key, 0.0):
            self._backfill(result, channel, state, live)
        if kwh is not None:
            self._add(result, channel, state, live, kwh)
        result.states[channel.key] = replace(state)

    def _backfill(
        self, result: PollResult, channel: Channel, state: ChannelState, live: int
    ) -> None:
        """The minutes after the high-water mark and before `live`, in windows, in order."""
        end = datetime.fromtimestamp(live, UTC)
        start = max(datetime.fromtimestamp(state.minute + MINUTE, UTC), end - MINUTE_REACH)
        found = 0
        for ts, kwh in self._chart(channel, start, end, MINUTE_WINDOW, "1MIN"):
            if kwh is not None and ts < live:
                found += self._add(result, channel, state, ts, kwh)
        if found:
            log.info("emporia %s: %s: %d minutes backfilled", self.account.name, channel.key, found)
            self.empty_until.pop(channel.key, None)
        else:
            self.empty_until[channel.key] = self.clock() + EMPTY_RETRY_S

    def _chart(
        self, channel: Channel, start: datetime, end: datetime, window: timedelta, scale: str
    ) -> Iterator[tuple[int, float | None]]:
        """(bucket start in unix s, kWh or None) of `channel` from `start` to `end`, one API
        call per `window` (the API's limit for `scale`), in time order; Stopped between calls
        once the source closes."""
        while start < end:
            self._check_stop()
            stop = min(start + window, end)
            usage, first = self.api.chart(
                channel.device_gid, channel.channel_num, start, stop, scale
            )
            yield from decode.chart_buckets(usage, first, scale)
            start = stop

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped

    def _add(
        self, result: PollResult, channel: Channel, state: ChannelState, ts: int, kwh: float
    ) -> bool:
        limit = self.config.max_power_w
        if abs(decode.average_power_w(kwh, "1MIN")) > limit:
            result.errors += 1
            if self.throttle.ready(f"implausible {channel.key}"):
                log.warning(
                    "emporia %s: %s: %g kWh in the minute at %d is more than max_power_w %g W"
                    " allows: not stored",
                    self.account.name,
                    channel.key,
                    kwh,
                    ts,
                    limit,
                )
            return False
        if not state.add(ts, kwh):
            return False
        if self.vuegraf:
            result.samples.append(schema.vuegraf_sample(channel, "1MIN", ts, kwh))
        else:
            result.samples.append(
                schema.homewatt_sample(self.site, channel, "1MIN", ts, kwh, state)
            )
        return True

    def _seconds(self, result: PollResult, channel: Channel, instant: datetime) -> None:
        state = self.work[channel.key]
        end = decode.floor_to(instant, "1S")
        start = max(datetime.fromtimestamp(state.second + 1, UTC), end - SECOND_REACH)
        for ts, kwh in self._chart(channel, start, end, SECOND_WINDOW, "1S"):
            if kwh is None or ts <= state.second or ts >= int(end.timestamp()):
                continue
            state.second = ts
            if self.vuegraf:
                result.samples.append(schema.vuegraf_sample(channel, "1S", ts, kwh))
            else:
                result.samples.append(
                    schema.homewatt_sample(self.site, channel, "1S", ts, kwh, None)
                )
        result.states[channel.key] = replace(state)
