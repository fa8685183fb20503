"""Rich renderings for the terminal: the live table of `run` and the `outbox` status, and the
units and number formats every kind's tables share (the data model puts the unit in the name)."""

from __future__ import annotations

import datetime as dt

from rich.console import Group
from rich.table import Table
from rich.text import Text

from homewatt_collector.models import FieldValue, Sample
from homewatt_collector.outbox import OutboxStats, QuarantinedEntry
from homewatt_collector.service import Cycle

MB = 1024 * 1024  # outbox.max_size_mb's megabyte

# Field name suffix -> unit, longest first (the data model puts the unit in the name).
_UNITS = (
    ("_kvarh", "kvarh"),
    ("_kwh", "kWh"),
    ("_var", "var"),
    ("_va", "VA"),
    ("_hz", "Hz"),
    ("_w", "W"),
    ("_v", "V"),
    ("_a", "A"),
    ("_ms", "ms"),
)


def unit_of(field: str) -> str:
    return next((unit for suffix, unit in _UNITS if field.endswith(suffix)), "")


def quantity_of(field: str) -> str:
    suffix = next((s for s, _ in _UNITS if field.endswith(s)), "")
    return (
        field[: len(field) - len(suffix)].replace("_", " ") if suffix else field.replace("_", " ")
    )


def format_value(value: FieldValue) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def readings_table(samples: list[Sample], title: str) -> Table:
    """One column per device/channel, one row per quantity, values with units."""
    table = Table(title=title, title_justify="left")
    table.add_column("quantity")
    columns = [f"{s.tags.get('device', '?')} {s.tags.get('channel', '')}".strip() for s in samples]
    for column in columns:
        table.add_column(column, justify="right")
    fields = sorted({name for sample in samples for name in sample.fields})
    for name in fields:
        cells = [
            f"{format_value(s.fields[name])} {unit_of(name)}".strip() if name in s.fields else ""
            for s in samples
        ]
        table.add_row(quantity_of(name), *cells)
    return table


def render_cycle(cycle: Cycle, site: str) -> Group:
    when = dt.datetime.fromtimestamp(cycle.slot.ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts: list[Table | Text] = [readings_table(cycle.reading.samples, f"{site} at {when}")]
    status = Text(
        f"lateness {cycle.slot.lateness_s * 1000:.1f} ms, read {cycle.read_s * 1000:.1f} ms, "
        f"read errors {cycle.reading.errors}, skipped slots {cycle.slot.skipped}"
    )
    parts.append(status)
    sinks = Table(title="delivery", title_justify="left")
    for column in ("sink", "state", "backlog", "delivered", "dropped", "quarantined"):
        sinks.add_column(column, justify="right" if column not in ("sink", "state") else "left")
    for delivery in cycle.deliveries:
        outbox = delivery.outbox
        sinks.add_row(
            delivery.forwarder.sink.name,
            delivery.forwarder.state[:60],
            str(outbox.backlog),
            str(outbox.counter("delivered")),
            str(outbox.counter("dropped")),
            str(outbox.counter("quarantined")),
        )
    parts.append(sinks)
    return Group(*parts)


def render_outbox_status(
    name: str, stats: OutboxStats, quarantined: list[QuarantinedEntry], now: float
) -> Group:
    table = Table(title=f"outbox of sink {name}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    oldest = "-"
    if stats.oldest_ts is not None:
        oldest = (
            dt.datetime.fromtimestamp(stats.oldest_ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            + f" ({_age(now - stats.oldest_ts)} ago)"
        )
    table.add_row("pending samples (backlog)", str(stats.backlog))
    table.add_row("oldest pending sample", oldest)
    # in the unit of outbox.max_size_mb (MB of 2**20 bytes), so a 200 MB limit reads 200 MB
    table.add_row("size", f"{stats.size_bytes / MB:.1f} MB of {stats.max_bytes / MB:.0f} MB")
    for counter in ("enqueued", "delivered", "duplicates", "dropped", "quarantined"):
        table.add_row(f"{counter} (lifetime)", str(stats.counters[counter]))
    table.add_row("quarantined now", str(stats.quarantined_now))
    parts: list[Table] = [table]
    if quarantined:
        q = Table(
            title="latest quarantined points (`outbox requeue` sends them again)",
            title_justify="left",
        )
        for column in ("status", "reason", "line"):
            q.add_column(column)
        for entry in quarantined:
            q.add_row(str(entry.status), entry.reason[:80], entry.line[:80])
        parts.append(q)
    return Group(*parts)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
