"""The service's commands: `run` (what the systemd unit runs, or the built-in demo),
`check-config` and `schema`. Registered on the app in cli/app.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from homewatt_collector.cli.common import DEMO_CONFIG, DEMO_STATE_DIR, config_file, guarded, load
from homewatt_collector.config import (
    APP,
    CollectorConfig,
    load_config,
    outbox_dir,
    token_location,
    validate_config,
)
from homewatt_collector.errors import ConfigError
from homewatt_collector.service import Cycle, build_collector
from homewatt_collector.sources import SOURCES
from homewatt_common.cli import CheckReport, plain_console
from homewatt_common.credentials import read_located
from homewatt_common.problems import Loc, ProblemsError, format_loc, option_problem

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
        path = config_file(ctx)
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

        from homewatt_collector.cli import display  # noqa: PLC0415

        with Live(console=plain_console(), refresh_per_second=4, transient=False) as live:

            def on_cycle(cycle: Cycle) -> None:
                live.update(display.render_cycle(cycle, effective.site))

            build_collector(effective, stop, on_cycle=on_cycle).run()

    guarded(action)
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
    config = guarded(lambda: load(ctx))
    report = CheckReport()
    report.say(
        f"{config.path}: site {config.site}, unit {config.unit}, a reading every"
        f" {config.interval_s} s"
    )
    report.say(f"  source {config.source.kind}: {config.source.describe()}")
    _check_source_secrets(config, report, no_secrets=no_secrets)
    check = SOURCES.get(config.source.kind).check
    for message, loc in check(config.source) if check is not None else ():
        report.warn(config.problem(message, "source", *loc))
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


def schema() -> None:
    """Print the config file's JSON Schema (editors can validate against it)."""
    typer.echo(json.dumps(CollectorConfig.model_json_schema(), indent=2))
