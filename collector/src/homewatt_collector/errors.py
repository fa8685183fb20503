"""The collector's errors: one base class, so the CLI can end any of them with one clear line."""

from __future__ import annotations

from homewatt_common.problems import ProblemsError


class CollectorError(Exception):
    """An expected fault with a message a user can act on."""


class ConfigError(CollectorError, ProblemsError):
    """The configuration (a file, an option, a secret it names) is wrong: one problem a line,
    each `file:line: key: problem` or `--option: problem` (homewatt_common.problems)."""


class SourceError(CollectorError):
    """A source could not read (a device, a port, a cloud API)."""


class SinkError(CollectorError):
    """A sink could not take a batch. Subclasses say what the forwarder should do next."""


class SinkUnavailable(SinkError):
    """Transient: connection refused or reset, timeout, 429, 5xx. Retry with backoff, forever."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SinkUnauthorized(SinkError):
    """401/403/404: the token, org or bucket is wrong. The data is fine: keep it and retry."""


class SinkRejected(SinkError):
    """Another 4xx: the server refuses the data. Split the batch, quarantine the bad point."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SinkPartialWrite(SinkError):
    """422 "partial write: ... dropped=N": the server stored the batch but N points (older
    than the bucket's retention, a field type conflict). Acknowledge the batch, count N."""

    def __init__(self, message: str, dropped: int) -> None:
        super().__init__(message)
        self.dropped = dropped


class OutboxBusy(CollectorError):
    """Another process (the running service) holds the outbox."""
