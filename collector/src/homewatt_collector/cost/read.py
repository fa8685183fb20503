"""Reading energy counters with InfluxQL (v1 `/query`): measurement `electricity`, the site's
series grouped by `device` and `channel`, each counter field of bill.COUNTER_FIELDS.

Per field, three statements (sent in one request per chunk of at most CHUNK_DAYS days):
- the quarter hours of the range: `first`, `max`, `last` GROUP BY time(15m, 1s) fill(none). The
  1 s offset makes each slot hold the readings after its start up to and including its end
  (second precision), so the counter at a boundary is the reading at that very second when
  there is one (a 1 s meter always has it), else the last one before;
- the last reading at or before the range's start (at most NEIGHBOUR_DAYS days before) and the
  first one after its end (each with its own timestamp: one selector per statement).
The answer is what bill.compute_bill takes (bill.CounterSeries). Never reads the outbox: only
what InfluxDB holds is billed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from homewatt_collector.cost.bill import COUNTER_FIELDS, SLOT_S, CounterSeries, Reading, Slot
from homewatt_collector.cost.v1api import CostError, V1Client

MEASUREMENT = "electricity"
CHUNK_DAYS = 31
NEIGHBOUR_DAYS = 7
DAY_S = 86_400


def quote_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class CounterQuery:
    """What to read: the site, the retention policy ('' the default), the range in unix
    seconds [start, end) (multiples of 900)."""

    site: str
    retention_policy: str
    start: int
    end: int

    def source(self) -> str:
        measurement = quote_identifier(MEASUREMENT)
        if self.retention_policy:
            return f"{quote_identifier(self.retention_policy)}.{measurement}"
        return measurement

    def where(self, after: int, until: int) -> str:
        """The site's points after `after` up to and including `until` (unix seconds)."""
        return (
            f'WHERE "site" = {quote_string(self.site)}'
            f" AND time >= {after + 1}s AND time < {until + 1}s"
        )

    def slot_statement(self, field: str, start: int, end: int) -> str:
        f = quote_identifier(field)
        return (
            f'SELECT first({f}) AS "first", max({f}) AS "max", last({f}) AS "last"'  # noqa: S608 (InfluxQL, every name quoted)
            f" FROM {self.source()} {self.where(start, end)}"
            f' GROUP BY time({SLOT_S // 60}m, 1s), "device", "channel" fill(none)'
        )

    def before_statement(self, field: str) -> str:
        window = self.where(self.start - NEIGHBOUR_DAYS * DAY_S, self.start)
        return (
            f"SELECT last({quote_identifier(field)}) FROM {self.source()} {window}"  # noqa: S608 (InfluxQL, every name quoted)
            ' GROUP BY "device", "channel"'
        )

    def after_statement(self, field: str) -> str:
        window = self.where(self.end, self.end + NEIGHBOUR_DAYS * DAY_S)
        return (
            f"SELECT first({quote_identifier(field)}) FROM {self.source()} {window}"  # noqa: S608 (InfluxQL, every name quoted)
            ' GROUP BY "device", "channel"'
        )

    def chunks(self) -> Iterator[tuple[int, int]]:
        step = CHUNK_DAYS * DAY_S
        for start in range(self.start, self.end, step):
            yield start, min(start + step, self.end)


def _rows(result: dict[str, Any]) -> Iterator[tuple[tuple[str, str], list[Any]]]:
    """((device, channel), row) of every series of one statement's result."""
    for series in result.get("series", []):
        tags = series.get("tags") or {}
        key = (str(tags.get("device", "")), str(tags.get("channel", "")))
        for row in series.get("values", []):
            yield key, row


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CostError(f"{what} is {value!r}, not a number (a field type conflict?)")
    return float(value)


def read_counters(client: V1Client, query: CounterQuery) -> list[CounterSeries]:
    """Every (device, channel, field) series of the site with readings in or near the range."""
    slots: dict[tuple[str, str, str], list[Slot]] = {}
    for start, end in query.chunks():
        results = client.query([query.slot_statement(f, start, end) for f in COUNTER_FIELDS])
        for field, result in zip(COUNTER_FIELDS, results, strict=True):
            for (device, channel), row in _rows(result):
                what = f"{field} of {device}/{channel} at {row[0]}"
                slots.setdefault((device, channel, field), []).append(
                    Slot(
                        int(row[0]) - 1,
                        _number(row[1], what),
                        _number(row[2], what),
                        _number(row[3], what),
                    )
                )
    statements = [query.before_statement(f) for f in COUNTER_FIELDS]
    statements += [query.after_statement(f) for f in COUNTER_FIELDS]
    results = client.query(statements)
    neighbours: dict[tuple[str, str, str], dict[str, Reading]] = {}
    for index, result in enumerate(results):
        side = "before" if index < len(COUNTER_FIELDS) else "after"
        field = COUNTER_FIELDS[index % len(COUNTER_FIELDS)]
        for (device, channel), row in _rows(result):
            value = _number(row[1], f"{field} of {device}/{channel} at {row[0]}")
            neighbours.setdefault((device, channel, field), {})[side] = Reading(int(row[0]), value)
    out = []
    for key in sorted(set(slots) | set(neighbours)):
        device, channel, field = key
        near = neighbours.get(key, {})
        out.append(
            CounterSeries(
                device,
                channel,
                field,
                tuple(sorted(slots.get(key, []), key=lambda s: s.start)),
                near.get("before"),
                near.get("after"),
            )
        )
    return out
