"""Slots on monotonic deadlines: no drift, a missed slot is skipped (never bunched), lateness kept.

Deadlines are spaced exactly `interval_s` apart on the monotonic clock and start on a whole
multiple of the interval on the wall clock, so a 1 s loop reads at xx:xx:xx.000 plus its lateness
and each slot's timestamp is a distinct whole second. If the wall clock is stepped or slewed
away from the deadlines by more than a tenth of the interval, the deadlines re-anchor to it.
Clock and sleep are injected, so tests run the scheduler on a simulated clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Re-anchor when the wall clock has moved this fraction of an interval away from the deadlines.
REANCHOR_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class Slot:
    index: int  # counts slots, including skipped ones, since start
    ts: int  # the slot's wall-clock time, a whole multiple of the interval (unix seconds)
    lateness_s: float  # how long after its deadline the slot started
    skipped: int  # slots missed just before this one (the loop was too late to serve them)


class Scheduler:
    def __init__(
        self,
        interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        """`sleep(seconds)` returns True when the loop should stop (threading.Event.wait does)."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep or _sleep_never_stopped

    def _wall_offset(self) -> float:
        return self._wall() - self._monotonic()

    def _next_boundary(self, mono: float) -> float:
        """The monotonic time of the next whole interval on the wall clock after `mono`."""
        offset = self._wall_offset()
        wall = mono + offset
        return math.ceil(wall / self.interval_s) * self.interval_s - offset

    def slots(self) -> Iterator[Slot]:
        interval = self.interval_s
        deadline = self._next_boundary(self._monotonic())
        index = 0
        while True:
            now = self._monotonic()
            if now < deadline and self._sleep(deadline - now):
                return
            now = self._monotonic()
            late = now - deadline
            skipped = 0
            if late >= interval:
                skipped = int(late // interval)
                deadline += skipped * interval
                index += skipped
                late = now - deadline
            wall_at_deadline = deadline + self._wall_offset()
            ts_units = round(wall_at_deadline / interval)
            drift = wall_at_deadline - ts_units * interval
            yield Slot(index=index, ts=int(ts_units * interval), lateness_s=late, skipped=skipped)
            index += 1
            deadline += interval
            if abs(drift) > REANCHOR_FRACTION * interval:
                deadline -= drift


def _sleep_never_stopped(seconds: float) -> bool:
    time.sleep(seconds)
    return False
