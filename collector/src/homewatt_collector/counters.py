"""Cumulative counters (`energy_*_kwh`, `reactive_energy_*_kvarh`): one rule for every source.

What is stored for a counter series (device, channel, model, field) is monotonic:
- A reading is accepted when it is not below the last accepted one (the baseline) and has not
  risen by more than the meter could deliver since then: `max_power_w` x (seconds since the
  baseline + RISE_SLACK_S) / 3.6e6, plus one step of the counter's resolution. Anything else
  (a step back, a garbled word that adds 42,949,672.95 kWh) is rejected: the caller counts it
  as a read error and stores nothing for that field this cycle.
- A series without a baseline (never read, or its state lost) stores nothing until
  BASELINE_READS consecutive readings agree with each other (each one accepted against the one
  before): one garbled first read never becomes the baseline.
- BASELINE_READS consecutive rejected readings that agree with each other are a genuine reset
  (the meter replaced or reset, a plug rebooted): an offset is set so the stored series goes on
  from its last stored value (the energy between the last good read and the first read of the
  new counter is unknown and is not invented), logged once, and persisted at once.
- The baselines and offsets are persisted in the instance's state directory (COUNTERS_FILE,
  JSON), so the first read after a restart is checked too. Baselines are written at most every
  SAVE_INTERVAL_S (an older baseline only widens the allowed rise, so a power cut costs no
  good read), offsets at once, everything at close. A file that cannot be read is moved aside
  under a timestamped name with one log line, and every series takes a new baseline.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homewatt_collector import statefile
from homewatt_collector.throttle import LogThrottle

log = logging.getLogger(__name__)

COUNTERS_FILE = "counters.json"
FORMAT_VERSION = 1
# Consecutive consistent readings that make a new baseline (first read, or a reset).
BASELINE_READS = 3
# Seconds added to the elapsed time when bounding a rise: a meter may refresh its counter
# registers less often than it is read, so one read can show several seconds' worth at once.
RISE_SLACK_S = 10.0
SAVE_INTERVAL_S = 10.0
# Field names of cumulative counters in the data model.
CUMULATIVE = re.compile(r"^(reactive_)?energy_[a-z0-9_]+_(kwh|kvarh)$")


def is_cumulative(field_name: str) -> bool:
    """True for a field the counter rule applies to (energy_total_kwh, reactive_energy_t1_kvarh)."""
    return CUMULATIVE.fullmatch(field_name) is not None


@dataclass(frozen=True, order=True)
class Series:
    """One counter series: the identity of its points in InfluxDB, plus the field."""

    device: str
    channel: str
    model: str
    field: str

    def describe(self) -> str:
        return f"{self.field} ({self.channel})"


@dataclass(frozen=True)
class RiseLimit:
    """How much a counter may rise: `max_power_w` (None: unbounded) and one counter step."""

    max_power_w: float | None
    resolution: float = 0.0

    def max_rise(self, elapsed_s: float) -> float:
        """The largest plausible rise in the counter's unit (kWh or kvarh) over `elapsed_s`."""
        if self.max_power_w is None:
            return math.inf
        return self.max_power_w * (max(elapsed_s, 0.0) + RISE_SLACK_S) / 3.6e6 + self.resolution


@dataclass(frozen=True)
class Verdict:
    """What to do with one reading: store `value` (None: store nothing); `rejected` names the
    fault to count as a read error ("" when not rejected)."""

    value: float | None
    rejected: str = ""


@dataclass
class _State:
    value: float  # the meter's own reading last accepted (the baseline)
    ts: float  # its timestamp, unix seconds
    offset: float = 0.0  # added to the meter's reading to give the stored value


@dataclass
class CounterGuard:
    """The rule above for the counters of one source; `path` None keeps state in memory only."""

    path: Path | None
    clock: Callable[[], float] = time.monotonic
    _states: dict[Series, _State] = field(default_factory=dict)
    _candidates: dict[Series, list[tuple[float, float]]] = field(default_factory=dict)
    _dirty: bool = False
    _saved_at: float = -math.inf
    _throttle: LogThrottle = field(default_factory=LogThrottle)

    @classmethod
    def load(cls, path: Path | None, clock: Callable[[], float] = time.monotonic) -> CounterGuard:
        """The guard with the state kept at `path` (a missing file: no baselines yet)."""
        guard = cls(path, clock)
        if path is not None:
            guard._states = _read_states(path)
        return guard

    def check(self, series: Series, reading: float, ts: float, limit: RiseLimit) -> Verdict:
        """Judge one reading of `series` at unix time `ts` (see the module docstring)."""
        state = self._states.get(series)
        if state is not None and _consistent((state.value, state.ts), (reading, ts), limit):
            state.value, state.ts = reading, ts
            self._candidates.pop(series, None)
            self._dirty = True
            self.save()
            return Verdict(_stored(reading, state.offset))
        candidates = self._candidates.setdefault(series, [])
        broke = bool(candidates) and not _consistent(candidates[-1], (reading, ts), limit)
        if broke:
            candidates.clear()
        candidates.append((reading, ts))
        if len(candidates) >= BASELINE_READS:
            return self._new_baseline(series, candidates, state)
        if state is None:
            if broke:
                return Verdict(None, "disagrees with the read before it (taking a baseline)")
            return Verdict(None)  # taking a baseline: nothing to store yet, nothing wrong
        if reading < state.value:
            return Verdict(None, f"went back from {state.value:g} to {reading:g}")
        return Verdict(
            None,
            f"rose from {state.value:g} to {reading:g} in {ts - state.ts:g} s,"
            f" more than max_power_w {limit.max_power_w:g} W allows",
        )

    def _new_baseline(
        self, series: Series, candidates: list[tuple[float, float]], state: _State | None
    ) -> Verdict:
        reading, ts = candidates[-1]
        first = candidates[0][0]
        self._candidates.pop(series, None)
        if state is None:
            self._states[series] = _State(reading, ts)
            self._dirty = True
            self.save()
            return Verdict(reading)
        last_stored = state.value + state.offset
        offset = last_stored - first
        log.warning(
            "meter %s: %s restarted at %g (replaced or reset?): stored values go on from %g"
            " (offset %g, kept in %s)",
            series.device,
            series.describe(),
            first,
            last_stored,
            offset,
            self.path or "memory",
        )
        self._states[series] = _State(reading, ts, offset)
        self._dirty = True
        self.save(force=True)
        return Verdict(_stored(reading, offset))

    def save(self, force: bool = False) -> None:
        """Write the state if it changed (at most every SAVE_INTERVAL_S unless `force`)."""
        if self.path is None or not self._dirty:
            return
        now = self.clock()
        if not force and now - self._saved_at < SAVE_INTERVAL_S:
            return
        try:
            _write_states(self.path, self._states)
        except OSError as exc:  # a full or failing disk: kept in memory, tried again later
            if self._throttle.ready("save"):
                log.error("counter state %s: cannot save: %s (kept in memory)", self.path, exc)
            self._saved_at = now
            return
        self._saved_at = now
        self._dirty = False

    def close(self) -> None:
        self.save(force=True)


def _stored(reading: float, offset: float) -> float:
    """The reading plus the offset, without the binary noise of the addition (1e-9 kWh)."""
    return reading if offset == 0 else round(reading + offset, 9)


def _consistent(before: tuple[float, float], after: tuple[float, float], limit: RiseLimit) -> bool:
    (value, ts), (new_value, new_ts) = before, after
    return value <= new_value and new_value - value <= limit.max_rise(new_ts - ts)


def _read_states(path: Path) -> dict[Series, _State]:
    states = statefile.load_document(
        path,
        "counter state",
        "every counter takes a new baseline, and a counter reset before is no longer absorbed",
        _parse_states,
    )
    return states or {}


def _parse_states(document: Any) -> dict[Series, _State]:
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"format version {document.get('version')!r}")
    states = {
        Series(s["device"], s["channel"], s["model"], s["field"]): _State(
            float(s["value"]), float(s["ts"]), float(s["offset"])
        )
        for s in document["series"]
    }
    if not all(math.isfinite(v) for st in states.values() for v in vars(st).values()):
        raise ValueError("a value is not a finite number")
    return states


def _write_states(path: Path, states: dict[Series, _State]) -> None:
    """Replace the file atomically (statefile.py): a power cut leaves old or new."""
    document = {
        "version": FORMAT_VERSION,
        "series": [
            {
                "device": s.device,
                "channel": s.channel,
                "model": s.model,
                "field": s.field,
                "value": st.value,
                "ts": st.ts,
                "offset": st.offset,
            }
            for s, st in sorted(states.items())
        ],
    }
    statefile.save_document(path, document)
