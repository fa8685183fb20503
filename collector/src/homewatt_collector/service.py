"""The running collector: source -> outbox (one per sink) -> forwarder threads -> sinks.

The source loop runs on the main thread on monotonic deadlines and never waits for a sink;
each sink's forwarder runs on its own thread. Every cycle also records a `homewatt_health`
sample and one `homewatt_device_health` sample per device. Shutdown (SIGTERM) stops the loop,
gives each sink a moment to take what is pending, and closes the outboxes with a checkpoint, so
nothing is lost either way.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from homewatt_collector import notify
from homewatt_collector.config import CollectorConfig, SinkConfig, outbox_dir, read_token
from homewatt_collector.errors import SinkError, SourceError
from homewatt_collector.forwarder import Backoff, Forwarder
from homewatt_collector.models import DEVICE_HEALTH, HEALTH, Reading, Sample
from homewatt_collector.outbox import Outbox
from homewatt_collector.scheduler import Scheduler, Slot
from homewatt_collector.sources import PacedSource, Source, create_source
from homewatt_collector.throttle import LogThrottle
from homewatt_collector.workers import Restarts
from homewatt_common.clock import ClockSync, clock_state
from homewatt_common.lineprotocol import point_problem

log = logging.getLogger(__name__)

# Point shapes (measurement, tags, field names) whose names line protocol carries, kept to
# check a sample without encoding it (the outbox encodes it once more to store it).
KNOWN_SHAPES_MAX = 10_000
_PLAIN_VALUES = (float, int, bool, str)  # types line protocol writes whatever the value

# How long a stopping collector lets the sinks take what is pending (the rest stays on disk).
FINAL_FLUSH_S = 5.0
CLOCK_POLL_S = 2.0  # how often a collector waiting for NTP asks again


@dataclass(frozen=True)
class Delivery:
    """One sink's outbox and forwarder."""

    outbox: Outbox
    forwarder: Forwarder


@dataclass(frozen=True)
class Cycle:
    """What one cycle did, for the live table and the tests."""

    slot: Slot
    reading: Reading
    read_s: float
    deliveries: Sequence[Delivery]


def outbox_path(directory: Path, sink_name: str) -> Path:
    return directory / f"outbox-{sink_name}.sqlite"


class Collector:
    def __init__(
        self,
        *,
        site: str,
        unit: str,
        interval_s: int,
        source: Source,
        deliveries: Sequence[Delivery],
        stop: threading.Event,
        health: bool = True,
        wait_for_clock_sync: bool = True,
        on_cycle: Callable[[Cycle], None] | None = None,
    ) -> None:
        self.site = site
        self.unit = unit
        self.interval_s = interval_s
        self.source = source
        self._paced = isinstance(source, PacedSource)
        self.deliveries = deliveries
        self.stop = stop
        self.health = health
        self.wait_for_clock_sync = wait_for_clock_sync
        self.on_cycle = on_cycle
        self._watchdog_s = notify.watchdog_interval_s()
        # drops made while the outbox opened count in the first health point
        self._dropped_seen = {
            id(d): d.outbox.counter("dropped") - d.outbox.dropped_at_open for d in deliveries
        }
        self._salvaged_seen = {id(d): d.outbox.counter("salvaged") for d in deliveries}
        self._throttle = LogThrottle()
        self.restarts = Restarts("source loop")
        self._unreported: dict[str, int] = {}  # health events not stored yet (a failed cycle)
        self._last_ok: dict[str, float] = {}  # device -> monotonic time of its last good read
        self._writable_shapes: set[tuple[object, ...]] = set()  # see KNOWN_SHAPES_MAX

    def run(self) -> None:
        for delivery in self.deliveries:
            delivery.forwarder.start()
        try:
            # READY first: the outboxes are open and the forwarders deliver any backlog, so
            # waiting for the clock (or for a source that cannot open yet) never trips the
            # unit's TimeoutStartSec=; STATUS= says what it waits for, WATCHDOG= goes on.
            notify.notify("READY=1")
            self._salvage_damaged_outboxes()
            if self.wait_for_clock_sync and not self._wait_for_clock():
                return
            if not self._open_source():
                return
            notify.notify(f"STATUS=collecting every {self.interval_s} s")
            log.info("collecting from %s every %d s", self.source.kind, self.interval_s)
            scheduler = Scheduler(self.interval_s, sleep=self._sleep)
            for slot in scheduler.slots():
                try:
                    self._cycle(slot)
                except Exception as exc:  # noqa: BLE001 (survived: logged, counted, next slot)
                    self.restarts.survived(exc, "at the next cycle")
                if self._watchdog_s is not None:
                    notify.notify("WATCHDOG=1")  # the loop is alive, even when a cycle failed
        finally:
            notify.notify("STOPPING=1")
            self._shutdown()

    def _salvage_damaged_outboxes(self) -> None:
        """In the background, put what can be read from a damaged outbox that was moved aside
        at open back into its fresh one (the loop collects meanwhile)."""
        for delivery in self.deliveries:
            if delivery.outbox.moved_aside is not None:
                threading.Thread(
                    target=self._salvage, args=(delivery,), name="outbox-salvage", daemon=True
                ).start()

    def _salvage(self, delivery: Delivery) -> None:
        try:
            delivery.outbox.salvage()
        except Exception as exc:  # noqa: BLE001 (survived: logged, counted)
            self.restarts.survived(exc, "without the salvage")
        delivery.forwarder.wake.set()  # deliver the salvaged samples now

    def _open_source(self) -> bool:
        """Open the source, surviving any surprise (retried with a growing pause); False if
        stopped meanwhile. (A missing serial adapter is not an error: reads wait for it.)"""
        failures = 0
        while True:
            try:
                self.source.open()
            except Exception as exc:  # noqa: BLE001 (survived: logged, counted, retried)
                failures += 1
                pause = min(2.0 ** (failures - 1), 60.0)
                self.restarts.survived(exc, f"in {pause:g} s")
                if self._sleep(pause):
                    return False
                continue
            return True

    def _cycle(self, slot: Slot) -> None:
        started = time.monotonic()
        try:
            if self._paced:
                # the bus time left in this slot ends at the next slot's deadline
                until = started - slot.lateness_s + self.interval_s
                reading = self.source.read_within(  # type: ignore[attr-defined]
                    slot.ts, until, self.stop
                )
            else:
                reading = self.source.read(slot.ts)
        except SourceError as exc:
            self._problem(f"source {self.source.kind}: {exc}")
            reading = Reading(errors=1)
        except Exception as exc:  # noqa: BLE001 (a bug in a source: a read error, and survived)
            self.restarts.survived(exc, "at the next cycle")
            reading = Reading(errors=1)
        read_s = time.monotonic() - started
        reading = self._writable(reading)
        samples = list(reading.samples)
        if self.health:
            samples.append(self._health_sample(slot, reading, read_s))
            samples.extend(self._device_health_samples(slot, reading))
        for delivery in self.deliveries:
            try:
                delivery.outbox.put(samples)
            except sqlite3.Error as exc:  # disk full or failing: nothing else can keep them
                self._problem(f"outbox {delivery.outbox.path}: cannot store samples: {exc}")
        self._unreported = {}
        for delivery in self.deliveries:
            delivery.forwarder.cycle_stored()
        if self.on_cycle is not None:
            self.on_cycle(Cycle(slot, reading, read_s, self.deliveries))

    def _writable(self, reading: Reading) -> Reading:
        """The reading without samples line protocol cannot carry (each one a read error)."""
        samples = []
        errors = reading.errors
        shapes = self._writable_shapes
        for sample in reading.samples:
            # names depend on the shape only; the values on each sample (all floats NaN or
            # infinite: no field can be written; other types, such as Unsigned, fully checked)
            shape = (sample.measurement, *sample.tags.items(), *sample.fields)
            values = sample.fields.values()
            if (
                shape in shapes
                and all(type(v) in _PLAIN_VALUES for v in values)
                and any(type(v) is not float or math.isfinite(v) for v in values)
            ):
                samples.append(sample)
                continue
            problem = point_problem(sample.measurement, sample.tags, sample.fields)
            if problem is None:
                if len(shapes) >= KNOWN_SHAPES_MAX:
                    shapes.clear()
                shapes.add(shape)
                samples.append(sample)
            else:
                errors += 1
                self._problem(f"source {self.source.kind}: cannot store a sample: {problem}")
        return Reading(samples, errors, reading.devices)

    def _problem(self, message: str) -> None:
        if self._throttle.ready(message):
            log.error("%s", message)

    def _device_health_samples(self, slot: Slot, reading: Reading) -> list[Sample]:
        """One homewatt_device_health point per device the source reported this cycle:
        read_errors, timeouts, backoff (1: silent for a while, only probed now and then), and
        last_ok_age_s (seconds since its last good read; absent until the first)."""
        now = time.monotonic()
        points = []
        for status in reading.devices:
            if status.ok:
                self._last_ok[status.device] = now
            fields: dict[str, float | int] = {
                "read_errors": status.errors,
                "timeouts": status.timeouts,
                "backoff": int(status.backoff),
            }
            if (last_ok := self._last_ok.get(status.device)) is not None:
                fields["last_ok_age_s"] = round(now - last_ok, 3)
            tags = {
                "site": self.site,
                "source": self.source.kind,
                "device": status.device,
                "model": status.model,
            }
            points.append(Sample(DEVICE_HEALTH, tags, fields, slot.ts))
        return points

    def _health_sample(self, slot: Slot, reading: Reading, read_s: float) -> Sample:
        dropped = salvaged = 0
        for delivery in self.deliveries:
            now = delivery.outbox.counter("dropped")
            dropped += now - self._dropped_seen[id(delivery)]
            self._dropped_seen[id(delivery)] = now
            now = delivery.outbox.counter("salvaged")
            salvaged += now - self._salvaged_seen[id(delivery)]
            self._salvaged_seen[id(delivery)] = now
        events = {
            "skipped_slots": slot.skipped,
            "read_errors": reading.errors,
            "outbox_dropped": dropped,
            "outbox_salvaged": salvaged,
            "sink_errors": sum(d.forwarder.take_errors() for d in self.deliveries),
            "sink_rejected": sum(d.forwarder.take_rejected() for d in self.deliveries),
            "worker_restarts": self.restarts.take()
            + sum(d.forwarder.take_restarts() for d in self.deliveries),
        }
        # Counts of a cycle whose samples could not be stored come with this one.
        for name, count in self._unreported.items():
            events[name] += count
        self._unreported = dict(events)  # until this cycle's samples are stored
        fields: dict[str, float | int] = {
            "cycle_lateness_ms": round(slot.lateness_s * 1000, 3),
            "read_duration_ms": round(read_s * 1000, 3),
            "outbox_backlog": sum(d.outbox.backlog for d in self.deliveries),
            **events,
        }
        tags = {"site": self.site, "unit": self.unit, "source": self.source.kind}
        return Sample(HEALTH, tags, fields, slot.ts)

    def _sleep(self, seconds: float) -> bool:
        """Sleep until the next slot (True: stop), pinging the watchdog on a long interval."""
        if self._watchdog_s is None:
            return self.stop.wait(seconds)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.stop.wait(min(remaining, self._watchdog_s)):
                return True
            notify.notify("WATCHDOG=1")
        return self.stop.is_set()

    def _wait_for_clock(self) -> bool:
        """Block until NTP has synchronised the clock (homewatt_common.clock: timedated, else
        systemd-timesyncd's flag); go on at once when nothing can tell, saying so. False if
        stopped meanwhile."""
        state = clock_state()
        if state.synchronized is not False:
            self._clock_answer(state)
            return True
        notify.notify("STATUS=waiting for the system clock to be synchronised (NTP)")
        log.warning(
            "waiting for the system clock to be synchronised (NTP), says %s, before taking"
            " samples; for a site without network time set clock.wait_for_sync: false",
            state.how,
        )
        started = time.monotonic()
        reported = started
        while state.synchronized is False:
            if self._sleep(CLOCK_POLL_S):
                return False
            state = clock_state()
            if time.monotonic() - reported >= 300:
                reported = time.monotonic()
                log.warning("still waiting for clock synchronisation (%.0f s)", reported - started)
        self._clock_answer(state)
        return True

    @staticmethod
    def _clock_answer(state: ClockSync) -> None:
        if state.synchronized is None:
            log.warning(
                "cannot tell whether the system clock is synchronised (%s); taking samples anyway",
                state.how,
            )
        else:
            log.info("system clock synchronised (%s)", state.how)

    def _shutdown(self) -> None:
        """Stop the forwarders, give the sinks FINAL_FLUSH_S to take what is pending, close the
        outboxes. Every step runs whatever the one before met (a full disk, a sink error, a
        surprise): one line each, never a traceback, and the outboxes are always closed."""
        self.stop.set()
        try:
            self.source.close()
        except Exception as exc:  # noqa: BLE001 (stopping anyway: logged, counted)
            self.restarts.survived(exc, "with the shutdown")
        for delivery in self.deliveries:
            delivery.forwarder.wake.set()  # out of its idle wait
            delivery.forwarder.join()
        deadline = time.monotonic() + FINAL_FLUSH_S
        for delivery in self.deliveries:
            name = delivery.forwarder.sink.name
            try:
                if delivery.outbox.backlog:
                    delivery.forwarder.drain(deadline=deadline)
            except SinkError as exc:
                log.info("sink %s: %s; the rest stays in the outbox for the next start", name, exc)
            except sqlite3.Error as exc:
                log.error(
                    "sink %s: outbox %s: %s; the final delivery stopped, what is pending stays"
                    " in the outbox for the next start",
                    name,
                    delivery.outbox.path,
                    exc,
                )
            except Exception as exc:  # noqa: BLE001 (stopping anyway: logged, counted)
                self.restarts.survived(exc, "with the shutdown")
        for delivery in self.deliveries:
            log.info(
                "stopped; sink %s: %d samples pending in the outbox",
                delivery.forwarder.sink.name,
                delivery.outbox.backlog,
            )
            for close in (delivery.forwarder.sink.close, delivery.outbox.close):
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 (stopping anyway: logged, counted)
                    self.restarts.survived(exc, "with the shutdown")


def build_collector(
    config: CollectorConfig,
    stop: threading.Event,
    source: Source | None = None,
    outbox_directory: Path | None = None,
    on_cycle: Callable[[Cycle], None] | None = None,
) -> Collector:
    """Wire a collector from its config; reads secrets, opens outboxes (ConfigError/OutboxBusy)."""
    tokens = {sink.name: read_token(config, index) for index, sink in enumerate(config.sinks)}
    for sink in config.sinks:
        if (problem := sink.url_problem()) is not None:
            log.warning("sink %s: url %s %s", sink.name, sink.display_url, problem)
    directory = outbox_directory or outbox_dir(config).path
    deliveries: list[Delivery] = []
    try:
        for sink_config in config.sinks:
            outbox = Outbox(
                outbox_path(directory, sink_config.name),
                max_bytes=config.outbox.max_size_mb * 1024 * 1024,
                checkpoint_interval_s=config.outbox.checkpoint_interval_s,
            )
            deliveries.append(
                Delivery(
                    outbox, make_forwarder(sink_config, tokens[sink_config.name], outbox, stop)
                )
            )
    except Exception:
        for delivery in deliveries:
            delivery.outbox.close()
        raise
    return Collector(
        site=config.site,
        unit=config.unit or "collector",
        interval_s=config.interval_s,
        source=source or create_source(config.source, config.site, directory),
        deliveries=deliveries,
        stop=stop,
        health=config.health,
        wait_for_clock_sync=config.clock.wait_for_sync,
        on_cycle=on_cycle,
    )


def make_forwarder(
    sink: SinkConfig, token: str | None, outbox: Outbox, stop: threading.Event
) -> Forwarder:
    # influxdb-client takes half of the command's start-up time (seconds on a Pi): only the
    # commands that write (run, outbox replay) import it.
    from homewatt_collector.sinks.influxdb import InfluxDBSink  # noqa: PLC0415

    return Forwarder(
        outbox,
        InfluxDBSink(
            name=sink.name,
            url=sink.url,
            org=sink.org,
            bucket=sink.bucket,
            token=token,
            timeout_s=sink.timeout_s,
            verify_tls=sink.verify_tls,
        ),
        stop,
        batch_size=sink.batch_size,
        backoff=Backoff(sink.retry_min_s, sink.retry_max_s),
        idle_poll_s=sink.flush_interval_s,
    )
