"""`homewatt-collector`: the command line. Thin: it parses options and calls the modules."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import Progress, TaskID

from homewatt_collector import __version__
from homewatt_collector.config import (
    CollectorConfig,
    load_config,
    outbox_dir,
    read_token,
    validate_config,
)
from homewatt_collector.display import render_cycle, render_outbox_status
from homewatt_collector.errors import CollectorError
from homewatt_collector.outbox import Outbox
from homewatt_collector.service import Cycle, build_collector, make_forwarder, outbox_path

app = typer.Typer(
    name="homewatt-collector",
    help="Read energy meters and devices every second; deliver every sample to InfluxDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
outbox_app = typer.Typer(help="Inspect and drain the outbox (samples not yet delivered).")
app.add_typer(outbox_app, name="outbox")

err = Console(stderr=True)
log = logging.getLogger("homewatt_collector")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", envvar="HOMEWATT_COLLECTOR_CONFIG", help="the instance's YAML config file"
    ),
]

DEMO_STATE_DIR = Path("homewatt-demo")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"homewatt-collector {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    _setup_logging(logging.DEBUG if verbose else logging.INFO)


def _setup_logging(level: int) -> None:
    # Under systemd, journald adds the time and the unit: a plain line is enough.
    fmt = (
        "%(levelname)s %(message)s"
        if os.environ.get("JOURNAL_STREAM")
        else ("%(asctime)s %(levelname)s %(message)s")
    )
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # The libraries log each failed request themselves; our one line per fault is enough.
    for noisy in ("urllib3", "influxdb_client", "pymodbus"):
        logging.getLogger(noisy).setLevel(
            logging.CRITICAL if level > logging.DEBUG else logging.DEBUG
        )


def _fail(exc: CollectorError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(1)


def _load(config: Path) -> CollectorConfig:
    try:
        return load_config(config)
    except CollectorError as exc:
        raise _fail(exc) from None


def _demo_config(
    base: CollectorConfig | None, sink_url: str, token_file: Path | None
) -> CollectorConfig:
    """The built-in demo: the simulated meter, delivering to `sink_url` (default: local InfluxDB)"""
    if base is not None:
        data = base.model_dump(mode="json", exclude_none=True)
        data["source"] = {"kind": "demo"}
        return validate_config(data, "--demo")
    sink: dict[str, Any] = {
        "name": "local",
        "url": sink_url,
        "org": "homewatt",
        "bucket": "homewatt",
    }
    if token_file is not None:
        sink["token_file"] = str(token_file)
    else:
        sink["anonymous"] = True
    data = {
        "site": "demo",
        "unit": "demo",
        "source": {"kind": "demo"},
        "sinks": [sink],
        "outbox": {"dir": str(DEMO_STATE_DIR)},
        "clock": {"wait_for_sync": False},
    }
    return validate_config(data, "--demo")


@app.command()
def run(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="HOMEWATT_COLLECTOR_CONFIG", help="the YAML config file"
        ),
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="read the built-in simulated meter")] = False,
    sink_url: Annotated[
        str, typer.Option(help="with --demo and no --config: where to deliver")
    ] = "http://127.0.0.1:8086",
    token_file: Annotated[
        Path | None, typer.Option(help="with --demo and no --config: the InfluxDB token file")
    ] = None,
    table: Annotated[
        bool | None, typer.Option("--table/--no-table", help="live table (default: on a terminal)")
    ] = None,
) -> None:
    """Run the collector until SIGTERM or Ctrl-C (the systemd service runs this)."""
    if config is None and not demo:
        raise _fail(CollectorError("give --config FILE, or --demo to try the simulated meter"))
    try:
        loaded = load_config(config) if config is not None else None
        effective = _demo_config(loaded, sink_url, token_file) if demo else loaded
        assert effective is not None
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        show_table = sys.stdout.isatty() if table is None else table
        if not show_table:
            build_collector(effective, stop).run()
            return
        console = Console()
        with Live(console=console, refresh_per_second=4, transient=False) as live:

            def on_cycle(cycle: Cycle) -> None:
                live.update(render_cycle(cycle, effective.site))

            build_collector(effective, stop, on_cycle=on_cycle).run()
    except CollectorError as exc:
        raise _fail(exc) from None


@app.command("check-config")
def check_config(config: ConfigOption) -> None:
    """Validate a config file and its secrets; explain what would run."""
    loaded = _load(config)
    console = Console()
    console.print(f"[green]ok[/green] {config}")
    console.print(
        f"  site {loaded.site}, unit {loaded.unit}, a reading every {loaded.interval_s} s"
    )
    source = loaded.source.model_dump(exclude_none=True)
    console.print(f"  source {source.pop('kind')}: {source}", highlight=False)
    problems = []
    for sink in loaded.sinks:
        try:
            token = read_token(sink)
            how = (
                "no token (anonymous)"
                if token is None
                else (f"token from {sink.token_file or 'credential ' + str(sink.token_credential)}")
            )
        except CollectorError as exc:
            how = "[red]token unavailable[/red]"
            problems.append(exc)
        console.print(f"  sink {sink.name}: {sink.url} org={sink.org} bucket={sink.bucket}, {how}")
    try:
        directory = outbox_dir(loaded)
        console.print(f"  outbox {directory} (at most {loaded.outbox.max_size_mb} MB per sink)")
    except CollectorError as exc:
        problems.append(exc)
    if problems:
        for problem in problems:
            err.print(f"[red]error:[/red] {problem}", highlight=False)
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the config file's JSON Schema (editors can validate against it)."""
    typer.echo(json.dumps(CollectorConfig.model_json_schema(), indent=2))


def _open_outboxes(config: CollectorConfig, lock: bool) -> list[tuple[str, Outbox]]:
    directory = outbox_dir(config)
    opened = []
    for sink in config.sinks:
        path = outbox_path(directory, sink.name)
        if not path.exists():
            raise CollectorError(f"no outbox at {path} (has the collector run with this config?)")
        opened.append((sink.name, Outbox(path, config.outbox.max_size_mb * 1024 * 1024, lock=lock)))
    return opened


@outbox_app.callback(invoke_without_command=True)
def outbox_status(ctx: typer.Context, config: ConfigOption) -> None:
    """Backlog, oldest sample, drops and quarantined points per sink."""
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return
    loaded = _load(config)
    try:
        outboxes = _open_outboxes(loaded, lock=False)
    except CollectorError as exc:
        raise _fail(exc) from None
    console = Console()
    for name, outbox in outboxes:
        console.print(
            render_outbox_status(name, outbox.stats(), outbox.quarantined(5), time.time())
        )
        outbox.close()


@outbox_app.command()
def replay(ctx: typer.Context) -> None:
    """Send everything pending now (the service must be stopped: it holds the outbox)."""
    loaded = _load(ctx.obj)
    stop = threading.Event()
    try:
        for name, outbox in _open_outboxes(loaded, lock=True):
            sink = next(s for s in loaded.sinks if s.name == name)
            forwarder = make_forwarder(sink, read_token(sink), outbox, stop)
            try:
                with Progress(console=err) as progress:
                    task = progress.add_task(f"sink {name}", total=outbox.backlog)

                    def advance(n: int, task: TaskID = task, progress: Progress = progress) -> None:
                        progress.advance(task, n)

                    sent = forwarder.drain(progress=advance)
                Console().print(f"sink {name}: {sent} samples delivered, {outbox.backlog} pending")
            finally:
                forwarder.sink.close()
                outbox.close()
    except CollectorError as exc:
        raise _fail(exc) from None


@outbox_app.command()
def requeue(ctx: typer.Context) -> None:
    """Move quarantined points back into the queue (after fixing what the server refused)."""
    loaded = _load(ctx.obj)
    try:
        for name, outbox in _open_outboxes(loaded, lock=True):
            moved = outbox.requeue_quarantined()
            outbox.close()
            Console().print(f"sink {name}: {moved} quarantined points queued again")
    except CollectorError as exc:
        raise _fail(exc) from None


def main() -> None:
    app()
