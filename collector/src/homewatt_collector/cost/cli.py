"""`homewatt-collector cost`: print a site's bill for a day, a month or a year, or write the
energy_cost points of days (by default the local day just ended: the daily timer's job)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from typer._click.core import ParameterSource

from homewatt_collector.cost.bill import EXPORT, Bill, compute_bill, day_start
from homewatt_collector.cost.config import CostConfig, config_of_site, load_cost_config, read_token
from homewatt_collector.cost.read import CounterQuery, read_counters
from homewatt_collector.cost.tariff import Tariff, load_tariff
from homewatt_collector.cost.v1api import V1Client
from homewatt_collector.cost.write import write_bill
from homewatt_collector.errors import CollectorError, ConfigError
from homewatt_common.cli import fail, plain_console
from homewatt_common.problems import ProblemsError, option_problem

T = TypeVar("T")
_FORMATS = {
    "--day": (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "a date like 2026-11-29"),
    "--month": (re.compile(r"^\d{4}-\d{2}$"), "a month like 2026-11"),
    "--year": (re.compile(r"^\d{4}$"), "a year like 2026"),
    "--from": (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "a date like 2026-11-01"),
    "--to": (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "a date like 2026-11-29"),
}


def _date(option: str, text: str) -> date:
    pattern, like = _FORMATS[option]
    padded = {"--month": "-01", "--year": "-01-01"}.get(option, "")
    try:
        if not pattern.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text + padded)
    except ValueError:
        raise option_problem(option, f"{text!r} is not {like}") from None


def day_just_ended(now: datetime, tariff: Tariff) -> date:
    """The local date before `now`'s in the site's zone (`now` timezone-aware)."""
    return now.astimezone(tariff.zone).date() - timedelta(days=1)


def choose_days(
    *,
    day: str | None,
    month: str | None,
    year: str | None,
    since: str | None,
    until: str | None,
) -> tuple[date, date, str]:
    """(first day, last day, a label) from the options; ProblemsError naming the option."""
    given = [o for o, v in (("--day", day), ("--month", month), ("--year", year)) if v]
    ranged = since is not None or until is not None
    if len(given) + ranged > 1:
        named = [*given, *(["--from/--to"] if ranged else [])]
        raise option_problem(
            named[1], f"give one of --day, --month, --year or --from/--to, not {', '.join(named)}"
        )
    if day:
        first = _date("--day", day)
        return first, first, first.isoformat()
    if month:
        first = _date("--month", month)
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return first, last, first.strftime("%Y-%m")
    if year:
        first = _date("--year", year)
        return first, first.replace(month=12, day=31), str(first.year)
    if ranged:
        if since is None or until is None:
            raise option_problem("--from" if since is None else "--to", "give both --from and --to")
        first, last = _date("--from", since), _date("--to", until)
        if last < first:
            raise option_problem("--to", f"{until} is before --from {since}")
        return first, last, f"{first.isoformat()} to {last.isoformat()}"
    raise option_problem(
        "--day", "give --day, --month, --year or --from/--to (or --write for the day just ended)"
    )


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
    """A line per (device, channel) whose readings do not cover the whole range, or one line
    when the site has no counter there at all (a wrong site or database?)."""
    start = day_start(bill.days[0], bill.tariff)
    end = day_start(bill.days[-1] + timedelta(days=1), bill.tariff)
    if not bill.spans:
        return [
            f"no energy counter of site {site!r} in database {database!r} in or near these days:"
            " the bill is the standing charge alone (is the site or the database wrong?)"
        ]
    notes = []
    for (device, channel), span in sorted(bill.spans.items()):
        if span is None or (span[0] <= start and span[1] >= end):
            continue
        zone = bill.tariff.zone
        seen = " to ".join(datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M") for t in span)
        notes.append(f"{device}/{channel}: readings from {seen} only: energy outside is not billed")
    return notes


def _guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except (CollectorError, ProblemsError) as exc:
        raise fail(exc) from None


def _config_path(config: Path | None, site: str | None) -> Path:
    if config is not None and site is not None:
        raise option_problem("--site", "give --config or --site, not both")
    if config is not None:
        return config
    if site is None:
        raise option_problem("--config", "give the cost config file, or --site NAME")
    if not re.fullmatch(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", site):
        raise option_problem("--site", f"{site!r} is not a site name like home")
    return config_of_site(site)


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


def _group_config(ctx: typer.Context) -> Path | None:
    """`homewatt-collector -c FILE cost`: the -c given before the sub-command (on the command
    line only: the collector's $HOMEWATT_COLLECTOR_CONFIG names a collector config)."""
    parent = ctx.parent
    if parent is None or parent.get_parameter_source("config") is not ParameterSource.COMMANDLINE:
        return None
    value = parent.params.get("config")
    return value if isinstance(value, Path) else None


def cost_command(
    ctx: typer.Context,
    *,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="HOMEWATT_COST_CONFIG", help="the site's cost config file"
        ),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(help="the site NAME instead of --config: /etc/homewatt/cost/NAME.yaml"),
    ] = None,
    day: Annotated[str | None, typer.Option(help="a local day, e.g. 2026-11-29")] = None,
    month: Annotated[str | None, typer.Option(help="a month, e.g. 2026-11")] = None,
    year: Annotated[str | None, typer.Option(help="a year, e.g. 2026")] = None,
    since: Annotated[str | None, typer.Option("--from", help="first day of a range")] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="last day of a range (included)")
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="write measurement energy_cost for the days (default: the day just ended)",
        ),
    ] = False,
) -> None:
    """Compute energy and cost from the counters in InfluxDB, per device, channel and tariff period.

    Prints a table, or with --write stores the daily points of measurement energy_cost
    (re-running a day overwrites its points)."""

    def action() -> None:
        loaded = load_cost_config(_config_path(config or _group_config(ctx), site))
        options = {"day": day, "month": month, "year": year, "since": since, "until": until}
        # the day just ended needs the tariff's zone; explicit days are checked before it is read
        chosen = (
            choose_days(**options)
            if not write or any(v is not None for v in options.values())
            else None
        )
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

    _guarded(action)
