"""The configuration file (YAML), validated with pydantic before anything starts.

Files are read by homewatt_common (UTF-8, duplicate keys refused, every error
`file:line: key: problem`); values are strict (`timeout_s: .inf` or `true` are refused).
Secrets (InfluxDB token or password, Azure SAS) are never in this file: each comes from a file
that only its owner may read (`*_file`) or from a systemd credential (`*_credential`, read from
$CREDENTIALS_DIRECTORY). Outside systemd (a shell, sudo) a credential is read from the file the
unit hands over (contracts/secrets.json) and the state directory is the unit's; `Settings`
says what was assumed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from homewatt_backup.errors import ConfigError
from homewatt_backup.models import SITE_MAX_LENGTH, Engine, site_ok
from homewatt_backup.rotation import DEFAULT_KEEP_FULL
from homewatt_common.configmodel import STRICT, PathField, no_inline_secret, validate
from homewatt_common.credentials import (
    SecretLocation,
    locate_credential,
    locate_file,
    read_located,
)
from homewatt_common.problems import Problem, ProblemsError, format_loc
from homewatt_common.secrets_contract import load_contract
from homewatt_common.yamlfile import YamlDocument, load_yaml

APP = "homewatt-backup"
UNIT = load_contract().unit_of(APP)
DEFAULT_CONFIG = UNIT.config_of("")
DEFAULT_STATE_DIR = UNIT.state_directory_of("")
CREDENTIALS_DIR = load_contract().credentials_dir
CONFIG_DIR = CREDENTIALS_DIR.parent  # contracts/secrets.json: config_dir holds credentials_dir
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_CREDENTIAL_NAME = r"^[A-Za-z0-9_.@-]+$"
ENGINES = ("influxdb2", "influxdb1")
_GUID = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
# a tenant is named by its ID (a GUID) or one of its domains (contoso.onmicrosoft.com)
_TENANT = r"^([0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)$"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"


class _Model(BaseModel):
    model_config = ConfigDict(**STRICT, frozen=True)


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


BucketName = Annotated[str, Field(min_length=1)]


class InfluxDB2Config(_Model):
    """InfluxDB 2.x: backup and export over its HTTP API with an operator token.

    `bucket` is the primary bucket (health points go there by default; `restore --target`
    names its new name); `extra_buckets` are backed up beside it, all of `org` (e.g.
    homewatt_longterm, the long-term means): each name once, none the primary."""

    engine: Literal["influxdb2"]
    url: str = "http://127.0.0.1:8086"
    org: str = Field(min_length=1)
    bucket: BucketName
    extra_buckets: list[BucketName] = Field(default_factory=list)
    token_file: Path | None = PathField()
    token_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)
    health_bucket: str | None = None
    timeout_s: float = Field(default=60, gt=0, le=3600)

    _no_inline_token = no_inline_secret("token", "token_file", "token_credential")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _secret(self) -> InfluxDB2Config:
        _one_secret_source("token", self.token_file, self.token_credential)
        return self

    @field_validator("extra_buckets")
    @classmethod
    def _extra_buckets(cls, value: list[str], info: ValidationInfo) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} given more than once")
        primary = info.data.get("bucket")  # validated before (declared first)
        if primary in value:
            raise ValueError(
                f"{primary!r} is the bucket itself (influxdb.bucket): list only the other buckets"
            )
        return value

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
    password_file: Path | None = PathField()
    password_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)
    health_database: str | None = None
    timeout_s: float = Field(default=60, gt=0, le=3600)

    _no_inline_password = no_inline_secret("password", "password_file", "password_credential")
    # How long a restore waits for influxd to load the shards `influxd restore` sent it
    # (influxd imports them after the CLI has exited; engines/influxdb1.py, wait_loaded).
    restore_wait_s: float = Field(default=600, gt=0, le=6 * 3600)

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


class ClockConfig(_Model):
    """`clock:`: wait_for_sync (default true) refuses to run while the system clock is not
    synchronised; false for a site without network time (as in the collector)."""

    wait_for_sync: bool = True


class KeepConfig(_Model):
    full: int = Field(default=DEFAULT_KEEP_FULL, ge=1, le=1000)
    local_full: int = Field(default=2, ge=1, le=100)


class AzureConfig(_Model):
    """The `azure:` section: the keys of contracts/backup-azure.json (account_url, container,
    retention, auth) and where the credential of `auth` is read: a SAS (sas_file or
    sas_credential), or for `service_principal` (Entra ID, shared-key access off) tenant_id,
    client_id and a client certificate (PEM with its key) or a client secret. authority_host:
    Entra ID's sign-in host (another for a national cloud, e.g. https://login.microsoftonline.us)."""

    account_url: str
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    retention: Literal["rotation", "lifecycle"]
    auth: Literal["sas", "service_principal"] = "sas"
    sas_file: Path | None = PathField()
    sas_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)
    tenant_id: str | None = Field(default=None, pattern=_TENANT)
    client_id: str | None = Field(default=None, pattern=_GUID)
    client_certificate_file: Path | None = PathField()
    client_certificate_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)
    client_secret_file: Path | None = PathField()
    client_secret_credential: str | None = Field(default=None, pattern=_CREDENTIAL_NAME)
    authority_host: str = DEFAULT_AUTHORITY_HOST

    _no_inline_sas = no_inline_secret("sas", "sas_file", "sas_credential")
    _no_inline_client_secret = no_inline_secret(
        "client_secret", "client_secret_file", "client_secret_credential"
    )
    _no_inline_client_certificate = no_inline_secret(
        "client_certificate", "client_certificate_file", "client_certificate_credential"
    )

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

    @field_validator("authority_host")
    @classmethod
    def _authority_host(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/"):
            raise ValueError("must be an https:// host such as https://login.microsoftonline.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secret(self) -> AzureConfig:
        if "--" in self.container:
            raise ValueError("container: Azure container names have no consecutive dashes")
        principal_keys = {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_certificate_file": self.client_certificate_file,
            "client_certificate_credential": self.client_certificate_credential,
            "client_secret_file": self.client_secret_file,
            "client_secret_credential": self.client_secret_credential,
        }
        if self.auth == "sas":
            given = [key for key, value in principal_keys.items() if value is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} only apply with auth: service_principal (auth is sas)"
                )
            _one_secret_source("sas", self.sas_file, self.sas_credential)
            return self
        if self.sas_file is not None or self.sas_credential is not None:
            raise ValueError("auth: service_principal signs in with Entra ID: drop the sas_* key")
        missing = [key for key in ("tenant_id", "client_id") if principal_keys[key] is None]
        if missing:
            raise ValueError(f"auth: service_principal needs {' and '.join(missing)}")
        sources = [
            key
            for key in (
                "client_certificate_file",
                "client_certificate_credential",
                "client_secret_file",
                "client_secret_credential",
            )
            if principal_keys[key] is not None
        ]
        if len(sources) != 1:
            raise ValueError(
                "auth: service_principal needs exactly one of client_certificate_credential,"
                " client_certificate_file, client_secret_credential, client_secret_file"
                + (f" (given: {', '.join(sources)})" if sources else "")
            )
        return self

    @property
    def credential_source(self) -> str:
        """Where the credential comes from, for error lines (never its value)."""
        if self.auth == "service_principal":
            key, value = next(
                (key, value)
                for key, value in (
                    ("client_certificate_file", self.client_certificate_file),
                    ("client_certificate_credential", self.client_certificate_credential),
                    ("client_secret_file", self.client_secret_file),
                    ("client_secret_credential", self.client_secret_credential),
                )
                if value is not None
            )
            what = "the file" if key.endswith("_file") else "the systemd credential"
            return (
                f"the service principal {self.client_id} of tenant {self.tenant_id}"
                f" ({what} {str(value)!r}, azure.{key})"
            )
        if self.sas_file is not None:
            return f"the file {self.sas_file} (azure.sas_file)"
        return f"the systemd credential {self.sas_credential!r} (azure.sas_credential)"

    @property
    def sas_source(self) -> str:
        return self.credential_source


class ConfigFilesConfig(_Model):
    """`config_files:` what every daily (full) backup also archives (configfiles.py):
    `directory` (default /etc/homewatt) without its credentials directory and private files,
    and `install_answers`, install.sh's answers file, when set and present."""

    enabled: bool = True
    directory: Path = PathField(default=CONFIG_DIR)
    install_answers: Path | None = PathField()


class Config(_Model):
    site: str
    state_dir: Path | None = PathField()
    influxdb: InfluxConfig
    schedule: ScheduleConfig = ScheduleConfig()
    keep: KeepConfig = KeepConfig()
    clock: ClockConfig = ClockConfig()
    azure: AzureConfig | None = None
    config_files: ConfigFilesConfig = ConfigFilesConfig()
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
    client_secret: str | None = None
    client_certificate: str | None = None

    def __repr__(self) -> str:  # never print a secret by accident
        return "Secrets(<redacted>)"


NO_SECRETS = Secrets(None, None, None)


@dataclass(frozen=True)
class Settings:
    """A loaded configuration: the validated file, its secrets, and resolved paths.

    `secret_locations`: where each secret was (or, with read_secrets=False, would be) read;
    `assumed`: what was assumed outside systemd; `warnings`: problems that do not stop a run
    (a secret at homewatt 0.1's path)."""

    path: Path
    config: Config
    secrets: Secrets
    state_dir: Path
    secret_locations: dict[str, SecretLocation]
    assumed: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = ()


def _secret_location(
    owner: str,
    file: Path | None,
    credential: str | None,
    *,
    kind: str,
    document: YamlDocument,
    credentials_dir: Path | None,
) -> tuple[SecretLocation | None, list[Problem]]:
    """Where the secret of `owner` (e.g. influxdb.token) is read, and warnings about it."""
    loc = tuple(owner.split("."))
    for suffix, value in (("_file", file), ("_credential", credential)):
        if value is None:
            continue
        key = (*loc[:-1], f"{loc[-1]}{suffix}")
        origin = Problem(str(document.path), "", format_loc(key), document.line_of(key))
        if isinstance(value, Path):
            return locate_file(APP, value, origin, kind)
        return locate_credential(APP, value, origin, kind, credentials_dir), []
    return None, []


def _secrets(
    config: Config, document: YamlDocument, credentials_dir: Path | None, read: bool
) -> tuple[Secrets, dict[str, SecretLocation], list[Problem]]:
    """The config's secrets (all None unless `read`), where each is, and warnings;
    ProblemsError listing every secret that cannot be read."""
    influx = config.influxdb
    wanted: dict[str, tuple[str, Path | None, str | None]] = {}
    if isinstance(influx, InfluxDB2Config):
        wanted["token"] = ("influxdb.token", influx.token_file, influx.token_credential)
    else:
        wanted["password"] = (
            "influxdb.password",
            influx.password_file,
            influx.password_credential,
        )
    azure = config.azure
    if azure is not None and azure.auth == "sas":
        wanted["sas"] = ("azure.sas", azure.sas_file, azure.sas_credential)
    elif azure is not None and (
        azure.client_certificate_file or azure.client_certificate_credential
    ):
        wanted["certificate"] = (
            "azure.client_certificate",
            azure.client_certificate_file,
            azure.client_certificate_credential,
        )
    elif azure is not None:
        wanted["client_secret"] = (
            "azure.client_secret",
            azure.client_secret_file,
            azure.client_secret_credential,
        )
    locations: dict[str, SecretLocation] = {}
    warnings: list[Problem] = []
    problems: list[Problem] = []
    values: dict[str, str | None] = dict.fromkeys(
        ("token", "password", "sas", "client_secret", "certificate")
    )
    for name, (owner, file, credential) in wanted.items():
        try:
            location, found = _secret_location(
                owner,
                file,
                credential,
                kind={"client_secret": "token"}.get(
                    name, name
                ),  # a client secret is printable ASCII
                document=document,
                credentials_dir=credentials_dir,
            )
            warnings.extend(found)
            if location is None:
                continue
            locations[name] = location
            if read:
                values[name] = read_located(APP, location)
        except ProblemsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ProblemsError(problems)
    secrets = Secrets(
        values["token"],
        values["password"],
        values["sas"],
        values["client_secret"],
        values["certificate"],
    )
    return secrets, locations, warnings


def load_settings(
    path: Path,
    credentials_dir: Path | None = None,
    state_dir: Path | None = None,
    read_secrets: bool = True,
) -> Settings:
    """Read, validate and resolve everything; a ConfigError names file, line, key and problem.
    `credentials_dir`: default $CREDENTIALS_DIRECTORY; outside systemd the files the unit
    hands over are read instead (Settings.assumed says so)."""
    try:
        document = load_yaml(path)
        if not isinstance(document.data, dict):
            raise ProblemsError.one(str(path), "the file must hold a YAML mapping of keys")
        config = validate(
            Config,
            document.data,
            str(path),
            document,
            union_tags=ENGINES,
            example="backup.example.yaml",
        )
        if credentials_dir is None and os.environ.get("CREDENTIALS_DIRECTORY"):
            credentials_dir = Path(os.environ["CREDENTIALS_DIRECTORY"])
        secrets, locations, warnings = _secrets(config, document, credentials_dir, read_secrets)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
    assumed = [
        f"{location.origin.key}: {location.assumed}"
        for location in locations.values()
        if location.assumed
    ]
    if state_dir is None and config.state_dir is None and os.environ.get("STATE_DIRECTORY"):
        state_dir = Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    resolved_state = state_dir or config.state_dir
    if resolved_state is None:
        resolved_state = DEFAULT_STATE_DIR
        assumed.append(
            f"state directory: outside systemd: {resolved_state}, the unit's StateDirectory="
        )
    return Settings(
        path,
        config,
        secrets,
        resolved_state,
        locations,
        tuple(assumed),
        tuple(warnings),
    )
