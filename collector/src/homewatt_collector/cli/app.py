"""`homewatt-collector`: the command line. Thin: it parses options and calls the modules.

Conventions (homewatt_common.cli, the same in homewatt-backup): every error is one plain line,
`homewatt-collector: error: file:line: key: problem` or `...: --option: problem`; `-c/--config`,
`--instance` and `-v` go before or after the sub-command.

The commands: the service's (`run`, `check-config`, `schema`: cli/service.py), `outbox`
(cli/outbox.py), `cost` (cost/cli.py), and one group per source kind that has commands of its
own, declared in the kind's folder (sources/<kind>/cli.py) and added here by one line in
KIND_COMMANDS.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer

from homewatt_collector import __version__
from homewatt_collector.cli import service
from homewatt_collector.cli.common import setup_logging
from homewatt_collector.cli.outbox import outbox_app
from homewatt_collector.cost.cli import cost_command
from homewatt_collector.sources.emporia.cli import emporia_app
from homewatt_collector.sources.modbus import cli as modbus_cli
from homewatt_collector.sources.shelly.cli import shelly_app
from homewatt_common.cli import EVERY_COMMAND, HomewattCommand, HomewattGroup, print_problems

# The source kinds' command groups, one line per kind: (its name, its typer group).
KIND_COMMANDS: list[tuple[str, typer.Typer]] = [
    ("modbus", modbus_cli.modbus_app),
    ("shelly", shelly_app),
    ("emporia", emporia_app),
]

# The commands that read an instance's config (--config/--instance), by their path.
CONFIG_COMMANDS = frozenset(
    {
        "run",
        "check-config",
        "modbus read",
        "read",
        "emporia import",
        "outbox",
        "outbox replay",
        "outbox requeue",
    }
)


class CollectorGroup(HomewattGroup):
    shared_options: ClassVar = {
        "config": CONFIG_COMMANDS,
        "instance": CONFIG_COMMANDS,
        "verbose": EVERY_COMMAND,
    }

    def shared_option_given(self, ctx: typer.Context, name: str, value: Any) -> None:
        if name == "verbose":
            setup_logging(logging.DEBUG if value else logging.INFO)


app = typer.Typer(
    name="homewatt-collector",
    help="Read energy meters and devices every second; deliver every sample to InfluxDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=CollectorGroup,
)
command = app.command
command("run", cls=HomewattCommand)(service.run)
command("check-config", cls=HomewattCommand)(service.check_config)
command("schema", cls=HomewattCommand)(service.schema)
app.add_typer(outbox_app, name="outbox")
for _name, _group in KIND_COMMANDS:
    app.add_typer(_group, name=_name)
command("cost", cls=HomewattCommand)(cost_command)


def _moved(old: str, new: str, target: Callable[..., None]) -> Callable[..., None]:
    """`old` as a hidden alias of `new` (same options, same behaviour), saying on stderr where
    it moves. Kept for one release after 0.1 (README: "Commands")."""

    @functools.wraps(target)
    def alias(*args: Any, **kwargs: Any) -> None:
        print_problems(
            [
                f"`homewatt-collector {old}` moves to `homewatt-collector {new}`; it goes away"
                " in the next release"
            ],
            level="warning",
        )
        target(*args, **kwargs)

    alias.__doc__ = f"Deprecated: use `homewatt-collector {new}` (same options)."
    return alias


command("read", cls=HomewattCommand, hidden=True)(_moved("read", "modbus read", modbus_cli.read))
command("scan", cls=HomewattCommand, hidden=True)(_moved("scan", "modbus scan", modbus_cli.scan))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"homewatt-collector {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="HOMEWATT_COLLECTOR_CONFIG",
            help="the instance's YAML config file",
        ),
    ] = None,
    instance: Annotated[
        str | None,
        typer.Option(
            help="the systemd instance NAME instead of --config: its config"
            " /etc/homewatt/collector/NAME.yaml, its outbox /var/lib/homewatt-collector/NAME",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    setup_logging(logging.DEBUG if verbose else logging.INFO)
