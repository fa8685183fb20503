"""The collector's configuration: one YAML file per instance, validated before anything starts.

Files are read by homewatt_common (UTF-8, duplicate keys refused, every error
`file:line: key: problem`); values are strict (`interval_s: true` is not 1, `.nan` is refused).
Secrets are never in the file: the InfluxDB token comes from a file (not readable by group or
others) or from a systemd credential (`LoadCredential=`, read from $CREDENTIALS_DIRECTORY).

Outside systemd (check-config or the outbox commands in a shell) the values the unit would hand
over are assumed and said so: a credential is read from the file the unit loads
(contracts/secrets.json), and the outbox is the unit's StateDirectory= for the instance, whose
name is the config file's name without .yaml (/etc/homewatt/collector/main.yaml: main).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, field_validator, model_validator

from homewatt_collector.errors import ConfigError
from homewatt_collector.sources import SOURCES, config_union
from homewatt_common.configmodel import ConfigModel, PathField, no_inline_secret, validate
from homewatt_common.credentials import (
    SecretLocation,
    locate_credential,
    locate_file,
    read_located,
)
from homewatt_common.problems import Loc, Problem, ProblemsError, format_loc
from homewatt_common.redact import redact_url
from homewatt_common.secrets_contract import load_contract
from homewatt_common.yamlfile import YamlDocument, load_yaml

log = logging.getLogger(__name__)

APP = "homewatt-collector"
NAME = r"^[a-z0-9][a-z0-9_-]*$"
TAG_VALUE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
EXAMPLE = "collector.example.yaml and the JSON Schema"

# The `source:` key: one member per registered source kind (sources/__init__.py), discriminated
# by `kind`; the type checker sees what every kind's config offers.
if TYPE_CHECKING:
    from homewatt_collector.sources import SourceConfig
else:
    SourceConfig = config_union()


class SinkConfig(ConfigModel):
    """An InfluxDB v2 write endpoint. Each sink has its own outbox."""

    name: str = Field("local", pattern=NAME, description="names the sink's outbox file")
    url: str = Field(description="InfluxDB base URL, e.g. http://127.0.0.1:8086")
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    token_file: Path | None = PathField(description="file holding the write token (mode 0600)")
    token_credential: str | None = Field(
        None, description="name of a systemd credential (LoadCredential=) holding the write token"
    )
    anonymous: bool = Field(False, description="send no token (a server without authentication)")
    timeout_s: float = Field(10.0, gt=0, le=300)
    batch_size: int = Field(5000, ge=1, le=50_000, description="lines per write request")
    flush_interval_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="how often the samples of the last cycles are sent, in one write request"
        " (a backlog goes batch after batch without waiting); samples reach the sink up to this"
        " long after they were read",
    )
    verify_tls: bool = True
    retry_min_s: float = Field(1.0, gt=0, le=60, description="first backoff after a failure")
    retry_max_s: float = Field(60.0, gt=0, le=3600, description="longest backoff")

    _no_inline_token = no_inline_secret("token", "token_file", "token_credential")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @property
    def display_url(self) -> str:
        """The URL as logs and reports show it: a password in it replaced by ***."""
        return redact_url(self.url)

    def url_problem(self) -> str | None:
        """Why a user name and password in the URL do not do what they seem to."""
        if urlsplit(self.url).password is None:
            return None
        return (
            "holds a password, which is never sent (influxdb-client ignores a URL's user and"
            " password) and which anyone who can read this file can read: remove it and give"
            " the sink a token (token_credential)"
        )

    @model_validator(mode="after")
    def _one_token_source(self) -> SinkConfig:
        given = [k for k in ("token_file", "token_credential") if getattr(self, k) is not None]
        if self.anonymous and given:
            raise ValueError(f"anonymous: true and {given[0]} contradict each other")
        if not self.anonymous and len(given) != 1:
            raise ValueError(
                "set exactly one of token_file or token_credential"
                " (or anonymous: true for a server without authentication)"
            )
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s is larger than retry_max_s")
        return self


class OutboxConfig(ConfigModel):
    dir: Path | None = PathField(
        description="where the outbox files live; default: systemd's $STATE_DIRECTORY, and"
        " outside systemd the unit's, /var/lib/homewatt-collector/<instance>"
    )
    max_size_mb: int = Field(
        200,
        ge=1,
        le=100_000,
        description="per sink (MB of 1,048,576 bytes), every file of the outbox (database, WAL,"
        " moved-aside copies); oldest dropped when full",
    )
    checkpoint_interval_s: float = Field(
        10.0, ge=0.5, le=300, description="fsync interval: what a power cut may lose at most"
    )


class ClockConfig(ConfigModel):
    wait_for_sync: bool = Field(
        True,
        description="wait for NTP before the first sample (false: a site without network time)",
    )


class CollectorConfig(ConfigModel):
    site: str = Field(pattern=TAG_VALUE, description="the `site` tag on every sample")
    unit: str | None = Field(
        None, pattern=TAG_VALUE, description="the `unit` tag on health samples; default: file name"
    )
    interval_s: int = Field(1, ge=1, le=3600, description="seconds between readings")
    source: SourceConfig
    sinks: list[SinkConfig] = Field(min_length=1)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    health: bool = Field(True, description="write homewatt_health samples every cycle")

    # Where it came from: the file (and its parsed YAML, for line numbers), or '' for options.
    _where: str = PrivateAttr("")
    _document: YamlDocument | None = PrivateAttr(None)
    _rename: Callable[[Loc], str] | None = PrivateAttr(None)

    @field_validator("sinks")
    @classmethod
    def _unique_sink_names(cls, sinks: list[SinkConfig]) -> list[SinkConfig]:
        names = [sink.name for sink in sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sink names must be unique (each has its own outbox): {duplicates}")
        return sinks

    @property
    def path(self) -> Path | None:
        return self._document.path if self._document is not None else None

    @property
    def instance(self) -> str:
        """The systemd instance name: the config file's name without .yaml."""
        return self.path.stem if self.path is not None else (self.unit or "collector")

    def origin(self, *loc: int | str) -> Problem:
        """Where the value at `loc` was given, for a problem about it (file:line: key)."""
        return self.problem("", *loc)

    def problem(self, message: str, *loc: int | str) -> Problem:
        """A problem with the value at `loc`, located where it was given."""
        key = self._rename(loc) if self._rename is not None else format_loc(loc)
        line = self._document.line_of(loc) if self._document is not None else None
        return Problem(self._where, message, key, line)


# -- loading -----------------------------------------------------------------------------------


def http_url(value: str) -> str:
    """An InfluxDB base URL, http:// or https:// with a host, without a trailing '/'; a
    ValueError names it with its password redacted."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact_url(value)!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def load_config(path: Path) -> CollectorConfig:
    """Read, parse and validate `path`; ConfigError lists every problem found."""
    try:
        document = load_yaml(path)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
    data = document.data
    if data is None:
        raise ConfigError(f"{path}: the file is empty (see the example config)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(data).__name__}")
    data.setdefault("unit", path.stem if re.fullmatch(TAG_VALUE, path.stem) else None)
    return validate_config(data, str(path), document)


def validate_config(
    data: dict[str, Any],
    where: str,
    document: YamlDocument | None = None,
    rename: Callable[[Loc], str] | None = None,
) -> CollectorConfig:
    """`data` as a config; `where` names its origin in errors (a file, or '' for options whose
    names `rename` gives)."""
    try:
        config = validate(
            CollectorConfig,
            data,
            where,
            document,
            union_tags=SOURCES.names(),
            rename=rename,
            example=EXAMPLE,
        )
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
    config._where = where
    config._document = document
    config._rename = rename
    return config


# -- secrets and paths -------------------------------------------------------------------------


def credentials_directory() -> Path | None:
    """systemd's $CREDENTIALS_DIRECTORY (LoadCredential=), or None outside a unit."""
    value = os.environ.get("CREDENTIALS_DIRECTORY")
    return Path(value) if value else None


def token_location(
    config: CollectorConfig, index: int
) -> tuple[SecretLocation | None, list[Problem]]:
    """Where sink `index` reads its token (None: anonymous), and warnings about it."""
    sink = config.sinks[index]
    try:
        if sink.token_credential is not None:
            origin = config.origin("sinks", index, "token_credential")
            location = locate_credential(
                APP, sink.token_credential, origin, "token", credentials_directory()
            )
            return location, []
        if sink.token_file is not None:
            return locate_file(
                APP, sink.token_file, config.origin("sinks", index, "token_file"), "token"
            )
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
    return None, []


def read_token(config: CollectorConfig, index: int) -> str | None:
    """Sink `index`'s token from its file or credential (None: anonymous); ConfigError."""
    location, _ = token_location(config, index)
    if location is None:
        return None
    if location.assumed:
        log.info("sink %s: token from %s", config.sinks[index].name, location.assumed)
    try:
        return read_located(APP, location)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None


@dataclass(frozen=True)
class OutboxDir:
    path: Path
    assumed: str | None = None  # outside systemd: what was assumed


def outbox_dir(config: CollectorConfig) -> OutboxDir:
    """outbox.dir, else systemd's $STATE_DIRECTORY, else (outside systemd) the directory the
    unit would give this instance."""
    if config.outbox.dir is not None:
        return OutboxDir(config.outbox.dir)
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return OutboxDir(Path(state.split(":")[0]))
    unit = load_contract().unit_of(APP)
    return OutboxDir(
        unit.state_directory_of(config.instance),
        f"outside systemd: the unit's StateDirectory= for instance {config.instance}",
    )
