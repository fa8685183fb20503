"""What `homewatt-collector cost` does once its options are read: load the site's cost config
and tariff, read the counters, compute the bill, then print it as a table or write its
energy_cost points; coverage problems go to stderr."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import typer
from rich.table import Table

from homewatt_collector.cost.bill import EXPORT, Bill, compute_bill, day_start
from homewatt_collector.cost.config import CostConfig, load_cost_config, read_token, token_location
from homewatt_collector.cost.read import CounterQuery, read_counters
from homewatt_collector.cost.tariff import Tariff, load_tariff
from homewatt_collector.cost.v1api import V1Client
from homewatt_collector.cost.write import write_bill
from homewatt_collector.errors import ConfigError
from homewatt_common.cli import CheckReport, plain_console
from homewatt_common.problems import ProblemsError

Days = tuple[date, date, str]


def day_just_ended(now: datetime, tariff: Tariff) -> date:
    """The local date before `now`'s in the site's zone (`now` timezone-aware)."""
    return now.astimezone(tariff.zone).date() - timedelta(days=1)


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def render_bill(bill: Bill, site: str, label: str) -> Table:
    """The bill as a table: per device, channel and period over the whole range; the standing
    charge; the total. Channels outside the bill (a device's phases, devices not billed) are
    marked and not added."""
    tariff = bill.tariff
    days = _days(len(bill.days))
    table = Table(
        title=f"site {site}, {label} ({days}, {tariff.timezone}), {tariff.currency}",
        title_justify="left",
    )
    for name, justify in (
        ("device", "left"),
        ("channel", "left"),
        ("period", "left"),
        ("energy kWh", "right"),
        ("price/kWh", "right"),
        (f"cost {tariff.currency}", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    totals: dict[tuple[str, str, str], tuple[float, float, float]] = {}
    for line in bill.lines:
        key = (line.device, line.channel, line.period)
        energy, _, cost = totals.get(key, (0.0, 0.0, 0.0))
        totals[key] = (energy + line.energy_kwh, line.price, cost + line.cost)
    for (device, channel, period), (energy, price, cost) in totals.items():
        note = "" if (device, channel) in bill.billed else "not in the total"
        sign = "-" if period == EXPORT else ""
        table.add_row(
            device, channel, period, f"{energy:.3f}", f"{sign}{price:.4f}", f"{cost:.2f}", note
        )
    table.add_section()
    table.add_row(
        "standing charge",
        "",
        "",
        "",
        f"{tariff.standing_charge_per_day:.4f}/day",
        f"{bill.standing_charge:.2f}",
        f"{_days(len(bill.days))}",
    )
    table.add_row("total", "", "", f"{bill.total_energy_kwh:.3f}", "", f"{bill.total_cost:.2f}", "")
    return table


def coverage_notes(bill: Bill, site: str, database: str) -> list[str]:
    """A line per billed (device, channel) whose readings do not cover the whole range, or one
    line when the site has no counter there at all (a wrong site or database?). Channels
    outside the bill (phases inside a `total`, devices not in `devices:`) get no line: their
    gaps change nothing in it."""
    start = day_start(bill.days[0], bill.tariff)
    end = day_start(bill.days[-1] + timedelta(days=1), bill.tariff)
    if not bill.spans:
        return [
            f"no energy counter of site {site!r} in database {database!r} in or near these days:"
            " the bill is the standing charge alone (is the site or the database wrong?)"
        ]
    notes = []
    for (device, channel), span in sorted(bill.spans.items()):
        if (device, channel) not in bill.billed:
            continue
        if span is None or (span[0] <= start and span[1] >= end):
            continue
        zone = bill.tariff.zone
        seen = " to ".join(datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M") for t in span)
        notes.append(f"{device}/{channel}: readings from {seen} only: energy outside is not billed")
    return notes


def _compute(config: CostConfig, tariff: Tariff, first: date, last: date) -> tuple[Bill, V1Client]:
    client = V1Client(
        config.influxdb.url, config.influxdb.database, read_token(config), config.influxdb.timeout_s
    )
    query = CounterQuery(
        config.site,
        config.influxdb.read_retention_policy,
        day_start(first, tariff),
        day_start(last + timedelta(days=1), tariff),
    )
    series = read_counters(client, query)
    return compute_bill(tariff, first, last, series, config.devices), client


def bill_command(path: Path, days: Callable[[], Days | None], *, write: bool) -> None:
    """Load `path` (a cost config), judge the day options (`days()`: None for the day just
    ended), compute, then print the table or write the points. CollectorError, ProblemsError."""
    loaded = load_cost_config(path)
    chosen = days()
    try:
        tariff = load_tariff(loaded.tariff)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
    if chosen is None:
        ended = day_just_ended(datetime.now().astimezone(), tariff)
        chosen = (ended, ended, ended.isoformat())
    first, last, label = chosen
    bill, client = _compute(loaded, tariff, first, last)
    if write:
        count = write_bill(client, bill, loaded.site, loaded.influxdb.write_retention_policy)
        typer.echo(
            f"site {loaded.site}, {label}: {count} energy_cost points written,"
            f" bill {bill.total_cost:.2f} {tariff.currency} for {bill.total_energy_kwh:.3f} kWh"
        )
    else:
        plain_console().print(render_bill(bill, loaded.site, label))
    for note in coverage_notes(bill, loaded.site, loaded.influxdb.database):
        typer.echo(note, err=True)


def _tariff_summary(tariff: Tariff) -> str:
    prices = (
        f"flat {tariff.import_price}"
        if tariff.import_price is not None
        else ", ".join(f"{p.name} {p.price}" for p in tariff.periods or [])
    )
    return (
        f"{tariff.timezone}, {tariff.currency} per kWh: {prices}; standing charge"
        f" {tariff.standing_charge_per_day} a day, export {tariff.export_price}"
    )


def check_command(path: Path | None, tariff_path: Path | None, *, no_secrets: bool) -> None:
    """`cost --check`: validate the cost config `path` and the tariff it names (`tariff_path`
    instead when given; only the tariff when `path` is None) and, unless `no_secrets`, read the
    token; print what was checked, then `ok`, or the problems (exit 1). Touches no server."""
    report = CheckReport()
    config: CostConfig | None = None
    if path is not None:
        try:
            config = load_cost_config(path)
        except ConfigError as exc:
            report.error(exc)
            report.finish()
        assert config is not None
        report.say(f"{path}: site {config.site}, InfluxDB {config.influxdb.url}")
        tariff_path = tariff_path or config.tariff
    assert tariff_path is not None
    try:
        tariff = load_tariff(tariff_path)
        report.say(f"  tariff {tariff_path}: {_tariff_summary(tariff)}")
    except ProblemsError as exc:
        report.error(exc)
    if config is not None:
        try:
            location = token_location(config)
        except ConfigError as exc:
            report.error(exc)
            location = None
        if location is not None:
            report.say(f"  token from {location.path}")
            if location.assumed:
                report.say(f"    assumed {location.assumed}")
            if no_secrets:
                report.say("    not read (--no-secrets)")
            else:
                try:
                    read_token(config)
                    report.say(f"    read {location.path}: a token")
                except ConfigError as exc:
                    report.error(exc)
    report.finish()
