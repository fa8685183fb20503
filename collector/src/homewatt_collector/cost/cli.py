"""`homewatt-collector cost`: print a site's bill for a day, a month or a year, or write the
energy_cost points of days (by default the local day just ended: the daily timer's job).

Only the options are read here; report.py does the work, imported when the command runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from typer._click.core import ParameterSource

from homewatt_collector.errors import CollectorError
from homewatt_common.cli import fail
from homewatt_common.problems import ProblemsError, option_problem

T = TypeVar("T")
CONFIG_DIR = Path("/etc/homewatt/cost")  # --site NAME: CONFIG_DIR/NAME.yaml
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
    return CONFIG_DIR / f"{site}.yaml"


def _check(
    check: bool,
    *,
    config: Path | None,
    site: str | None,
    tariff: Path | None,
    no_secrets: bool,
    check_command: Callable[..., None],
) -> None:
    """`cost --check [-c FILE | --site NAME] [--tariff FILE] [--no-secrets]`: the config and
    the tariff it names, or with --tariff alone only that tariff."""
    if not check:
        raise option_problem("--check", "--no-secrets and --tariff go with --check")
    only_tariff = config is None and site is None and tariff is not None
    path = None if only_tariff else _config_path(config, site)
    check_command(path, tariff, no_secrets=no_secrets)


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
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="only validate the cost config and its tariff (and read the token), print ok",
        ),
    ] = False,
    no_secrets: Annotated[
        bool, typer.Option("--no-secrets", help="with --check: do not read the token")
    ] = False,
    tariff: Annotated[
        Path | None,
        typer.Option(
            help="with --check: this tariff file instead of the config's (alone: only the tariff)"
        ),
    ] = None,
) -> None:
    """Compute energy and cost from the counters in InfluxDB, per device, channel and tariff period.

    Prints a table, or with --write stores the daily points of measurement energy_cost
    (re-running a day overwrites its points)."""

    def action() -> None:
        # imported here: `homewatt-collector run` (the 1 s service) never loads the cost code
        from homewatt_collector.cost.report import (  # noqa: PLC0415 (see above)
            bill_command,
            check_command,
        )

        if check or no_secrets or tariff is not None:
            _check(
                check,
                config=config or _group_config(ctx),
                site=site,
                tariff=tariff,
                no_secrets=no_secrets,
                check_command=check_command,
            )
            return

        options = {"day": day, "month": month, "year": year, "since": since, "until": until}
        explicit = not write or any(v is not None for v in options.values())
        path = _config_path(config or _group_config(ctx), site)
        bill_command(path, lambda: choose_days(**options) if explicit else None, write=write)

    _guarded(action)
