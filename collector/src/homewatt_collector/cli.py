"""`homewatt-collector`: the command line. Thin: it parses options and calls the modules.

Conventions (homewatt_common.cli, the same in homewatt-backup): every error is one plain line,
`homewatt-collector: error: file:line: key: problem` or `...: --option: problem`; `-c/--config`,
`--instance` and `-v` go before or after the sub-command.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import typer
import yaml

from homewatt_collector import __version__
from homewatt_collector.config import (
    APP,
    CollectorConfig,
    load_config,
    outbox_dir,
    read_token,
    token_location,
    validate_config,
)
from homewatt_collector.cost.cli import cost_command
from homewatt_collector.errors import CollectorError, ConfigError
from homewatt_collector.meters import SerialSettings, builtin_templates
from homewatt_collector.modbus.bus import ModbusBus
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
from homewatt_collector.sources import SOURCES
from homewatt_collector.sources.emporia.cli import emporia_app
from homewatt_collector.sources.modbus import ModbusSource, ModbusSourceConfig
from homewatt_collector.sources.shelly.cli import shelly_app
from homewatt_common.cli import (
    EVERY_COMMAND,
    CheckReport,
    HomewattCommand,
    HomewattGroup,
    fail,
    option,
    plain_console,
    progress_console,
)
from homewatt_common.configmodel import validate
from homewatt_common.credentials import read_located
from homewatt_common.problems import Loc, ProblemsError, format_loc, option_problem
from homewatt_common.secrets_contract import load_contract

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

log = logging.getLogger("homewatt_collector")
T = TypeVar("T")

# `run --demo` keeps its outbox and its effective config here (the current directory).
DEMO_STATE_DIR = Path("homewatt-demo")
DEMO_CONFIG = DEMO_STATE_DIR / "demo.yaml"
INSTANCE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
CONFIG_COMMANDS = frozenset(
    {"run", "check-config", "read", "outbox", "outbox replay", "outbox requeue"}
)


class CollectorGroup(HomewattGroup):
    shared_options: ClassVar = {
        "config": CONFIG_COMMANDS,
        "instance": CONFIG_COMMANDS,
        "verbose": EVERY_COMMAND,
    }

    def shared_option_given(self, ctx: typer.Context, name: str, value: Any) -> None:
        if name == "verbose":
            _setup_logging(logging.DEBUG if value else logging.INFO)


class OutboxGroup(HomewattGroup):
    shared_options: ClassVar = {"demo": frozenset({"replay", "requeue"})}


app = typer.Typer(
    name="homewatt-collector",
    help="Read energy meters and devices every second; deliver every sample to InfluxDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=CollectorGroup,
)
outbox_app = typer.Typer(
    help="Inspect and drain the outbox (samples not yet delivered).", cls=OutboxGroup
)
app.add_typer(outbox_app, name="outbox")
app.add_typer(shelly_app, name="shelly")
app.add_typer(emporia_app, name="emporia")
command = app.command
command("cost", cls=HomewattCommand)(cost_command)


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
    for noisy in ("pymodbus",):
        logging.getLogger(noisy).setLevel(
            logging.CRITICAL if level > logging.DEBUG else logging.DEBUG
        )


def _config_file(ctx: typer.Context) -> Path | None:
    """--config, or the config of --instance NAME (the unit's), or None."""
    config, instance = option(ctx, "config"), option(ctx, "instance")
    if instance is None:
        return config  # type: ignore[no-any-return]
    if config is not None:
        raise option_problem("--instance", "give --config or --instance, not both")
    if not re.fullmatch(INSTANCE, instance):
        raise option_problem("--instance", f"{instance!r} is not an instance name like main")
    return load_contract().unit_of(APP).config_of(instance)


def _load(ctx: typer.Context) -> CollectorConfig:
    path = _config_file(ctx)
    if path is None:
        raise option_problem("--config", "give the config file (or --instance NAME)")
    return load_config(path)


def _guarded(action: Callable[[], T]) -> T:
    """`action()`, its expected errors ended as one line each and exit status 1."""
    try:
        return action()
    except (CollectorError, ProblemsError) as exc:
        raise fail(exc) from None


# -- run ----------------------------------------------------------------------------------------

_DEMO_OPTIONS = {("sinks", 0, "url"): "--sink-url", ("sinks", 0, "token_file"): "--token-file"}


def _demo_option(loc: Loc) -> str:
    return next((o for k, o in _DEMO_OPTIONS.items() if loc[: len(k)] == k), format_loc(loc))


def _demo_config(
    base: CollectorConfig | None, sink_url: str, token_file: Path | None
) -> CollectorConfig:
    """The built-in demo: the simulated meter, delivering to `sink_url` (default: local InfluxDB).
    Without a base config, the effective config is kept in homewatt-demo/demo.yaml, so that
    `homewatt-collector outbox --demo` finds the demo's outbox and sink."""
    if base is not None:
        data = base.model_dump(mode="json", exclude_none=True)
        data["source"] = {"kind": "demo"}
        return validate_config(data, str(base.path), base._document)
    sink: dict[str, Any] = {
        "name": "local",
        "url": sink_url,
        "org": "homewatt",
        "bucket": "homewatt",
    }
    if token_file is not None:
        sink["token_file"] = str(token_file.absolute())
    else:
        sink["anonymous"] = True
    data = {
        "site": "demo",
        "unit": "demo",
        "source": {"kind": "demo"},
        "sinks": [sink],
        "outbox": {"dir": str(DEMO_STATE_DIR.absolute())},
        "clock": {"wait_for_sync": False},
    }
    config = validate_config(data, "", rename=_demo_option)
    DEMO_STATE_DIR.mkdir(exist_ok=True, mode=0o700)
    DEMO_CONFIG.write_text(
        "# The effective config of `homewatt-collector run --demo` run in this directory;\n"
        "# `homewatt-collector outbox --demo` reads it to find the outbox and the sink.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return config


@command(cls=HomewattCommand)
def run(
    ctx: typer.Context,
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

    def action() -> None:
        path = _config_file(ctx)
        if path is None and not demo:
            raise option_problem(
                "--config", "give the config file, or --demo to try the simulated meter"
            )
        loaded = load_config(path) if path is not None else None
        effective = _demo_config(loaded, sink_url, token_file) if demo else loaded
        assert effective is not None
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        show_table = sys.stdout.isatty() if table is None else table
        if not show_table:
            build_collector(effective, stop).run()
            return
        # rich only for the table: the service (no table) does not load it (README: memory)
        from rich.live import Live  # noqa: PLC0415

        from homewatt_collector import display  # noqa: PLC0415

        with Live(console=plain_console(), refresh_per_second=4, transient=False) as live:

            def on_cycle(cycle: Cycle) -> None:
                live.update(display.render_cycle(cycle, effective.site))

            build_collector(effective, stop, on_cycle=on_cycle).run()

    _guarded(action)
    _exit_at_once()


def _exit_at_once() -> None:
    """End the process now that the collector has stopped cleanly (outboxes closed with a
    checkpoint, sinks closed): the interpreter's own teardown of ~1,000 modules took 1.4 s on
    a busy 2-core machine, longer than a stop may take (README: a stop is honoured within 1 s)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# -- check-config -------------------------------------------------------------------------------


@command("check-config", cls=HomewattCommand)
def check_config(
    ctx: typer.Context,
    no_secrets: Annotated[
        bool,
        typer.Option(
            "--no-secrets",
            help="check everything but the secrets' contents (no root needed to read them)",
        ),
    ] = False,
) -> None:
    """Validate a config file and its secrets; explain what would run (`ok` when all passed).

    Outside systemd it assumes what the unit would hand over (the token credential's file, the
    outbox directory) and says so."""
    config = _guarded(lambda: _load(ctx))
    report = CheckReport()
    report.say(
        f"{config.path}: site {config.site}, unit {config.unit}, a reading every"
        f" {config.interval_s} s"
    )
    report.say(f"  source {config.source.kind}: {config.source.describe()}")
    _check_source_secrets(config, report, no_secrets=no_secrets)
    if isinstance(config.source, ModbusSourceConfig) and not Path(config.source.port).exists():
        report.warn(
            config.problem(
                f"{config.source.port} does not exist now (is the adapter plugged in?"
                " the collector waits for it)",
                "source",
                "port",
            )
        )
    for index, sink in enumerate(config.sinks):
        report.say(f"  sink {sink.name}: {sink.display_url} org={sink.org} bucket={sink.bucket}")
        if (problem := sink.url_problem()) is not None:
            report.warn(config.problem(problem, "sinks", index, "url"))
        try:
            location, warnings = token_location(config, index)
        except ConfigError as exc:
            report.error(exc)
            continue
        for warning in warnings:
            report.warn(warning)
        if location is None:
            report.say("    no token (anonymous)")
            continue
        named = (
            f"credential {sink.token_credential}"
            if sink.token_credential is not None
            else f"file {sink.token_file}"
        )
        report.say(f"    token from {named}")
        if location.assumed:
            report.say(f"    assumed {location.assumed}")
        if no_secrets:
            report.say("    not read (--no-secrets)")
            continue
        try:
            read_located(APP, location)
            report.say(f"    read {location.path}: a token")
        except ProblemsError as exc:
            report.error(exc)
    directory = outbox_dir(config)
    report.say(f"  outbox {directory.path} (at most {config.outbox.max_size_mb} MB per sink)")
    if directory.assumed:
        report.say(f"    assumed {directory.assumed}")
    report.finish()


def _check_source_secrets(
    config: CollectorConfig, report: CheckReport, *, no_secrets: bool
) -> None:
    """The passwords a source names (a kind registered with read_secrets), read as `run` reads
    them, unless --no-secrets."""
    read_secrets = SOURCES.get(config.source.kind).read_secrets
    if read_secrets is None:
        return
    if no_secrets:
        report.say("    its passwords not read (--no-secrets)")
        return
    try:
        read_secrets(config.source)
        report.say("    its passwords read")
    except ConfigError as exc:
        located = [p if p.where else replace(p, where=str(config.path)) for p in exc.problems]
        report.error(ConfigError(located))


@command(cls=HomewattCommand)
def schema() -> None:
    """Print the config file's JSON Schema (editors can validate against it)."""
    typer.echo(json.dumps(CollectorConfig.model_json_schema(), indent=2))


# -- read and scan ------------------------------------------------------------------------------


def _parse_ids(text: str) -> list[int]:
    """'1-10,15' -> [1..10, 15]."""
    ids: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            ids.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise option_problem("--ids", f"{text!r} is not a list of ids like 1-10,15") from None
    if not ids or min(ids) < 1 or max(ids) > 247:
        raise option_problem("--ids", f"{text!r}: Modbus device ids are 1..247")
    return ids


def _parse_settings(text: str) -> list[SerialSettings]:
    """'9600 8E1,2400 8N1' -> serial settings."""
    out = []
    for part in text.split(","):
        try:
            baud, frame = part.split()
            out.append(
                SerialSettings.model_validate(
                    {
                        "baudrate": int(baud),
                        "bytesize": int(frame[0]),
                        "parity": frame[1],
                        "stopbits": int(frame[2]),
                    }
                )
            )
        except (ValueError, IndexError):
            raise option_problem(
                "--settings",
                f"{part.strip()!r} is not like '9600 8E1'"
                " (a standard baud rate, data bits 7 or 8, parity N/E/O, stop bits 1 or 2)",
            ) from None
    return out


_READ_OPTIONS = {
    "port": "--port",
    "device_id": "--id",
    "timeout_s": "--timeout",
    "model": "--model",
    "serial": "--settings",
}


def _read_option(loc: Loc) -> str:
    return next((_READ_OPTIONS[p] for p in loc if p in _READ_OPTIONS), format_loc(loc))


def _line_of_options(
    port: str | None, model: str | None, device_id: int, settings: str | None, timeout: float | None
) -> ModbusSourceConfig:
    """A one-meter line from `read`'s options."""
    if port is None or model is None:
        raise option_problem(
            "--port" if port is None else "--model", "give --port and --model (or --config FILE)"
        )
    known = builtin_templates()
    if model not in known:
        raise option_problem(
            "--model", f"unknown model {model!r} (known: {', '.join(known.names())})"
        )
    meter: dict[str, Any] = {"name": model, "model": model, "device_id": device_id}
    if timeout is not None:
        meter["timeout_s"] = timeout
    line: dict[str, Any] = {"kind": "modbus", "port": port, "meters": [meter]}
    if settings is not None:
        line["serial"] = _parse_settings(settings)[0].model_dump()
    return validate(ModbusSourceConfig, line, "", rename=_read_option)


def _read_once(source: ModbusSource, name: str) -> bool:
    """Read meter `name` once and print it; False when it did not answer."""
    plan = next(p for p in source.meters if p.config.name == name)
    started = time.monotonic()
    values, errors = source.read_meter(name)
    took = time.monotonic() - started
    where = f"id {plan.config.device_id} on {source.config.port} at {source.serial.describe()}"
    if not values:
        raise ConfigError(
            f"meter {name} ({plan.model}, {where}) did not answer:"
            " check the wiring (A/B swapped?), the id and the serial settings;"
            " `homewatt-collector scan` finds what answers"
        )
    from homewatt_collector import display  # noqa: PLC0415

    console = plain_console()
    console.print(display.render_meter_reading(f"{name}: {plan.model}, {where}", values))
    console.print(f"{len(plan.blocks)} requests, {took * 1000:.0f} ms, {errors} read errors")
    return True


@command(cls=HomewattCommand)
def read(
    ctx: typer.Context,
    *,
    port: Annotated[str | None, typer.Option(help="serial port: /dev/serial/by-id/usb-...")] = None,
    model: Annotated[str | None, typer.Option(help="meter model, e.g. orno-we515, sdm630")] = None,
    device_id: Annotated[
        int, typer.Option("--id", min=1, max=247, help="the meter's Modbus address")
    ] = 1,
    settings: Annotated[
        str | None, typer.Option(help="serial settings, e.g. '9600 8E1' (default: the model's)")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.05, max=10, help="seconds (default: the model's)")
    ] = None,
    meter: Annotated[
        str | None, typer.Option(help="with --config: which meter (default: all)")
    ] = None,
) -> None:
    """Read one meter once and print its values with units (check the wiring with this first)."""

    def action() -> None:
        path = _config_file(ctx)
        if path is not None:
            loaded = load_config(path)
            if not isinstance(loaded.source, ModbusSourceConfig):
                raise ProblemsError(
                    [loaded.problem(f"is {loaded.source.kind}, not modbus", "source", "kind")]
                )
            line = loaded.source
        else:
            line = _line_of_options(port, model, device_id, settings, timeout)
        names = [m.name for m in line.meters if meter in (None, m.name)]
        if not names:
            raise option_problem("--meter", f"no meter named {meter!r} in {path}")
        source = ModbusSource(
            line, site="-", bus=ModbusBus(line.port, line.line_serial(), announce=False)
        )
        try:
            for name in names:
                _read_once(source, name)
        finally:
            source.close()

    _guarded(action)


@command(cls=HomewattCommand)
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
    timeout: Annotated[
        float, typer.Option(min=0.01, max=10, help="seconds to wait for each answer")
    ] = 0.2,
) -> None:
    """Find which device ids answer on a line, and with which serial settings."""

    def action() -> None:
        id_list = _parse_ids(ids) if ids else list(FULL_IDS if full else DEFAULT_IDS)
        setting_list = (
            _parse_settings(settings)
            if settings
            else list(FULL_SETTINGS if full else COMMON_SETTINGS)
        )
        from rich.progress import Progress  # noqa: PLC0415

        console, shown = progress_console()
        with Progress(console=console, transient=True, disable=not shown) as progress:
            task = progress.add_task(f"scanning {port}", total=len(id_list) * len(setting_list))
            found = scan_line(
                port, id_list, setting_list, timeout, progress=lambda: progress.advance(task)
            )
        if not found:
            raise ConfigError(
                f"nothing answered on {port} (ids {id_list[0]}-{id_list[-1]},"
                f" {', '.join(s.describe() for s in setting_list)}): check the wiring"
                " (A/B swapped?), the meter's termination and power, or try --full"
            )
        from homewatt_collector import display  # noqa: PLC0415

        plain_console().print(display.render_scan(found))

    _guarded(action)


# -- outbox -------------------------------------------------------------------------------------


def _outbox_config(ctx: typer.Context) -> CollectorConfig:
    """The config whose outboxes the outbox commands open: --demo's, or --config/--instance."""
    if option(ctx, "demo"):
        if _config_file(ctx) is not None:
            raise option_problem("--demo", "give --demo or --config/--instance, not both")
        if not DEMO_CONFIG.exists():
            raise option_problem(
                "--demo",
                f"no demo run here ({DEMO_CONFIG.absolute()} is missing):"
                " run the outbox commands where `homewatt-collector run --demo` ran",
            )
        return load_config(DEMO_CONFIG)
    path = _config_file(ctx)
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
        from homewatt_collector import display  # noqa: PLC0415

        outboxes = _open_outboxes(_outbox_config(ctx), lock=False)
        console = plain_console()
        for name, outbox in outboxes:
            console.print(
                display.render_outbox_status(
                    name, outbox.stats(), outbox.quarantined(5), time.time()
                )
            )
            outbox.close()

    _guarded(action)


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

    _guarded(action)


@outbox_app.command(cls=HomewattCommand)
def requeue(ctx: typer.Context) -> None:
    """Move quarantined points back into the queue (after fixing what the server refused)."""

    def action() -> None:
        for name, outbox in _open_outboxes(_outbox_config(ctx), lock=True):
            moved = outbox.requeue_quarantined()
            outbox.close()
            typer.echo(f"sink {name}: {moved} quarantined points queued again")

    _guarded(action)


def main() -> None:
    app()
