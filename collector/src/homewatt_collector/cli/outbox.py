"""`homewatt-collector outbox [replay|requeue]`: inspect and drain the outbox (samples not yet
delivered), of an instance (--config/--instance) or of `run --demo` (--demo)."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Annotated, ClassVar

import typer

from homewatt_collector.cli.common import DEMO_CONFIG, config_file, guarded
from homewatt_collector.config import CollectorConfig, load_config, outbox_dir, read_token
from homewatt_collector.errors import CollectorError
from homewatt_collector.outbox import Outbox
from homewatt_collector.service import make_forwarder, outbox_path
from homewatt_common.cli import (
    HomewattCommand,
    HomewattGroup,
    option,
    plain_console,
    progress_console,
)
from homewatt_common.problems import option_problem

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

log = logging.getLogger("homewatt_collector")


class OutboxGroup(HomewattGroup):
    shared_options: ClassVar = {"demo": frozenset({"replay", "requeue"})}


outbox_app = typer.Typer(
    help="Inspect and drain the outbox (samples not yet delivered).", cls=OutboxGroup
)


def _outbox_config(ctx: typer.Context) -> CollectorConfig:
    """The config whose outboxes the outbox commands open: --demo's, or --config/--instance."""
    if option(ctx, "demo"):
        if config_file(ctx) is not None:
            raise option_problem("--demo", "give --demo or --config/--instance, not both")
        if not DEMO_CONFIG.exists():
            raise option_problem(
                "--demo",
                f"no demo run here ({DEMO_CONFIG.absolute()} is missing):"
                " run the outbox commands where `homewatt-collector run --demo` ran",
            )
        return load_config(DEMO_CONFIG)
    path = config_file(ctx)
    if path is None:
        raise option_problem("--config", "give the config file, --instance NAME or --demo")
    return load_config(path)


def _open_outboxes(config: CollectorConfig, lock: bool) -> list[tuple[str, Outbox]]:
    directory = outbox_dir(config)
    if directory.assumed:
        log.info("outbox %s (%s)", directory.path, directory.assumed)
    opened = []
    for sink in config.sinks:
        path = outbox_path(directory.path, sink.name)
        if not path.exists():
            raise CollectorError(f"no outbox at {path} (has the collector run with this config?)")
        opened.append((sink.name, Outbox(path, config.outbox.max_size_mb * 1024 * 1024, lock=lock)))
    return opened


@outbox_app.callback(invoke_without_command=True)
def outbox_status(
    ctx: typer.Context,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="the outbox of `run --demo` in this directory (homewatt-demo/)"
        ),
    ] = False,
) -> None:
    """Backlog, oldest sample, drops and quarantined points per sink."""
    if ctx.invoked_subcommand is not None:
        return

    def action() -> None:
        from homewatt_collector.cli import display  # noqa: PLC0415

        outboxes = _open_outboxes(_outbox_config(ctx), lock=False)
        console = plain_console()
        for name, outbox in outboxes:
            console.print(
                display.render_outbox_status(
                    name, outbox.stats(), outbox.quarantined(5), time.time()
                )
            )
            outbox.close()

    guarded(action)


@outbox_app.command(cls=HomewattCommand)
def replay(ctx: typer.Context) -> None:
    """Send everything pending now (the service must be stopped: it holds the outbox)."""

    def action() -> None:
        loaded = _outbox_config(ctx)
        stop = threading.Event()
        for name, outbox in _open_outboxes(loaded, lock=True):
            index = next(i for i, s in enumerate(loaded.sinks) if s.name == name)
            try:
                forwarder = make_forwarder(
                    loaded.sinks[index], read_token(loaded, index), outbox, stop
                )
            except BaseException:
                outbox.close()
                raise
            try:
                from rich.progress import Progress  # noqa: PLC0415

                console, shown = progress_console()
                with Progress(console=console, disable=not shown) as progress:
                    task = progress.add_task(f"sink {name}", total=outbox.backlog)

                    def advance(n: int, task: TaskID = task, progress: Progress = progress) -> None:
                        progress.advance(task, n)

                    sent = forwarder.drain(progress=advance)
                typer.echo(f"sink {name}: {sent} samples delivered, {outbox.backlog} pending")
            finally:
                forwarder.sink.close()
                outbox.close()

    guarded(action)


@outbox_app.command(cls=HomewattCommand)
def requeue(ctx: typer.Context) -> None:
    """Move quarantined points back into the queue (after fixing what the server refused)."""

    def action() -> None:
        for name, outbox in _open_outboxes(_outbox_config(ctx), lock=True):
            moved = outbox.requeue_quarantined()
            outbox.close()
            typer.echo(f"sink {name}: {moved} quarantined points queued again")

    guarded(action)
