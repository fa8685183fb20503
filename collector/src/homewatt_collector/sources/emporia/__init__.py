"""The `emporia` source kind: Emporia Vue 2/3, Utility Connect and smart plugs through
Emporia's cloud API (pyemvue), one minute at a time, gaps backfilled.

One folder holds the kind: `config.py` (its config model, passwords from files or systemd
credentials), `api.py` (pyemvue: login with cached tokens, the calls, every failure translated
in one place), `decode.py` (pure: channels and names, the usage tree, chart buckets, the unit
math), `schema.py` (samples in homewatt's model or Vuegraf's), `ledger.py` (per-channel
high-water marks and running energy sums in the state directory), `poller.py` (one thread per
account: the minute, the gaps, per-second data), `source.py` (the Source), `history.py` and
`cli.py` (`homewatt-collector emporia import`).

pyemvue (and boto3 and botocore under it, about 52 MB installed) is the optional extra
`homewatt-collector[emporia]`: installed only where an instance polls Emporia (the collector
role installs it when one has `source.kind: emporia`). `require_pyemvue()` turns its absence
into one line naming the extra and the command that installs it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from homewatt_collector.errors import CollectorError
from homewatt_collector.sources.emporia.config import EmporiaSourceConfig, read_passwords

if TYPE_CHECKING:
    from homewatt_collector.sources.emporia.source import EmporiaSource

__all__ = ["EmporiaSourceConfig", "create", "read_passwords", "require_pyemvue"]

EXTRA = "emporia"


def require_pyemvue() -> None:
    """Import pyemvue, or raise CollectorError naming the extra that installs it and the pip
    command for this very environment (the venv the collector runs from). Importing it here is
    no extra cost: the caller imports it right after (api.py)."""
    try:
        import pyemvue  # type: ignore[import-untyped]  # noqa: F401, PLC0415 (the probe)
    except ModuleNotFoundError as exc:
        pip = Path(sys.executable).with_name("pip")
        raise CollectorError(
            f"the emporia source needs pyemvue ({exc.name} is not installed): it comes with"
            f" homewatt-collector's '{EXTRA}' extra, installed by"
            f" `{pip} install 'homewatt-collector[{EXTRA}]'` (the collector role and install.sh"
            " install it when an instance has source.kind: emporia)"
        ) from None


def create(config: EmporiaSourceConfig, site: str, state_dir: Path | None) -> EmporiaSource:
    """The registry's factory: reads the passwords now, so a missing or unreadable password
    file is a config error before the collector starts (ConfigError). pyemvue (and boto3 under
    it) is imported only here: other kinds' commands do not pay for it; CollectorError when the
    `emporia` extra is not installed (require_pyemvue)."""
    require_pyemvue()
    from homewatt_collector.sources.emporia.source import EmporiaSource  # noqa: PLC0415 (start-up)

    return EmporiaSource(config, site, read_passwords(config), state_dir)
