"""`homewatt-collector`'s command line: `app.py` (the app, its options, the commands' list),
`common.py` (what every command shares), `service.py` (run, check-config, schema), `outbox.py`,
`display.py` (rich tables). A source kind's own commands live in its folder
(sources/<kind>/cli.py).

Nothing is imported here, so a kind's CLI module can import cli.common without a cycle; the
console script calls `main`.
"""

from __future__ import annotations


def main() -> None:
    """The console script `homewatt-collector`."""
    from homewatt_collector.cli.app import app  # noqa: PLC0415 (no import cycle: see above)

    app()
