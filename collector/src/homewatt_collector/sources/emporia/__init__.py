"""The `emporia` source kind: Emporia Vue 2/3, Utility Connect and smart plugs through
Emporia's cloud API (pyemvue), one minute at a time, gaps backfilled.

One folder holds the kind: `config.py` (its config model, passwords from files or systemd
credentials), `api.py` (pyemvue: login with cached tokens, the calls, every failure translated
in one place), `decode.py` (pure: channels and names, the usage tree, chart buckets, the unit
math), `schema.py` (samples in homewatt's model or Vuegraf's), `ledger.py` (per-channel
high-water marks and running energy sums in the state directory), `poller.py` (one thread per
account: the minute, the gaps, per-second data), `source.py` (the Source), `history.py` and
`cli.py` (`homewatt-collector emporia import`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from homewatt_collector.sources.emporia.config import EmporiaSourceConfig, read_passwords

if TYPE_CHECKING:
    from homewatt_collector.sources.emporia.source import EmporiaSource

__all__ = ["EmporiaSourceConfig", "create", "read_passwords"]


def create(config: EmporiaSourceConfig, site: str, state_dir: Path | None) -> EmporiaSource:
    """The registry's factory: reads the passwords now, so a missing or unreadable password
    file is a config error before the collector starts (ConfigError). pyemvue (and boto3 under
    it) is imported only here: other kinds' commands do not pay for it."""
    from homewatt_collector.sources.emporia.source import EmporiaSource  # noqa: PLC0415 (start-up)

    return EmporiaSource(config, site, read_passwords(config), state_dir)
