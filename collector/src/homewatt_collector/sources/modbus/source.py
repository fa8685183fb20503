"""The Modbus RTU source: meters on one RS485 line, read once a cycle in as few requests as allowed.

Faults never stop the loop: a silent meter, an exception code, a garbled frame or an impossible
value is counted in the cycle's read errors and skipped; a silent meter is given up for the rest
of the cycle so it cannot eat the other meters' bus time; a failing or unplugged adapter is
closed and reopened on a later cycle, when it is back. Energy counters follow the counter rule
(counters.py), with the baselines and offsets in the instance's state directory.

Each cycle reads first the meters that answered in their last cycle; a meter not known to
answer (not read yet, or silent last time) comes after them, with timeouts that fit the
cycle's spare bus time (PROBE_MARGIN_S kept free), so even its first timeouts cost the live
meters no slot. A meter silent in TIMEOUTS_TO_BACKOFF consecutive cycles goes into backoff: it
is no longer read every cycle, only probed (one register) at most every PROBE_INTERVAL_S, after
the others and with what is left of the cycle; once a probe is answered it is read every cycle
again. A stop
request is looked at between requests: the read in flight finishes (at most its timeout), the
rest of the cycle is abandoned.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from homewatt_collector.counters import (
    COUNTERS_FILE,
    CounterGuard,
    RiseLimit,
    Series,
    is_cumulative,
)
from homewatt_collector.models import ELECTRICITY, DeviceStatus, Reading, Sample
from homewatt_collector.sources.modbus.bus import (
    ModbusBus,
    ModbusExceptionResponse,
    NoResponse,
    PortUnavailable,
)
from homewatt_collector.sources.modbus.config import MeterConfig, ModbusSourceConfig
from homewatt_collector.sources.modbus.decode import decode_block, resolution
from homewatt_collector.sources.modbus.meters import MeterTemplate, RegisterSpec
from homewatt_collector.sources.modbus.plan import (
    Block,
    bits_per_char,
    min_bus_time_s,
    plan_blocks,
    split_contiguous,
)
from homewatt_collector.throttle import LogThrottle

log = logging.getLogger(__name__)

ILLEGAL_DATA_ADDRESS = 2

TIMEOUTS_TO_BACKOFF = 3  # consecutive cycles a meter left unanswered before it is backed off
PROBE_INTERVAL_S = 30.0  # a backed-off meter is probed at most this often
PROBE_MARGIN_S = 0.020  # bus time a probe leaves free at the end of the cycle
# A probe needs 15 bytes on the wire (8 + 7: 17 ms at 9600 8E1) and the meter's turnaround;
# below this a probe waits for a cycle with more spare time.
MIN_PROBE_TIMEOUT_S = 0.05


@dataclass
class MeterPlan:
    """One meter's requests and the state kept between cycles."""

    config: MeterConfig
    template: MeterTemplate
    model: str
    timeout_s: float
    blocks: list[Block]
    answering: bool | None = None
    throttle: LogThrottle = field(default_factory=LogThrottle)
    timeouts: int = 0  # requests it left unanswered, since the start
    silent_cycles: int = 0  # consecutive cycles it left a request unanswered
    backoff: bool = False  # read only by probes, at most every PROBE_INTERVAL_S
    next_probe_s: float = 0.0  # monotonic time of its next probe, in backoff
    waiting_since: float | None = None  # not known to answer, and no spare time for it since

    @property
    def max_power_w(self) -> float:
        return self.config.max_power_w or self.template.max_power_w


def plan_meter(config: MeterConfig, template: MeterTemplate) -> MeterPlan:
    specs = [s for s in template.registers if config.fields is None or s.field in config.fields]
    blocks = plan_blocks(
        specs,
        span_gaps=template.span_gaps,
        max_gap=template.max_gap_registers,
        max_block=template.max_block_registers,
    )
    timeout = config.timeout_s if config.timeout_s is not None else template.timeout_s
    return MeterPlan(config, template, config.model, timeout, blocks)


class ModbusSource:
    kind = "modbus"

    def __init__(
        self,
        config: ModbusSourceConfig,
        site: str,
        bus: ModbusBus | None = None,
        state_dir: Path | None = None,
    ) -> None:
        """`state_dir` keeps the counter baselines and offsets (None: in memory only)."""
        self.config = config
        self.site = site
        self.serial = config.line_serial()
        self.bus = bus or ModbusBus(config.port, self.serial)
        self.meters = [plan_meter(m, config.template_of(m)) for m in config.meters]
        self.counters = CounterGuard.load(state_dir / COUNTERS_FILE if state_dir else None)

    def open(self) -> None:
        self.bus.open()  # a missing adapter is waited for: read() tries again every cycle

    def close(self) -> None:
        try:
            self.bus.close()
        finally:
            self.counters.close()

    def min_bus_time_s(self, bits: int | None = None) -> float:
        """The least line time one cycle's requests need at the line's baud rate."""
        blocks = [b for meter in self.meters for b in meter.blocks]
        return min_bus_time_s(blocks, self.serial.baudrate, bits or bits_per_char(self.serial))

    def read(self, ts: int) -> Reading:
        """One cycle, with no time limit nor stop request (see read_within)."""
        return self.read_within(ts, None, None)

    def read_within(self, ts: int, until: float | None, stop: threading.Event | None) -> Reading:
        """One cycle, in three rounds so that a meter not known to answer never costs the
        others bus time: first the meters that answered last time (each with its own timeout);
        then the others (not read yet, or silent last cycle), each request with a timeout that
        ends PROBE_MARGIN_S before `until` (monotonic; None: no limit) minus the least bus time
        the meters after it in this round need; then the probes of backed-off meters that are
        due, with what is left. A meter that finds no time (under MIN_PROBE_TIMEOUT_S) waits
        for a later cycle, at most PROBE_INTERVAL_S. Once `stop` is set no further request is
        sent: what was read so far is returned. Devices and samples come in config order."""
        results: dict[int, tuple[list[Sample], DeviceStatus]] = {}
        errors = 0
        now = time.monotonic()
        live = [m for m in self.meters if not m.backoff and m.answering is True]
        unsure = [m for m in self.meters if not m.backoff and m.answering is not True]
        due = [m for m in self.meters if m.backoff and now >= m.next_probe_s]
        for meter in self.meters:
            if meter.backoff and meter not in due:
                results[id(meter)] = ([], self._backed_off(meter))
        rounds = [(m, False) for m in live] + [(m, True) for m in unsure]
        for position, (meter, fitted) in enumerate(rounds):
            if stop is not None and stop.is_set():
                break
            limit = None
            if fitted and until is not None:
                later = [b for m, _ in rounds[position + 1 :] for b in m.blocks]
                limit = until - self.min_bus_time_for(later) - PROBE_MARGIN_S
            try:
                values, meter_errors, timeouts = self._read_meter_counted(meter, stop, limit)
            except PortUnavailable:
                for m, _ in rounds[position:]:
                    results[id(m)] = ([], DeviceStatus(m.config.name, m.model, errors=1, ok=False))
                for m in due:  # not probed: the port is not there
                    results[id(m)] = ([], DeviceStatus(m.config.name, m.model, 1, 0, False, True))
                errors += len(rounds) - position + len(due)
                due = []
                break
            if values is None:  # no time left in this cycle: read in a later one
                results[id(meter)] = ([], DeviceStatus(meter.config.name, meter.model, ok=False))
                continue
            self._count_silence(meter, timeouts)
            meter_errors += self._check_counters(meter, values, ts)
            errors += meter_errors
            status = DeviceStatus(
                meter.config.name, meter.model, meter_errors, timeouts, bool(values), meter.backoff
            )
            results[id(meter)] = (self._samples(meter, values, ts), status)
        errors += self._probe_due(due, until, stop, results)
        ordered = [results[id(m)] for m in self.meters if id(m) in results]
        samples = [sample for meter_samples, _ in ordered for sample in meter_samples]
        return Reading(samples, errors, [status for _, status in ordered])

    def _probe_due(
        self,
        due: list[MeterPlan],
        until: float | None,
        stop: threading.Event | None,
        results: dict[int, tuple[list[Sample], DeviceStatus]],
    ) -> int:
        """Probe the backed-off meters that are due (their statuses into `results`); returns
        the errors (unanswered probes, a failed port)."""
        errors = 0
        for meter in due:
            if stop is not None and stop.is_set():
                break
            name, model = meter.config.name, meter.model
            try:
                answered = self._probe(meter, until)
            except PortUnavailable:
                results[id(meter)] = ([], DeviceStatus(name, model, 1, 0, False, True))
                errors += 1
                continue
            if answered is None:
                results[id(meter)] = ([], self._backed_off(meter))
            else:
                timeouts = int(not answered)
                errors += timeouts
                results[id(meter)] = (
                    [],
                    DeviceStatus(name, model, timeouts, timeouts, False, meter.backoff),
                )
        return errors

    def min_bus_time_for(self, blocks: list[Block]) -> float:
        """The least line time `blocks` need at the line's settings (0 for none)."""
        if not blocks:
            return 0.0
        return min_bus_time_s(blocks, self.serial.baudrate, bits_per_char(self.serial))

    @staticmethod
    def _backed_off(meter: MeterPlan) -> DeviceStatus:
        return DeviceStatus(meter.config.name, meter.model, ok=False, backoff=True)

    def _count_silence(self, meter: MeterPlan, timeouts: int) -> None:
        """A meter silent in TIMEOUTS_TO_BACKOFF consecutive cycles goes into backoff."""
        if not timeouts:
            meter.silent_cycles = 0
            return
        meter.silent_cycles += 1
        if meter.silent_cycles >= TIMEOUTS_TO_BACKOFF:
            meter.backoff = True
            meter.next_probe_s = time.monotonic() + PROBE_INTERVAL_S
            log.warning(
                "meter %s (id %d): silent in %d cycles in a row: probed every %g s from now on,"
                " so it costs the other meters no bus time",
                meter.config.name,
                meter.config.device_id,
                meter.silent_cycles,
                PROBE_INTERVAL_S,
            )

    def _probe(self, meter: MeterPlan, until: float | None) -> bool | None:
        """Ask a backed-off meter for one register, with a timeout that fits before `until`:
        True if it answered (it is read every cycle again from the next one), False if not,
        None if the cycle had no time left for it (it is probed in the next cycle)."""
        timeout = meter.timeout_s
        if until is not None:
            spare = until - time.monotonic() - PROBE_MARGIN_S
            overdue = time.monotonic() >= meter.next_probe_s + PROBE_INTERVAL_S
            if overdue:
                # a probe overdue by a whole interval goes out anyway, with the meter's own
                # timeout (the cycle may overrun), so a meter that is back is read every cycle
                # again within 2 x PROBE_INTERVAL_S even on a bus without spare time
                pass
            elif spare < MIN_PROBE_TIMEOUT_S:
                return None
            else:
                timeout = min(timeout, spare)
        first = meter.blocks[0]
        probe = Block(first.function, first.start, 1, ())
        meter.next_probe_s = time.monotonic() + PROBE_INTERVAL_S
        try:
            self.bus.read(probe, meter.config.device_id, timeout)
        except ModbusExceptionResponse:
            pass  # an exception answer is an answer: the meter is there
        except NoResponse as exc:
            meter.timeouts += 1
            self._note(meter, False, str(exc))
            return False
        meter.backoff = False
        meter.silent_cycles = 0
        self._note(meter, True)
        return True

    def _read_meter_counted(
        self, meter: MeterPlan, stop: threading.Event | None, limit: float | None = None
    ) -> tuple[dict[RegisterSpec, float] | None, int, int]:
        """_read_meter, and how many of its errors were timeouts (a silent meter). With a
        `limit` (monotonic) every request's timeout ends by then; values None: the meter was
        not asked, its first request found less than MIN_PROBE_TIMEOUT_S (unless it has waited
        PROBE_INTERVAL_S for time: then it is asked with its own timeout)."""
        if limit is not None:
            now = time.monotonic()
            if limit - now < MIN_PROBE_TIMEOUT_S * (meter.config.retries + 1):
                if meter.waiting_since is None:
                    meter.waiting_since = now
                if now - meter.waiting_since < PROBE_INTERVAL_S:
                    return None, 0, 0
                limit = None
        meter.waiting_since = None
        before = meter.timeouts
        values, errors = self._read_meter(meter, stop, limit)
        return values, errors, meter.timeouts - before

    def read_meter(self, name: str) -> tuple[dict[RegisterSpec, float], int]:
        """One meter's values by register as the meter gave them (for `homewatt-collector modbus
        read`: no counter rule applied)."""
        meter = next(m for m in self.meters if m.config.name == name)
        return self._read_meter(meter)

    def _read_meter(
        self, meter: MeterPlan, stop: threading.Event | None = None, limit: float | None = None
    ) -> tuple[dict[RegisterSpec, float], int]:
        """Every block of `meter`; with a `limit` (monotonic), each request's timeout (and its
        retries') ends by then, and the blocks left when it is too close are not asked."""
        values: dict[RegisterSpec, float] = {}
        errors = 0
        pending = list(meter.blocks)
        retries = meter.config.retries
        while pending and not (stop is not None and stop.is_set()):
            timeout = meter.timeout_s
            if limit is not None:
                timeout = min(timeout, (limit - time.monotonic()) / (retries + 1))
                if timeout < MIN_PROBE_TIMEOUT_S:
                    break  # the rest in the next cycle, when this meter is read among the live
            block = pending.pop(0)
            try:
                registers = self.bus.read(block, meter.config.device_id, timeout, retries)
            except ModbusExceptionResponse as exc:
                if exc.code == ILLEGAL_DATA_ADDRESS and block.spans_gaps:
                    pending[:0] = self._stop_spanning(meter, block)
                    continue
                errors += 1
                self._note(meter, True, str(exc), kind=f"exception {exc.code}")
                continue
            except NoResponse as exc:
                # a silent meter would cost a timeout per block: give it up for this cycle
                meter.timeouts += 1
                self._note(meter, False, str(exc))
                return values, errors + 1
            decoded, decode_errors = decode_block(block, registers, meter.template.word_order)
            for error in decode_errors:
                self._note(meter, True, f"impossible value: {error}", kind=f"value {error.field}")
            errors += len(decode_errors)
            values.update(decoded)
        if values:
            self._note(meter, True)
        return values, errors

    def _stop_spanning(self, meter: MeterPlan, block: Block) -> list[Block]:
        """The meter refused a read across unmapped addresses: read contiguous runs, for good."""
        runs = split_contiguous(block)
        index = meter.blocks.index(block)
        meter.blocks[index : index + 1] = runs
        log.info(
            "meter %s refuses reads across unmapped addresses at %#06x: using %d requests instead",
            meter.config.name,
            block.start,
            len(runs),
        )
        return runs

    def _check_counters(self, meter: MeterPlan, values: dict[RegisterSpec, float], ts: int) -> int:
        """The counter rule (counters.py) on every cumulative field: what it refuses is left out
        and counted; what it takes is stored with the series' offset."""
        errors = 0
        for spec in [s for s in values if is_cumulative(s.field)]:
            reading = values[spec]
            series = Series(meter.config.name, spec.channel, meter.model, spec.field)
            limit = RiseLimit(meter.max_power_w, resolution(spec, reading))
            verdict = self.counters.check(series, reading, ts, limit)
            if verdict.value is None:
                del values[spec]
            else:
                values[spec] = verdict.value
            if verdict.rejected:
                errors += 1
                self._note(
                    meter,
                    True,
                    f"{spec.field} ({spec.channel}) {verdict.rejected}: not stored",
                    kind=f"counter {spec.field} {spec.channel}",
                )
        return errors

    def _samples(
        self, meter: MeterPlan, values: dict[RegisterSpec, float], ts: int
    ) -> list[Sample]:
        by_channel: dict[str, dict[str, float]] = {}
        for spec, value in values.items():
            by_channel.setdefault(spec.channel, {})[spec.field] = value
        return [
            Sample(
                ELECTRICITY,
                {
                    "site": self.site,
                    "source": self.kind,
                    "device": meter.config.name,
                    "channel": channel,
                    "model": meter.model,
                },
                fields,
                ts,
            )
            for channel, fields in sorted(by_channel.items())
        ]

    def _note(self, meter: MeterPlan, answering: bool, problem: str = "", kind: str = "") -> None:
        """Log when a meter stops or starts answering, and each kind of problem at most once a
        minute: a fault that repeats every second must not flood the journal."""
        name = f"meter {meter.config.name} (id {meter.config.device_id})"
        if not answering and meter.answering is not False:
            log.warning("%s: %s", name, problem)
        elif answering and meter.answering is False:
            log.info("%s answers again", name)
        if kind and meter.throttle.ready(kind):
            log.warning("%s: %s", name, problem)
        meter.answering = answering
