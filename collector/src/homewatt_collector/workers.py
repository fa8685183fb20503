"""No worker of the collector ends on an unexpected exception.

The workers are the source loop (the main thread) and one forwarder thread per sink. An
exception none of them expects (a bug, a library's surprise: a token the HTTP client cannot
encode, say) is survived: logged as one ERROR line per kind and worker at most once a minute,
its traceback at DEBUG level (`--verbose`), counted in `homewatt_health.worker_restarts`, and
the worker goes on after a pause (the forwarder backs off 1-60 s, the loop waits for its next
slot). Without this, a forwarder thread would end silently and samples would pile up unsent.
"""

from __future__ import annotations

import logging
import threading
import traceback

from homewatt_collector.throttle import LogThrottle
from homewatt_common.redact import redact_urls

log = logging.getLogger(__name__)


class Restarts:
    """One worker's survived exceptions: counted (taken by the health sample) and logged."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._count = 0
        self._lock = threading.Lock()
        self._throttle = LogThrottle()

    def survived(self, exc: BaseException, going_on: str) -> None:
        """Count and log `exc`; `going_on` says when the worker goes on ("in 4 s")."""
        with self._lock:
            self._count += 1
        kind = type(exc).__name__
        if self._throttle.ready(kind):
            log.error(
                "%s: unexpected %s: %s; going on %s (the traceback with --verbose)",
                self.worker,
                kind,
                redact_urls(str(exc)) or "(no message)",
                going_on,
            )
        if log.isEnabledFor(logging.DEBUG):
            trace = "".join(traceback.format_exception(exc)).rstrip()
            log.debug("%s: the unexpected %s:\n%s", self.worker, kind, redact_urls(trace))

    def take(self) -> int:
        """Restarts since the last call (for the health sample)."""
        with self._lock:
            count, self._count = self._count, 0
        return count
