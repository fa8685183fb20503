"""The collector's configuration: one YAML file per instance, validated before anything starts.

Every error names the file, the line, the key and the problem. Secrets are never in the file:
the InfluxDB token comes from a file (not readable by group or others) or from a systemd
credential (`LoadCredential=`, read from $CREDENTIALS_DIRECTORY).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from homewatt_collector.errors import ConfigError
from homewatt_collector.sources import SOURCES
from homewatt_collector.sources.demo import DemoSourceConfig
from homewatt_collector.sources.modbus import ModbusSourceConfig

NAME = r"^[a-z0-9][a-z0-9_-]*$"
TAG_VALUE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# One member per registered source kind (a test checks the two agree).
SourceConfig = Annotated[DemoSourceConfig | ModbusSourceConfig, Field(discriminator="kind")]


class SinkConfig(BaseModel):
    """An InfluxDB v2 write endpoint. Each sink has its own outbox."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("local", pattern=NAME, description="names the sink's outbox file")
    url: str = Field(description="InfluxDB base URL, e.g. http://127.0.0.1:8086")
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    token_file: Path | None = Field(None, description="file holding the write token (mode 0600)")
    token_credential: str | None = Field(
        None, description="name of a systemd credential (LoadCredential=) holding the write token"
    )
    anonymous: bool = Field(False, description="send no token (a server without authentication)")
    timeout_s: float = Field(10.0, gt=0, le=300)
    batch_size: int = Field(5000, ge=1, le=50_000, description="lines per write request")
    flush_interval_s: float = Field(
        1.0,
        gt=0,
        le=300,
        description="how often a small backlog is sent (a full batch goes at once)",
    )
    verify_tls: bool = True
    retry_min_s: float = Field(1.0, gt=0, le=60, description="first backoff after a failure")
    retry_max_s: float = Field(60.0, gt=0, le=3600, description="longest backoff")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise ValueError(
                "a token must not be written in the config file: put it in a file named by"
                " token_file (mode 0600) or a systemd credential named by token_credential"
            )
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

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


class OutboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path | None = Field(
        None, description="where the outbox files live; default: systemd's $STATE_DIRECTORY"
    )
    max_size_mb: int = Field(
        200, ge=1, le=100_000, description="per sink; oldest dropped when full"
    )
    checkpoint_interval_s: float = Field(
        10.0, ge=0.5, le=300, description="fsync interval: what a power cut may lose at most"
    )


class ClockConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wait_for_sync: bool = Field(
        True,
        description="wait for NTP before the first sample (false: a site without network time)",
    )


class CollectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

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

    @field_validator("sinks")
    @classmethod
    def _unique_sink_names(cls, sinks: list[SinkConfig]) -> list[SinkConfig]:
        names = [sink.name for sink in sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sink names must be unique (each has its own outbox): {duplicates}")
        return sinks


# -- loading -----------------------------------------------------------------------------------


def load_config(path: Path) -> CollectorConfig:
    """Read, parse and validate `path`; ConfigError lists every problem found."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    if data is None:
        raise ConfigError(f"{path}: the file is empty (see the example config)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(data).__name__}")
    data.setdefault("unit", path.stem if _is_tag_value(path.stem) else None)
    return validate_config(data, path, root)


def validate_config(
    data: dict[str, Any], path: Path | str, root: yaml.Node | None = None
) -> CollectorConfig:
    try:
        return CollectorConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = _strip_union_tags(error["loc"])
            line = _line_of(root, loc)
            where = f"{path}:{line}" if line else f"{path}"
            key = format_loc(loc) or "(top level)"
            lines.append(f"{where}: {key}: {_message(error)}")
        raise ConfigError("\n".join(lines)) from None


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _strip_union_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic puts the discriminator value in the path (source.demo.seed); users wrote source.seed
    if len(loc) >= 2 and loc[0] == "source" and loc[1] in SOURCES:
        return (loc[0], *loc[2:])
    return loc


def _message(error: Any) -> str:
    msg = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown key (a typo? see the example config and the JSON Schema)"
    if error["type"] == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ")


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest parent that exists."""
    node = root
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _is_tag_value(text: str) -> bool:
    return re.fullmatch(TAG_VALUE, text) is not None


# -- secrets and paths -------------------------------------------------------------------------


def read_token(sink: SinkConfig) -> str | None:
    """The sink's token from its file or systemd credential; ConfigError saying what is wrong."""
    if sink.anonymous:
        return None
    if sink.token_credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError(
                f"sinks.{sink.name}.token_credential: {sink.token_credential!r} needs systemd's"
                " LoadCredential= (CREDENTIALS_DIRECTORY is not set);"
                " use token_file outside systemd"
            )
        path = Path(directory) / sink.token_credential
        where = f"sinks.{sink.name}.token_credential"
    else:
        assert sink.token_file is not None
        path = sink.token_file
        where = f"sinks.{sink.name}.token_file"
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"{where}: {path}: {exc.strerror or exc}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{where}: {path} is readable by group or others (mode {stat.S_IMODE(mode):04o});"
                f" run: chmod 600 {path}"
            )
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: {path}: {exc.strerror or exc}") from exc
    if not token:
        raise ConfigError(f"{where}: {path} is empty")
    return token


def outbox_dir(config: CollectorConfig) -> Path:
    if config.outbox.dir is not None:
        return config.outbox.dir
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    raise ConfigError(
        "outbox.dir: not set, and STATE_DIRECTORY is not set either"
        " (run under systemd with StateDirectory=, or set outbox.dir)"
    )
