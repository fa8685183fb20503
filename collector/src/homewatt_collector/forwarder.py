"""The forwarder: moves batches from one outbox to one sink, oldest first, until stopped.

A batch leaves the outbox only after the sink acknowledged it. Transient failures (connection,
timeout, 429, 5xx) are retried forever with jittered exponential backoff (honouring Retry-After);
a wrong token/org/bucket is retried at the longest backoff, data kept. A batch the server refuses
(another 4xx) is split in halves until the refused point is alone; that point is quarantined and
everything else delivered. A 422 partial write (InfluxDB stored all but N points: older than
the bucket's retention, a field type conflict) acknowledges the batch, logs the server's
message once and counts N in `sink_rejected`: no bisection. An unexpected exception never
ends the thread (workers.py): it is counted as a sink error and a worker restart, and delivery
goes on after a backoff. A batch being sent (up to `batch_size` samples, retried for as long as
the sink fails) is not protected in the outbox: a full outbox drops its oldest samples, in
flight or not, and the batch's acknowledgement then deletes only what is still there.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from homewatt_collector.errors import (
    SinkPartialWrite,
    SinkRejected,
    SinkUnauthorized,
    SinkUnavailable,
)
from homewatt_collector.outbox import Entry, Outbox
from homewatt_collector.sinks import Sink
from homewatt_collector.workers import Restarts

log = logging.getLogger(__name__)

PROBE_EVERY_S = 4.0  # during a backoff after a connection error: is the server back?
# a cycle stored this much before the flush interval is over still wakes the forwarder (the
# loop's 1 s slots and the forwarder's timer are not in phase)
IDLE_TOLERANCE_S = 0.5


class Stopped(Exception):
    """Shutdown was asked for while waiting to retry."""


@dataclass(frozen=True)
class Backoff:
    min_s: float = 1.0
    max_s: float = 60.0


class Forwarder:
    def __init__(
        self,
        outbox: Outbox,
        sink: Sink,
        stop: threading.Event,
        *,
        batch_size: int = 5000,
        backoff: Backoff = Backoff(),
        idle_poll_s: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.sink = sink
        self.batch_size = batch_size
        self.backoff = backoff
        self.idle_poll_s = idle_poll_s
        self.wake = threading.Event()
        self.paced = False  # a loop calls cycle_stored() after each cycle (see there)
        self._last_send = time.monotonic()
        self.state = "starting"
        self._stop = stop
        self._errors = 0
        self._errors_lock = threading.Lock()
        self._rejected = 0  # points dropped by partial writes (422), since the last take
        self._probe = False  # probe the server during this backoff (see _sleep)
        self._failing_since: float | None = None
        self._failures = 0
        self._jitter = wait_random_exponential(
            multiplier=backoff.min_s, min=backoff.min_s, max=backoff.max_s
        )
        self._thread: threading.Thread | None = None
        self.restarts = Restarts(f"sink {sink.name} forwarder")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"forwarder-{self.sink.name}", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def cycle_stored(self) -> None:
        """The loop stored a cycle's samples: wake the forwarder if its flush is due. So it
        sends in the quiet part of a slot, just after the samples, rather than at a moment of
        its own that may fall on the next slot's start (under load, a thread that holds the
        GIL when the loop's deadline comes delays the loop: bench/README.md). Once called, the
        forwarder's own timer is only a fallback (twice `idle_poll_s`)."""
        self.paced = True
        if time.monotonic() - self._last_send >= self.idle_poll_s - IDLE_TOLERANCE_S:
            self.wake.set()

    def take_errors(self) -> int:
        """Sink errors since the last call (for the health sample)."""
        with self._errors_lock:
            errors, self._errors = self._errors, 0
        return errors

    def take_rejected(self) -> int:
        """Points the server dropped from partial writes since the last call."""
        with self._errors_lock:
            rejected, self._rejected = self._rejected, 0
        return rejected

    def take_restarts(self) -> int:
        """Unexpected exceptions this forwarder survived since the last call."""
        return self.restarts.take()

    def _run(self) -> None:
        unexpected = 0  # consecutive unexpected failures: the backoff grows with them
        while not self._stop.is_set():
            try:
                sent = self.deliver_batch(retry=True)
            except Stopped:
                break
            except sqlite3.Error as exc:
                # the outbox's disk failed (full, read-only): keep trying, never let the thread die
                self._count_error()
                self.state = f"outbox error: {exc}"
                log.error(
                    "sink %s: outbox error: %s; retrying in %.0f s",
                    self.sink.name,
                    exc,
                    self.backoff.max_s,
                )
                if self._stop.wait(self.backoff.max_s):
                    break
                continue
            except Exception as exc:  # noqa: BLE001 (survived: logged, counted, backed off)
                unexpected += 1
                pause = min(self.backoff.min_s * 2 ** (unexpected - 1), self.backoff.max_s)
                self.state = f"unexpected {type(exc).__name__}; going on in {pause:g} s"
                self.restarts.survived(exc, f"in {pause:g} s")
                if self._stop.wait(pause):
                    break
                continue
            unexpected = 0
            if sent == 0:
                self.wake.wait(self.idle_poll_s * (2 if self.paced else 1))
                self.wake.clear()
                self._last_send = time.monotonic()

    # -- delivery ------------------------------------------------------------------------------

    def deliver_batch(self, retry: bool) -> int:
        """Send the oldest batch; returns how many entries left the outbox (0: nothing pending).

        With retry=False a transient failure raises its SinkError (for one-shot commands).
        """
        entries = self.outbox.peek(self.batch_size)
        if not entries:
            self.state = "idle" if self._failing_since is None else self.state
            return 0
        self._send(entries, retry)
        return len(entries)

    def drain(
        self, progress: Callable[[int], None] | None = None, deadline: float | None = None
    ) -> int:
        """Deliver until the outbox is empty (or `deadline`, monotonic); no retries."""
        total = 0
        while deadline is None or time.monotonic() < deadline:
            sent = self.deliver_batch(retry=False)
            if sent == 0:
                break
            total += sent
            if progress is not None:
                progress(sent)
        return total

    def _send(self, entries: Sequence[Entry], retry: bool) -> None:
        lines = [entry.line for entry in entries]
        try:
            if retry:
                self._write_retrying(lines)
            else:
                self._write_once(lines)
        except SinkPartialWrite as exc:
            with self._errors_lock:
                self._rejected += exc.dropped
            log.error(
                "sink %s stored %d of %d points, dropped %d: %s",
                self.sink.name,
                len(entries) - exc.dropped,
                len(entries),
                exc.dropped,
                str(exc)[:500],
            )
        except SinkRejected as exc:
            if len(entries) == 1:
                self.outbox.quarantine(entries[0], exc.status, str(exc))
                log.error(
                    "sink %s refused a point, quarantined (`homewatt-collector outbox`): %s: %s",
                    self.sink.name,
                    exc,
                    entries[0].line[:200],
                )
                return
            middle = len(entries) // 2
            self._send(entries[:middle], retry)
            self._send(entries[middle:], retry)
            return
        self.outbox.ack(entries)

    def _write_once(self, lines: list[str]) -> None:
        try:
            self.sink.write(lines)
        except SinkPartialWrite:  # written, but for the dropped points: not a failed write
            self._recovered()
            raise
        except Exception:  # a SinkError or a surprise (survived): a failed write either way
            self._count_error()
            raise
        self._recovered()

    def _write_retrying(self, lines: list[str]) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type((SinkUnavailable, SinkUnauthorized)),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._note_failure,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self._write_once(lines)

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, SinkUnauthorized):
            return self.backoff.max_s
        wait = float(self._jitter(retry_state))
        # A server that said when to come back is not probed; one that did not answer is.
        self._probe = isinstance(exc, SinkUnavailable) and exc.retry_after_s is None
        if isinstance(exc, SinkUnavailable) and exc.retry_after_s is not None:
            wait = max(wait, exc.retry_after_s)
        return min(wait, self.backoff.max_s)

    def _sleep(self, seconds: float) -> None:
        """Back off for `seconds`; after a connection error or a 5xx without Retry-After, a
        cheap probe (GET /ping) every PROBE_EVERY_S ends the wait once the server answers, so
        delivery resumes within seconds of it coming back, not at the end of a 60 s backoff."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            step = min(remaining, PROBE_EVERY_S) if self._probe else remaining
            if self._stop.wait(step):
                raise Stopped
            if self._probe and deadline - time.monotonic() > 0 and self.sink.ready():
                log.debug("sink %s answers again: retrying now", self.sink.name)
                return

    def _count_error(self) -> None:
        with self._errors_lock:
            self._errors += 1

    def _note_failure(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self._failures += 1
        self.state = f"retrying: {exc}"
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "sink %s: %s; samples stay in the outbox, retrying (backoff up to %.0f s)",
                self.sink.name,
                exc,
                self.backoff.max_s,
            )
        else:
            log.debug("sink %s: still failing (%s); next try in %.1f s", self.sink.name, exc, wait)

    def _recovered(self) -> None:
        self.state = "ok"
        if self._failing_since is not None:
            log.info(
                "sink %s: delivering again after %d failed attempts over %.0f s",
                self.sink.name,
                self._failures,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
            self._failures = 0
