"""The bill, computed from energy counters: pure functions over data (no I/O, no clock).

Input per (device, channel) and counter field: `CounterSeries`, the counter's readings
summarised per quarter hour (first, max, last of each 15-minute slot that has points; a slot
holds the readings after its start up to and including its end, so the counter at a boundary
is the reading at that second, else the last one before it), plus the last reading at or
before the range's start and the first one after its end. A
quarter hour is the unit because every time zone's offset is a multiple of 15 minutes: each
slot lies inside one local hour (one tariff period) and one local day, DST days included (a
local day is 92 slots when the clocks go forward, 100 when they go back).

Energy per slot = counter differences between consecutive readings (the counter rule of the
data model: counters only rise):
- A reading below the one before is a **reset** when it is below half of it (a meter replaced,
  a plug rebooted): the new counter is taken to have started from 0, so its value is the energy
  since the reset; the energy between the last reading before the reset and the reset itself is
  unknown and not invented. A smaller step back is noise: it adds nothing and the higher
  reading stays the reference.
- **Missing points at a boundary** (a gap in the data): the energy between the last reading
  before the gap and the first reading after it is shared evenly by the quarter hours from the
  one after the last reading's slot to the one holding the first reading after the gap (linear
  interpolation of the counter at slot resolution); the shares that fall outside the range
  (from the reading before the range, or to the first one after it) belong to the
  neighbouring days.
- Energy before the first reading of a series (no reading in the 7 days before the range) or
  after its last one is unknown: the bill says which span each series covers.

Import energy comes from `energy_import_kwh` where the series has it, else from
`energy_total_kwh` (a meter without an export register); export energy from
`energy_export_kwh`. Costs: import energy x the period's price; export energy x the export
price, as a credit (negative cost); the standing charge once per local day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from homewatt_collector.cost.tariff import Tariff

SLOT_S = 900
RESET_FRACTION = 0.5
IMPORT_FIELDS = ("energy_import_kwh", "energy_total_kwh")
EXPORT_FIELD = "energy_export_kwh"
COUNTER_FIELDS = (*IMPORT_FIELDS, EXPORT_FIELD)
EXPORT = "export"
BILL = "bill"


@dataclass(frozen=True)
class Reading:
    """One counter reading: `ts` in unix seconds, `value` in kWh."""

    ts: int
    value: float


@dataclass(frozen=True)
class Slot:
    """The readings of the quarter hour after `start` up to and including `start` + 900 (unix
    seconds): first, max, last (kWh)."""

    start: int
    first: float
    max: float
    last: float


@dataclass(frozen=True)
class CounterSeries:
    """One counter field of one (device, channel) over a range (see the module docstring)."""

    device: str
    channel: str
    field: str
    slots: tuple[Slot, ...]
    before: Reading | None = None
    after: Reading | None = None

    @property
    def has_data(self) -> bool:
        return bool(self.slots) or self.before is not None

    def span(self) -> tuple[int, int] | None:
        """(first, last) unix seconds that readings cover, the neighbours included."""
        times = [s.start for s in self.slots]
        first = self.before.ts if self.before else (times[0] if times else None)
        last = self.after.ts if self.after else (times[-1] + SLOT_S if times else None)
        if first is None or last is None:
            return None
        return first, last


def _step(reference: float, value: float) -> tuple[float, float]:
    """(energy since `reference`, the new reference) for the next reading `value`."""
    if value >= reference:
        return value - reference, value
    if value < reference * RESET_FRACTION:
        return value, value
    return 0.0, reference


def _index(ts: int, start: int) -> int:
    """The slot of a reading at `ts`: slot i holds (start + 900 i, start + 900 (i + 1)]."""
    return math.floor((ts - 1 - start) / SLOT_S)


def slot_energy(series: CounterSeries, start: int, end: int) -> list[float]:
    """kWh per quarter hour of [start, end) (unix seconds, multiples of 900), by the rules of the
    module docstring."""
    count = (end - start) // SLOT_S
    energy = [0.0] * count

    def spread(after_index: int, to_index: int, kwh: float) -> None:
        """`kwh` shared evenly by the slots after `after_index` up to `to_index`."""
        if kwh == 0.0:
            return
        if to_index <= after_index:  # both readings in one slot
            if 0 <= to_index < count:
                energy[to_index] += kwh
            return
        share = kwh / (to_index - after_index)
        for index in range(max(after_index + 1, 0), min(to_index + 1, count)):
            energy[index] += share

    reference: float | None = None
    reference_index = 0
    if series.before is not None:
        reference = series.before.value
        reference_index = _index(series.before.ts, start)
    for slot in series.slots:
        index = (slot.start - start) // SLOT_S
        if reference is None:
            reference = slot.first
        else:
            kwh, reference = _step(reference, slot.first)
            spread(reference_index, index, kwh)
        for value in (slot.max, slot.last):
            kwh, reference = _step(reference, value)
            if 0 <= index < count:
                energy[index] += kwh
        reference_index = index
    if series.after is not None and reference is not None:
        kwh, _ = _step(reference, series.after.value)
        spread(reference_index, _index(series.after.ts, start), kwh)
    return energy


def day_start(day: date, tariff: Tariff) -> int:
    """Unix seconds of local midnight starting `day` in the site's zone."""
    return int(datetime.combine(day, time(0), tzinfo=tariff.zone).timestamp())


def days_of(first: date, last: date) -> list[date]:
    """Every date from `first` to `last`, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class Line:
    """Energy and cost of one (device, channel) in one period of one local day.
    `period` is a tariff period (import) or `export`; `cost` is negative for export."""

    day: date
    device: str
    channel: str
    period: str
    energy_kwh: float
    price: float
    cost: float


@dataclass(frozen=True)
class DayBill:
    """One local day's bill: billed import energy, and cost with export credit and standing
    charge."""

    day: date
    energy_kwh: float
    cost: float


@dataclass(frozen=True)
class Bill:
    """The lines of every (device, channel), which of them add up to the bill, and each day's
    bill. `spans`: per (device, channel), the unix seconds its readings cover."""

    tariff: Tariff
    days: tuple[date, ...]
    lines: tuple[Line, ...]
    billed: frozenset[tuple[str, str]]
    day_bills: tuple[DayBill, ...]
    spans: Mapping[tuple[str, str], tuple[int, int] | None] = field(default_factory=dict)

    @property
    def standing_charge(self) -> float:
        return self.tariff.standing_charge_per_day * len(self.days)

    @property
    def total_cost(self) -> float:
        return sum(d.cost for d in self.day_bills)

    @property
    def total_energy_kwh(self) -> float:
        return sum(d.energy_kwh for d in self.day_bills)


def billed_channels(
    keys: Iterable[tuple[str, str]], devices: Sequence[str] | None
) -> frozenset[tuple[str, str]]:
    """The (device, channel) pairs whose cost makes the bill: of the `devices` given (None: all),
    the `total` channel where a device has one (its phases are inside it), else every channel."""
    keys = list(keys)
    out = set()
    for device, channel in keys:
        if devices is not None and device not in devices:
            continue
        has_total = (device, "total") in keys
        if channel == "total" or not has_total:
            out.add((device, channel))
    return frozenset(out)


def compute_bill(
    tariff: Tariff,
    first_day: date,
    last_day: date,
    series: Iterable[CounterSeries],
    devices: Sequence[str] | None = None,
) -> Bill:
    """The bill of local days `first_day`..`last_day` (both included) from counter series of
    COUNTER_FIELDS; `devices`: the devices that make the bill (None: all)."""
    days = days_of(first_day, last_day)
    start, end = day_start(days[0], tariff), day_start(days[-1] + timedelta(days=1), tariff)
    by_key: dict[tuple[str, str], dict[str, CounterSeries]] = {}
    for one in series:
        by_key.setdefault((one.device, one.channel), {})[one.field] = one
    # Each slot's local day, period and price (the same for every series).
    slot_day: list[date] = []
    slot_period: list[str] = []
    for index in range((end - start) // SLOT_S):
        local = datetime.fromtimestamp(start + index * SLOT_S, tariff.zone)
        name, _ = tariff.period_at(local)
        slot_day.append(local.date())
        slot_period.append(name)

    lines: list[Line] = []
    spans: dict[tuple[str, str], tuple[int, int] | None] = {}
    for key in sorted(by_key):
        fields = by_key[key]
        import_series = next(
            (fields[f] for f in IMPORT_FIELDS if f in fields and fields[f].has_data), None
        )
        export_series = fields.get(EXPORT_FIELD)
        if export_series is not None and not export_series.has_data:
            export_series = None
        shown = import_series or export_series
        if shown is None:
            continue
        spans[key] = shown.span()
        totals: dict[tuple[date, str], float] = {}
        measured: list[tuple[CounterSeries | None, list[str] | None]] = [
            (import_series, slot_period),
            (export_series, None),
        ]
        for counter, periods in measured:
            if counter is None:
                continue
            for index, kwh in enumerate(slot_energy(counter, start, end)):
                slot_key = (slot_day[index], periods[index] if periods else EXPORT)
                totals[slot_key] = totals.get(slot_key, 0.0) + kwh
        for day in days:
            names = tariff.period_names() if import_series is not None else []
            for name in names:
                kwh = totals.get((day, name), 0.0)
                lines.append(
                    Line(day, *key, name, kwh, tariff.price_of(name), kwh * tariff.price_of(name))
                )
            if export_series is not None:
                kwh = totals.get((day, EXPORT), 0.0)
                price = tariff.export_price
                lines.append(Line(day, *key, EXPORT, kwh, price, -kwh * price))

    billed = billed_channels(spans.keys(), devices)
    day_bills = []
    for day in days:
        of_day = [ln for ln in lines if ln.day == day and (ln.device, ln.channel) in billed]
        energy = sum(ln.energy_kwh for ln in of_day if ln.period != EXPORT)
        cost = sum(ln.cost for ln in of_day) + tariff.standing_charge_per_day
        day_bills.append(DayBill(day, energy, cost))
    return Bill(tariff, tuple(days), tuple(lines), billed, tuple(day_bills), spans)
