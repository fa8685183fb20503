"""`homewatt-collector shelly ...`: the Shelly kind's commands (discover)."""

from __future__ import annotations

from typing import Annotated

import typer

from homewatt_common.cli import (
    HomewattCommand,
    HomewattGroup,
    fail,
    plain_console,
    progress_console,
)

shelly_app = typer.Typer(
    help="Shelly plugs, switches and energy meters on the local network.", cls=HomewattGroup
)


@shelly_app.command("discover", cls=HomewattCommand)
def discover(
    *,
    subnet: Annotated[str, typer.Option(help="the subnet to scan, e.g. 192.168.1.0/24")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="the devices' HTTP port")] = 80,
    timeout: Annotated[
        float, typer.Option(min=0.1, max=10, help="seconds to wait for each address")
    ] = 1.0,
    force: Annotated[bool, typer.Option("--force", help="scan a subnet larger than a /22")] = False,
) -> None:
    """Find Shelly devices (GET /shelly on every address, at most 50 a second) and print them
    as a config block ready to paste."""
    from rich.progress import Progress  # noqa: PLC0415 (rich only when drawing)

    from homewatt_collector.sources.shelly import discover as scan  # noqa: PLC0415 (start-up time)

    try:
        addresses = scan.hosts_of(subnet, force)
    except scan.SubnetError as exc:
        raise fail(str(exc)) from None
    console, shown = progress_console()
    with Progress(console=console, transient=True, disable=not shown) as progress:
        task = progress.add_task(f"scanning {subnet}", total=len(addresses))
        found = scan.discover(addresses, port, timeout, progress=lambda: progress.advance(task))
    if not found:
        raise fail(
            f"no Shelly device answered in {subnet} (port {port}): check the subnet, and that"
            " the devices are on this network"
        )
    plain_console().print(scan.render(found, subnet), end="")
