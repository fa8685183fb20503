"""The `demo` source kind: a simulated single-phase household meter, for trying the collector
without hardware (`homewatt-collector run --demo`).

One folder holds the kind: `config.py` (its config model) and `source.py` (the load model and
the Source). Its energy counter is a function of time, so it keeps no state.
"""

from __future__ import annotations

from pathlib import Path

from homewatt_collector.sources.demo.config import DemoSourceConfig
from homewatt_collector.sources.demo.source import DemoSource

__all__ = ["DemoSourceConfig", "create"]


def create(config: DemoSourceConfig, site: str, state_dir: Path | None) -> DemoSource:
    """The registry's factory (no state directory: the counter is a function of time)."""
    return DemoSource(config, site)
