"""The Emporia source's state: per channel, the high-water marks and the running energy sums.

Emporia gives energy per interval, not a counter; homewatt's `energy_total_kwh` is the running
sum of the per-minute kWh of a channel, added in time order exactly once per minute: a minute
is added only when it is after the channel's minute high-water mark (`minute`, the start of the
last minute added), so a backfilled gap goes in before the minutes after it, and a minute
fetched twice is never counted twice. A negative minute (a channel that exports: solar, a
Balance) goes into `export_kwh` instead, so both sums only ever rise (the data model's counter
rule). `second` is the per-second data's high-water mark.

Kept in the instance's state directory (LEDGER_FILE, JSON), written atomically (write, fsync,
rename). The source saves the state of the samples it handed out in one read() at the next
read() or at close(): by then the collector has put them into its outbox, so a crash in
between refetches those minutes (the same values: InfluxDB keeps one) instead of skipping them.
A file that cannot be read is moved aside with one log line, and every channel starts over.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from homewatt_collector import statefile

LEDGER_FILE = "emporia.json"
FORMAT_VERSION = 1


@dataclass
class ChannelState:
    minute: int  # start of the last minute added (unix s)
    total_kwh: float = 0.0
    export_kwh: float = 0.0
    second: int = 0  # the last second of per-second data written (unix s; 0: none)

    def add(self, ts: int, kwh: float) -> bool:
        """Add the minute starting at `ts`; False (nothing changes) unless it is after the
        high-water mark."""
        if ts <= self.minute:
            return False
        if kwh >= 0:
            self.total_kwh = round(self.total_kwh + kwh, 9)
        else:
            self.export_kwh = round(self.export_kwh - kwh, 9)
        self.minute = ts
        return True


def load(path: Path | None) -> dict[str, ChannelState]:
    """The states by channel key (empty for no file, or a damaged one moved aside)."""
    if path is None:
        return {}
    states = statefile.load_document(
        path,
        "emporia state",
        "every channel's energy sum starts again at 0 and its gaps before now are not backfilled",
        _parse,
    )
    return states or {}


def _parse(document: Any) -> dict[str, ChannelState]:
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"format version {document.get('version')!r}")
    states = {
        key: ChannelState(
            int(s["minute"]), float(s["total_kwh"]), float(s["export_kwh"]), int(s["second"])
        )
        for key, s in document["channels"].items()
    }
    for state in states.values():
        if not (math.isfinite(state.total_kwh) and math.isfinite(state.export_kwh)):
            raise ValueError("a sum is not a finite number")
    return states


def save(path: Path, states: dict[str, ChannelState]) -> None:
    """Replace the file atomically (statefile.py): a power cut leaves old or new."""
    statefile.save_document(
        path,
        {
            "version": FORMAT_VERSION,
            "channels": {key: asdict(state) for key, state in sorted(states.items())},
        },
    )
