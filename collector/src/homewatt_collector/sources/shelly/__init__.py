"""The `shelly` source kind: Shelly plugs, switches and energy meters over their local HTTP API.

One folder holds the kind: `config.py` (its config model, passwords from files or systemd
credentials), `client.py` (HTTP: generation detection, Basic auth for Gen1, Digest SHA-256
for Gen2+), `decode.py`, `gen1.py`, `gen2.py` (pure decoding of the devices' JSON),
`poller.py` (one thread per device on its own interval, backoff), `source.py` (the Source:
the counter rule on the devices' own energy counters), `discover.py` and `cli.py`
(`homewatt-collector shelly discover`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from homewatt_collector.sources.shelly.config import ShellySourceConfig, read_passwords

if TYPE_CHECKING:
    from homewatt_collector.sources.shelly.source import ShellySource

__all__ = ["ShellySourceConfig", "create", "read_passwords"]


def create(config: ShellySourceConfig, site: str, state_dir: Path | None) -> ShellySource:
    """The registry's factory: reads the passwords now, so a missing or unreadable password
    file is a config error before the collector starts (ConfigError). The HTTP client
    (requests) is imported only here: other kinds' commands do not pay for it."""
    from homewatt_collector.sources.shelly.source import ShellySource  # noqa: PLC0415 (start-up)

    return ShellySource(config, site, read_passwords(config), state_dir)
