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
from homewatt_collector.display import (
    render_cycle,
    render_meter_reading,
    render_outbox_status,
    render_scan,
)
from homewatt_collector.errors import CollectorError, ConfigError
from homewatt_collector.meters import SerialSettings
from homewatt_collector.modbus.scan import (
    COMMON_SETTINGS,
    DEFAULT_IDS,
    FULL_IDS,
    FULL_SETTINGS,
)
from homewatt_collector.modbus.scan import (
    scan as scan_line,
)
from homewatt_collector.outbox import Outbox
from homewatt_collector.service import Cycle, build_collector, make_forwarder, outbox_path
from homewatt_collector.sources.modbus import ModbusSource, ModbusSourceConfig

app = typer.Typer(
    name="homewatt-collector",
    help="Read energy meters and devices every second; deliver every sample to InfluxDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
outbox_app = typer.Typer(help="Inspect and drain the outbox (samples not yet delivered).")
app.add_typer(outbox_app, name="outbox")

err = Console(stderr=True, soft_wrap=True)  # an error is one line, however long
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


def _parse_ids(text: str) -> list[int]:
    """'1-10,15' -> [1..10, 15]."""
    ids: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            ids.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ConfigError(f"--ids: {text!r} is not a list of ids like 1-10,15") from None
    if not ids or min(ids) < 1 or max(ids) > 247:
        raise ConfigError(f"--ids: {text!r}: Modbus device ids are 1..247")
    return ids


def _parse_settings(text: str) -> list[SerialSettings]:
    """'9600 8E1,2400 8N1' -> serial settings."""
    out = []
    for part in text.split(","):
        try:
            baud, frame = part.split()
            out.append(
                SerialSettings(
                    baudrate=int(baud),
                    bytesize=int(frame[0]),
                    parity=frame[1],
                    stopbits=int(frame[2]),
                )
            )
        except (ValueError, IndexError):
            raise ConfigError(
                f"--settings: {part.strip()!r} is not like '9600 8E1'"
                " (baud rate, data bits, parity N/E/O, stop bits)"
            ) from None
    return out


def _line_of_options(
    port: str | None, model: str | None, device_id: int, settings: str | None, timeout: float | None
) -> ModbusSourceConfig:
    """A one-meter line from `read`'s options."""
    if port is None or model is None:
        raise ConfigError("give --port and --model (or --config FILE)")
    meter: dict[str, Any] = {"name": model, "model": model, "device_id": device_id}
    if timeout is not None:
        meter["timeout_s"] = timeout
    line: dict[str, Any] = {"kind": "modbus", "port": port, "meters": [meter]}
    if settings is not None:
        line["serial"] = _parse_settings(settings)[0].model_dump()
    try:
        return ModbusSourceConfig.model_validate(line)
    except ValueError as exc:  # pydantic's ValidationError: an unknown model, a bad value
        raise ConfigError(str(exc).split("\n", 1)[-1].strip()) from None


def _line_of_config(config: Path) -> ModbusSourceConfig:
    loaded = load_config(config)
    if not isinstance(loaded.source, ModbusSourceConfig):
        raise ConfigError(f"{config}: source.kind is {loaded.source.kind}, not modbus")
    return loaded.source


def _read_once(source: ModbusSource, name: str, console: Console) -> bool:
    """Read meter `name` once and print it; False when it did not answer."""
    plan = next(p for p in source.meters if p.config.name == name)
    started = time.monotonic()
    values, errors = source.read_meter(name)
    took = time.monotonic() - started
    where = f"id {plan.config.device_id} on {source.config.port} at {source.serial.describe()}"
    if not values:
        err.print(
            f"[red]error:[/red] meter {name} ({plan.model}, {where}) did not answer:"
            " check the wiring (A/B swapped?), the id and the serial settings;"
            " `homewatt-collector scan` finds what answers",
            highlight=False,
        )
        return False
    console.print(render_meter_reading(f"{name}: {plan.model}, {where}", values))
    console.print(f"{len(plan.blocks)} requests, {took * 1000:.0f} ms, {errors} read errors")
    return True


@app.command()
def read(
    *,
    port: Annotated[str | None, typer.Option(help="serial port: /dev/serial/by-id/usb-...")] = None,
    model: Annotated[str | None, typer.Option(help="meter model, e.g. orno-we515, sdm630")] = None,
    device_id: Annotated[int, typer.Option("--id", help="the meter's Modbus address")] = 1,
    settings: Annotated[
        str | None, typer.Option(help="serial settings, e.g. '9600 8E1' (default: the model's)")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds (default: the model's)")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="read a meter of this config instead")
    ] = None,
    meter: Annotated[
        str | None, typer.Option(help="with --config: which meter (default: all)")
    ] = None,
) -> None:
    """Read one meter once and print its values with units (check the wiring with this first)."""
    try:
        if config is not None:
            line = _line_of_config(config)
        else:
            line = _line_of_options(port, model, device_id, settings, timeout)
        names = [m.name for m in line.meters if meter in (None, m.name)]
        if not names:
            raise ConfigError(f"--meter: no meter named {meter!r} in {config}")
        source = ModbusSource(line, site="-")
        try:
            answered = [_read_once(source, name, Console()) for name in names]
        finally:
            source.close()
    except CollectorError as exc:
        raise _fail(exc) from None
    if not all(answered):
        raise typer.Exit(1)


@app.command()
def scan(
    *,
    port: Annotated[str, typer.Option(help="serial port, e.g. /dev/serial/by-id/usb-...")],
    ids: Annotated[str | None, typer.Option(help="ids to try, e.g. 1-10,15 (default 1-10)")] = None,
    settings: Annotated[
        str | None, typer.Option(help="serial settings to try, e.g. '9600 8E1,2400 8N1'")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="every id 1-247 at every common baud rate and parity")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 0.2,
) -> None:
    """Find which device ids answer on a line, and with which serial settings."""
    try:
        id_list = _parse_ids(ids) if ids else list(FULL_IDS if full else DEFAULT_IDS)
        setting_list = (
            _parse_settings(settings)
            if settings
            else list(FULL_SETTINGS if full else COMMON_SETTINGS)
        )
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(f"scanning {port}", total=len(id_list) * len(setting_list))
            found = scan_line(
                port, id_list, setting_list, timeout, progress=lambda: progress.advance(task)
            )
    except CollectorError as exc:
        raise _fail(exc) from None
    if not found:
        err.print(
            f"nothing answered on {port} (ids {id_list[0]}-{id_list[-1]},"
            f" {', '.join(s.describe() for s in setting_list)}): check the wiring (A/B swapped?),"
            " the meter's termination and power, or try --full",
            highlight=False,
        )
        raise typer.Exit(1)
    Console().print(render_scan(found))


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
