"""Processes whose wall clock reads another instant: Debian's libfaketime 0.9.10 (installed by
scripts/bootstrap), preloaded into the process.

Only the wall clock (CLOCK_REALTIME: `time.time()`, `datetime.now()`) moves; the monotonic clock
is left alone (FAKETIME_DONT_FAKE_MONOTONIC), because a monotonic clock set back or ahead by
hours stalls or hurries a process's waits. The faked clock starts at the given instant when
the process starts and ticks at the real rate. Servers written in Go (InfluxDB, VictoriaMetrics)
read the clock through the vDSO and cannot be faked this way: keep them out of it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def wall_clock_from(start: int) -> dict[str, str]:
    """libfaketime's variables for a process whose wall clock starts at `start` (unix s) when
    the process starts and ticks on at the real rate; its monotonic clock untouched."""
    if not LIBFAKETIME.exists():
        pytest.fail(f"{LIBFAKETIME} is missing: scripts/bootstrap installs faketime")
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": "@" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start)),
        "TZ": "UTC",  # how libfaketime reads that start
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def shifted_clock_env(offset_s: float) -> dict[str, str]:
    """The environment (os.environ plus `wall_clock_from`'s variables) for a process started
    now whose wall clock runs `offset_s` seconds from the real one (to within a second:
    FAKETIME's start is given in whole seconds). `offset_s == 0` gives os.environ unchanged."""
    env = dict(os.environ)
    if offset_s != 0:
        env.update(wall_clock_from(round(time.time() + offset_s)))
    return env
