"""Sinks take batches of line protocol; they know nothing of devices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Sink(Protocol):
    name: str

    def write(self, lines: Sequence[str]) -> None:
        """Deliver the lines or raise a SinkError subclass saying what went wrong."""

    def ready(self) -> bool:
        """A cheap check that the server answers again (during a long backoff); never raises."""

    def close(self) -> None: ...
