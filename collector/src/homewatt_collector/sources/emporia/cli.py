"""`homewatt-collector emporia ...`: the Emporia kind's commands (import)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from homewatt_collector.cli.common import guarded, load
from homewatt_common.cli import HomewattCommand, HomewattGroup, fail, progress_console

if TYPE_CHECKING:
    from homewatt_collector.models import Sample

emporia_app = typer.Typer(help="Emporia Vue devices and smart plugs (cloud).", cls=HomewattGroup)


@emporia_app.command("import", cls=HomewattCommand)
def import_history(
    ctx: typer.Context,
    *,
    days: Annotated[int, typer.Option(min=1, max=720, help="days of history to import")],
) -> None:
    """Import hourly and daily history of every channel into the instance's outbox (the unit
    must be stopped: it holds the outbox; it delivers them when it starts again). A second
    run adds nothing that was imported before."""
    from rich.progress import Progress  # noqa: PLC0415 (rich only when drawing)

    from homewatt_collector.config import outbox_dir  # noqa: PLC0415
    from homewatt_collector.outbox import Outbox  # noqa: PLC0415
    from homewatt_collector.service import outbox_path  # noqa: PLC0415
    from homewatt_collector.sources.emporia import require_pyemvue  # noqa: PLC0415
    from homewatt_collector.sources.emporia.config import (  # noqa: PLC0415
        EmporiaSourceConfig,
        read_passwords,
    )

    def action() -> None:
        config = load(ctx)
        source = config.source
        if not isinstance(source, EmporiaSourceConfig):
            raise fail(f"the config's source is {source.kind!r}, not emporia")
        require_pyemvue()  # the `emporia` extra, before api.py imports it
        from homewatt_collector.sources.emporia.api import EmporiaApi  # noqa: PLC0415
        from homewatt_collector.sources.emporia.history import run_import  # noqa: PLC0415

        passwords = read_passwords(source)
        directory = outbox_dir(config).path
        outboxes = []
        try:
            for sink in config.sinks:
                path = outbox_path(directory, sink.name)
                outboxes.append(Outbox(path, config.outbox.max_size_mb * 1024 * 1024))
            apis = {a.name: EmporiaApi(a, passwords[a.name], directory) for a in source.accounts}
            console, shown = progress_console()
            with Progress(console=console, disable=not shown) as progress:
                task = progress.add_task(f"importing {days} days", total=None)

                def put(samples: list[Sample]) -> None:
                    for outbox in outboxes:
                        outbox.put(samples)

                def advance(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                added = run_import(
                    source, config.site, apis, directory, days, put=put, progress=advance
                )
        finally:
            for outbox in outboxes:
                outbox.close()
        typer.echo(
            f"{added} samples queued in the outbox; the unit delivers them when it starts"
            " (or run `homewatt-collector outbox replay` now)"
        )

    guarded(action)
