"""`homewatt-collector modbus read|scan`: the Modbus kind's commands (check a meter's wiring,
find what answers on a line). `read` and `scan` at the top level are their hidden aliases for
one release (cli/app.py)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from homewatt_collector.cli.common import config_file, guarded
from homewatt_collector.config import load_config
from homewatt_collector.errors import ConfigError
from homewatt_collector.sources.modbus.bus import ModbusBus
from homewatt_collector.sources.modbus.config import ModbusSourceConfig
from homewatt_collector.sources.modbus.meters import SerialSettings, builtin_templates
from homewatt_collector.sources.modbus.scan import (
    COMMON_SETTINGS,
    DEFAULT_IDS,
    FULL_IDS,
    FULL_SETTINGS,
)
from homewatt_collector.sources.modbus.scan import scan as scan_line
from homewatt_collector.sources.modbus.source import ModbusSource
from homewatt_common.cli import HomewattCommand, HomewattGroup, plain_console, progress_console
from homewatt_common.configmodel import validate
from homewatt_common.problems import Loc, ProblemsError, format_loc, option_problem

modbus_app = typer.Typer(
    help="Energy meters on an RS485 line (Modbus RTU): read one, scan a line.", cls=HomewattGroup
)


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
            " `homewatt-collector modbus scan` finds what answers"
        )
    from homewatt_collector.sources.modbus import display  # noqa: PLC0415

    console = plain_console()
    console.print(display.render_meter_reading(f"{name}: {plan.model}, {where}", values))
    console.print(f"{len(plan.blocks)} requests, {took * 1000:.0f} ms, {errors} read errors")
    return True


@modbus_app.command(cls=HomewattCommand)
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
        path = config_file(ctx)
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

    guarded(action)


@modbus_app.command(cls=HomewattCommand)
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
        from homewatt_collector.sources.modbus import display  # noqa: PLC0415

        plain_console().print(display.render_scan(found))

    guarded(action)
