"""One thread per device: polls on the device's own slots, so a slow or silent device never
delays another.

Each poller schedules with the collector's Scheduler (monotonic deadlines on whole multiples
of the device's interval_s, a missed slot skipped, lateness kept) and hands a PollResult per
attempt to the source through a queue. A failed poll (no connection, a timeout, a refused
password, an answer it cannot read) is one error; the device is then retried with backoff
(1, 2, 4... up to MAX_BACKOFF_S seconds, on its next slot after that) and its generation is
detected again on the next contact (a device may have been replaced or updated).

The devices of one instance are spread over the first half of the second (`phase_s`, device
i of n at i/n x SPREAD_S after its slot), so twenty plugs are not asked in the same instant:
their answers do not collide on the WiFi, nor their threads on the interpreter. A sample keeps
its slot's timestamp (whole seconds); lateness is counted from the slot plus the phase.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from homewatt_collector.scheduler import Scheduler, Slot
from homewatt_collector.sources.shelly import gen1, gen2
from homewatt_collector.sources.shelly.client import ShellyClient, ShellyError, TimedOut
from homewatt_collector.sources.shelly.config import ShellyDeviceConfig
from homewatt_collector.sources.shelly.decode import BadAnswer, ChannelValues, DeviceInfo
from homewatt_collector.throttle import LogThrottle

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
SPREAD_S = 0.5
UNKNOWN_MODEL = "shelly"  # the model tag before the device ever answered /shelly


@dataclass
class PollResult:
    """One attempt at a device: its slot's `ts` (unix s) and lateness, the channels read, the
    errors counted (a failed poll, an invalid channel), whether it timed out, and whether the
    device is now backed off (the poll failed: its next slots are skipped for 1, 2, 4... s)."""

    device: str
    model: str
    ts: int
    lateness_s: float
    channels: list[ChannelValues] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    backoff: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.channels)


class DevicePoller:
    def __init__(
        self,
        config: ShellyDeviceConfig,
        password: str | None,
        results: queue.Queue[PollResult],
        stop: threading.Event,
        phase_s: float = 0.0,
    ) -> None:
        """`phase_s`: how long after each slot's deadline the poll starts (0 <= phase_s <
        SPREAD_S)."""
        self.config = config
        self.phase_s = phase_s
        self.client = ShellyClient(config.host, config.timeout_s, config.username, password)
        self.results = results
        self.stop = stop
        self.info: DeviceInfo | None = None
        self.components: list[gen2.Component] = []
        self.failures = 0
        self.retry_at = 0.0
        self.answering: bool | None = None
        self.throttle = LogThrottle()
        self.thread = threading.Thread(target=self._run, name=f"shelly-{config.name}", daemon=True)

    @property
    def model(self) -> str:
        return self.info.model if self.info is not None else UNKNOWN_MODEL

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
        self.client.close()

    def _run(self) -> None:
        scheduler = Scheduler(self.config.interval_s, sleep=self.stop.wait)
        for slot in scheduler.slots():
            if time.monotonic() < self.retry_at:
                continue  # backing off: this slot is not due
            due = time.monotonic() - slot.lateness_s + self.phase_s
            if self.stop.wait(max(due - time.monotonic(), 0.0)):
                return
            timed = replace(slot, lateness_s=max(time.monotonic() - due, 0.0))
            try:
                result = self.poll(timed)
            except Exception as exc:
                log.exception("shelly %s: unexpected %s", self.config.name, type(exc).__name__)
                result = PollResult(self.config.name, self.model, timed.ts, timed.lateness_s)
                result.errors = 1
                self._failed()
            result.backoff = self.failures > 0
            self.results.put(result)

    def poll(self, slot: Slot) -> PollResult:
        """Read the device once for `slot` (never raises a ShellyError: it is counted)."""
        result = PollResult(self.config.name, self.model, slot.ts, slot.lateness_s)
        try:
            channels, problems = self._read()
        except ShellyError as exc:
            result.errors = 1
            result.timeouts = int(isinstance(exc, TimedOut))
            self._note(False, str(exc))
            self._failed()
            return result
        result.model = self.model
        result.channels = channels
        result.errors = len(problems)
        for problem in problems:
            self._note(True, f"{problem}: not stored", kind=problem)
        self.failures = 0
        self._note(True)
        return result

    def _read(self) -> tuple[list[ChannelValues], list[str]]:
        try:
            if self.info is None:
                self.info = self.client.info()
                if self.info.gen >= 2:
                    self.components = gen2.components(self.client.rpc("Shelly.GetStatus"))
            if self.info.gen == 1:
                return gen1.decode_status(self.client.status())
            channels: list[ChannelValues] = []
            for component in self.components:
                answers: list[Any] = [self.client.rpc(m, component.id) for m in component.methods]
                channels.extend(gen2.decode_component(component, answers))
        except BadAnswer as exc:
            self.info = None
            raise ShellyError(f"{self.config.host}: {exc}") from None
        return channels, []

    def _failed(self) -> None:
        self.failures += 1
        self.info = None  # detect the generation again on the next contact
        self.retry_at = time.monotonic() + min(2.0 ** (self.failures - 1), MAX_BACKOFF_S)

    def _note(self, answering: bool, problem: str = "", kind: str = "") -> None:
        """Log when the device stops or starts answering, and each kind of problem at most
        once a minute."""
        name = f"shelly {self.config.name}"
        if not answering and self.answering is not False:
            log.warning("%s: %s (retried with backoff up to %g s)", name, problem, MAX_BACKOFF_S)
        elif answering and self.answering is False:
            log.info("%s answers again", name)
        if kind and self.throttle.ready(kind):
            log.warning("%s: %s", name, problem)
        self.answering = answering
