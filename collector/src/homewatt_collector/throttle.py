"""At most one log line per kind of problem a minute: a fault that repeats every cycle must not
flood the journal."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

INTERVAL_S = 60.0


class LogThrottle:
    def __init__(self, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}

    def ready(self, kind: str) -> bool:
        """True (and remembered) when `kind` was not logged within the interval."""
        now = self._clock()
        if now - self._last.get(kind, -math.inf) < self.interval_s:
            return False
        self._last[kind] = now
        return True
