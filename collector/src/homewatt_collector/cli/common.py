"""What every command of `homewatt-collector` shares: logging, the config given by `--config`
or `--instance`, and expected errors ended as one line each (homewatt_common.cli's
conventions). A kind's CLI module (sources/<kind>/cli.py) uses these too."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from homewatt_collector.config import APP, CollectorConfig, load_config
from homewatt_collector.errors import CollectorError
from homewatt_common.cli import fail, option
from homewatt_common.problems import ProblemsError, option_problem
from homewatt_common.secrets_contract import load_contract

T = TypeVar("T")

INSTANCE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# `run --demo` keeps its outbox and its effective config here (the current directory); the
# outbox commands' --demo finds them there.
DEMO_STATE_DIR = Path("homewatt-demo")
DEMO_CONFIG = DEMO_STATE_DIR / "demo.yaml"


def setup_logging(level: int) -> None:
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


def config_file(ctx: typer.Context) -> Path | None:
    """--config, or the config of --instance NAME (the unit's), or None."""
    config, instance = option(ctx, "config"), option(ctx, "instance")
    if instance is None:
        return config  # type: ignore[no-any-return]
    if config is not None:
        raise option_problem("--instance", "give --config or --instance, not both")
    if not re.fullmatch(INSTANCE, instance):
        raise option_problem("--instance", f"{instance!r} is not an instance name like main")
    return load_contract().unit_of(APP).config_of(instance)


def load(ctx: typer.Context) -> CollectorConfig:
    path = config_file(ctx)
    if path is None:
        raise option_problem("--config", "give the config file (or --instance NAME)")
    return load_config(path)


def guarded(action: Callable[[], T]) -> T:
    """`action()`, its expected errors ended as one line each and exit status 1."""
    try:
        return action()
    except (CollectorError, ProblemsError) as exc:
        raise fail(exc) from None
