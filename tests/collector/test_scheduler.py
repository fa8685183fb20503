"""The scheduler on a simulated clock: no drift, missed slots skipped, lateness recorded."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from homewatt_collector.scheduler import Scheduler, Slot


class SimClock:
    """Monotonic and wall clocks that only move when the scheduler sleeps or work is simulated."""

    def __init__(self, mono: float = 1000.0, wall: float = 1_700_000_000.3) -> None:
        self.mono = mono
        self.offset = wall - mono

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.mono + self.offset

    def sleep(self, seconds: float) -> bool:
        self.mono += seconds
        return False


def run(clock: SimClock, slots: int, work: Callable[[Slot], float] = lambda _: 0.0) -> list[Slot]:
    scheduler = Scheduler(1, monotonic=clock.monotonic, wall=clock.wall, sleep=clock.sleep)
    out = []
    for slot in itertools.islice(scheduler.slots(), slots):
        out.append(slot)
        clock.mono += work(slot)
    return out


def test_slots_fall_on_whole_wall_clock_seconds_without_drift_over_an_hour() -> None:
    clock = SimClock()
    slots = run(clock, 3600, work=lambda _: 0.013)  # each cycle takes 13 ms of work
    assert [s.ts for s in slots] == list(range(1_700_000_001, 1_700_000_001 + 3600))
    assert all(abs(s.lateness_s) < 1e-6 for s in slots)
    assert sum(s.skipped for s in slots) == 0


def test_a_slow_cycle_skips_the_missed_slots_instead_of_bunching_them() -> None:
    clock = SimClock()
    slots = run(clock, 5, work=lambda s: 2.5 if s.index == 1 else 0.0)
    # slot 1 ends 3.5 s after slot 0 began: slot 2 is missed, slot 3 served 0.5 s late
    assert [s.ts - slots[0].ts for s in slots] == [0, 1, 3, 4, 5]
    assert [s.skipped for s in slots] == [0, 0, 1, 0, 0]
    assert abs(slots[2].lateness_s - 0.5) < 1e-6


def test_lateness_is_how_long_after_its_deadline_a_slot_started() -> None:
    clock = SimClock()
    slots = run(clock, 3, work=lambda s: 1.2 if s.index == 0 else 0.0)
    assert [s.skipped for s in slots] == [0, 0, 0]
    assert abs(slots[1].lateness_s - 0.2) < 1e-6


def test_a_stepped_wall_clock_re_anchors_the_deadlines_to_whole_seconds() -> None:
    clock = SimClock()
    scheduler = Scheduler(1, monotonic=clock.monotonic, wall=clock.wall, sleep=clock.sleep)
    slots = scheduler.slots()
    first = next(slots)
    clock.offset += 0.4  # NTP steps the wall clock forward by 400 ms
    stepped = [next(slots) for _ in range(3)]
    timestamps = [first.ts] + [s.ts for s in stepped]
    assert len(set(timestamps)) == 4, "every slot keeps a distinct second"
    # after re-anchoring, deadlines sit on whole wall-clock seconds again
    assert abs(clock.wall() % 1.0) < 1e-6 or abs((clock.wall() % 1.0) - 1) < 1e-6


def test_the_loop_ends_when_sleep_reports_a_stop() -> None:
    clock = SimClock()
    calls = []

    def sleep(seconds: float) -> bool:
        calls.append(seconds)
        clock.mono += seconds
        return len(calls) >= 3

    scheduler = Scheduler(1, monotonic=clock.monotonic, wall=clock.wall, sleep=sleep)
    assert len(list(scheduler.slots())) == 2
