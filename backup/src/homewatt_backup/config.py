"""The configuration file (YAML), validated with pydantic before anything starts.

Errors name the file, the key and the problem. Secrets (InfluxDB token or password, Azure SAS)
are never in this file: each comes from a file that only its owner may read (`*_file`) or
from a systemd credential (`*_credential`, read from $CREDENTIALS_DIRECTORY).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from homewatt_backup.errors import ConfigError
from homewatt_backup.models import SITE_MAX_LENGTH, Engine, site_ok
from homewatt_backup.rotation import DEFAULT_KEEP_FULL

DEFAULT_CONFIG = Path("/etc/homewatt/backup.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/homewatt-backup")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_CREDENTIAL_NAME = r"^[A-Za-z0-9_.@-]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_secret_source(
    owner: str, file: Path | None, credential: str | None, required: bool = True
) -> None:
    if file is not None and credential is not None:
        raise ValueError(f"give either {owner}_file or {owner}_credential, not both")
    if required and file is None and credential is None:
        raise ValueError(f"{owner}_file or {owner}_credential is required")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:8086")
    return value.rstrip("/")


class InfluxDB2Config(_Model):
    """InfluxDB 2.x: backup and export over its HTTP API with an operator token."""

    engine: Literal["influxdb2"]
    url: str = "http://127.0.0.1:8086"
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    token_file: Path | None = None
    token_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)
    health_bucket: str | None = None
    timeout_s: float = Field(default=60, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _secret(self) -> InfluxDB2Config:
        _one_secret_source("token", self.token_file, self.token_credential)
        return self

    @property
    def source(self) -> str:
        return f"{self.org}/{self.bucket}"


class InfluxDB1Config(_Model):
    """InfluxDB 1.x: `influxd backup -portable` (RPC on rpc_address) and InfluxQL over HTTP."""

    engine: Literal["influxdb1"]
    url: str = "http://127.0.0.1:8086"
    database: str = Field(min_length=1)
    rpc_address: str = Field(default="127.0.0.1:8088", pattern=r"^[^\s:]+:\d+$")
    influxd: str = "influxd"
    username: str | None = None
    password_file: Path | None = None
    password_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)
    health_database: str | None = None
    timeout_s: float = Field(default=60, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _secret(self) -> InfluxDB1Config:
        _one_secret_source(
            "password",
            self.password_file,
            self.password_credential,
            required=self.username is not None,
        )
        if self.username is None and (self.password_file or self.password_credential):
            raise ValueError("a password needs a username")
        return self

    @property
    def source(self) -> str:
        return self.database


InfluxConfig = Annotated[InfluxDB2Config | InfluxDB1Config, Field(discriminator="engine")]


class ScheduleConfig(_Model):
    daily_full_hour_utc: int = Field(default=3, ge=0, le=23)
    overlap_hours: float = Field(default=6, ge=1, le=24 * 14)
    query_chunk_hours: float = Field(default=1, gt=0, le=24)
    precision: Literal["s", "ms", "us", "ns"] = "s"


class KeepConfig(_Model):
    full: int = Field(default=DEFAULT_KEEP_FULL, ge=1, le=1000)
    local_full: int = Field(default=2, ge=1, le=100)


class AzureConfig(_Model):
    """The `azure:` section: exactly the keys of contracts/backup-azure.json."""

    account_url: str
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    retention: Literal["rotation", "lifecycle"]
    sas_file: Path | None = None
    sas_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, value: str) -> str:
        parts = urlsplit(value)
        loopback = parts.hostname in LOOPBACK_HOSTS
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(
                "must be https://<account>.blob.core.windows.net "
                "(plain http only for a local emulator on loopback)"
            )
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query: the SAS goes into sas_file or sas_credential")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secret(self) -> AzureConfig:
        _one_secret_source("sas", self.sas_file, self.sas_credential)
        if "--" in self.container:
            raise ValueError("container: Azure container names have no consecutive dashes")
        return self

    @property
    def sas_source(self) -> str:
        if self.sas_file is not None:
            return f"the file {self.sas_file} (azure.sas_file)"
        return f"the systemd credential {self.sas_credential!r} (azure.sas_credential)"


class Config(_Model):
    site: str
    state_dir: Path | None = None
    influxdb: InfluxConfig
    schedule: ScheduleConfig = ScheduleConfig()
    keep: KeepConfig = KeepConfig()
    azure: AzureConfig | None = None
    health: bool = True

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        # models.SITE_PATTERN: Terraform's rule for the keys of `sites` (the contract's
        # site_pattern); checked with fullmatch (a trailing newline is not a site name)
        if not site_ok(value):
            raise ValueError(
                f"must be 1-{SITE_MAX_LENGTH} lowercase letters and digits in groups joined by "
                "single hyphens (e.g. home, cabin-2): the site's key in Terraform's `sites`"
            )
        return value

    @property
    def engine(self) -> Engine:
        return Engine(self.influxdb.engine)


@dataclass(frozen=True)
class Secrets:
    influx_token: str | None
    influx_password: str | None
    sas: str | None

    def __repr__(self) -> str:  # never print a secret by accident
        return "Secrets(<redacted>)"


@dataclass(frozen=True)
class Settings:
    """A loaded configuration: the validated file, its secrets, and resolved paths."""

    path: Path
    config: Config
    secrets: Secrets
    state_dir: Path


def _loc(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("influxdb2", "influxdb1")]
    return ".".join(parts) or "(top level)"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check its spelling; see backup.example.yaml)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return "engine must be influxdb2 or influxdb1"
    if kind == "union_tag_not_found":
        return "engine is required (influxdb2 or influxdb1)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse_config(data: object, path: Path) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a YAML mapping of keys")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_loc(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None


def read_secret(path: Path, key: str, config_path: Path) -> str:
    """A secret file's content; it must exist, be a file, and be unreadable to group/others."""
    where = f"{config_path}: {key}"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{where}: {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"{where}: {path} is not readable by this user") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{where}: {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{where}: {path} is readable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 it"
        )
    try:
        value = path.read_text().strip()
    except PermissionError:
        raise ConfigError(f"{where}: {path} is not readable by this user") from None
    if not value:
        raise ConfigError(f"{where}: {path} is empty")
    return value


def read_credential(name: str, key: str, config_path: Path, credentials_dir: Path | None) -> str:
    if credentials_dir is None:
        raise ConfigError(
            f"{config_path}: {key}: credential {name!r} needs $CREDENTIALS_DIRECTORY "
            "(set by systemd's LoadCredential=, or pass --credentials-dir)"
        )
    return read_secret(credentials_dir / name, key, config_path)


def _secret(
    file: Path | None,
    credential: str | None,
    owner: str,
    config_path: Path,
    credentials_dir: Path | None,
) -> str | None:
    if file is not None:
        return read_secret(file, f"{owner}_file", config_path)
    if credential is not None:
        return read_credential(credential, f"{owner}_credential", config_path, credentials_dir)
    return None


def load_settings(
    path: Path, credentials_dir: Path | None = None, state_dir: Path | None = None
) -> Settings:
    """Read, validate and resolve everything; a ConfigError names file, key and problem."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: the configuration file does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    config = parse_config(data, path)
    if credentials_dir is None and os.environ.get("CREDENTIALS_DIRECTORY"):
        credentials_dir = Path(os.environ["CREDENTIALS_DIRECTORY"])
    influx = config.influxdb
    if isinstance(influx, InfluxDB2Config):
        token = _secret(
            influx.token_file, influx.token_credential, "influxdb.token", path, credentials_dir
        )
        password = None
    else:
        token = None
        password = _secret(
            influx.password_file,
            influx.password_credential,
            "influxdb.password",
            path,
            credentials_dir,
        )
    sas = None
    if config.azure is not None:
        sas = _secret(
            config.azure.sas_file, config.azure.sas_credential, "azure.sas", path, credentials_dir
        )
        if sas is not None:
            sas = sas.removeprefix("?")
    resolved_state = (
        state_dir
        or config.state_dir
        or (
            Path(os.environ["STATE_DIRECTORY"].split(":")[0])
            if os.environ.get("STATE_DIRECTORY")
            else DEFAULT_STATE_DIR
        )
    )
    return Settings(path, config, Secrets(token, password, sas), resolved_state)
