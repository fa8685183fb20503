"""The cost config of one site: /etc/homewatt/cost/<site>.yaml (collector/cost.example.yaml).

- `site`: the `site` tag whose counters are billed (and that energy_cost points carry).
- `tariff`: the tariff file (tariff.py), default /etc/homewatt/tariff.yaml.
- `devices`: the devices whose energy makes the bill (default: all; a plug behind the main
  meter is already inside the main meter's energy).
- `influxdb`: where counters are read and energy_cost written, over InfluxDB's v1 HTTP API
  (`/query` with InfluxQL, `/write` with line protocol): InfluxDB 1.x natively, InfluxDB 2
  through its v1 compatibility API and a DBRP mapping (database `homewatt`, the raw bucket as
  its default retention policy: contracts/influxdb-grafana.json). The token follows the
  collector's sink conventions: `token_credential` (a systemd credential,
  `influxdb-cost-token` in contracts/secrets.json), `token_file` (mode 0600), or
  `anonymous: true` (InfluxDB 1.x without authentication).

Errors: ConfigError, one `file:line: key: problem` line each.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator

from homewatt_collector.config import TAG_VALUE, http_url
from homewatt_collector.cost.tariff import DEFAULT_PATH
from homewatt_collector.errors import ConfigError
from homewatt_common.configmodel import ConfigModel, PathField, no_inline_secret, validate
from homewatt_common.credentials import SecretLocation, locate_file, read_located
from homewatt_common.problems import Problem, ProblemsError
from homewatt_common.secrets_contract import load_contract
from homewatt_common.yamlfile import YamlDocument, load_yaml

APP = "homewatt-collector"
UNIT = "homewatt-cost@.service"
EXAMPLE = "collector/cost.example.yaml"


class CostInfluxDB(ConfigModel):
    """InfluxDB's v1 HTTP API: read counters, write energy_cost."""

    url: str = Field(description="InfluxDB base URL, e.g. http://127.0.0.1:8086")
    database: str = Field(
        "homewatt", min_length=1, description="InfluxQL database (InfluxDB 2: the DBRP's)"
    )
    read_retention_policy: str = Field(
        "",
        description="where counters are read: '' the database's default (raw, 30 days on a"
        " Pi), longterm for bills older than that (the last reading of each minute)",
    )
    write_retention_policy: str = Field(
        "longterm",
        description="where energy_cost is written: longterm (kept for years; Grafana's cost"
        " panels read it there), '' the database's default",
    )
    token_file: Path | None = PathField(description="file holding the token (mode 0600)")
    token_credential: str | None = Field(
        None, description="systemd credential (LoadCredential=) holding the token"
    )
    anonymous: bool = Field(False, description="send no token (InfluxDB 1.x without auth)")
    timeout_s: float = Field(60.0, gt=0, le=600, description="per HTTP request")
    verify_tls: bool = True

    _no_inline_token = no_inline_secret("token", "token_file", "token_credential")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @model_validator(mode="after")
    def _one_token_source(self) -> CostInfluxDB:
        given = [k for k in ("token_file", "token_credential") if getattr(self, k) is not None]
        if self.anonymous and given:
            raise ValueError(f"anonymous: true and {given[0]} contradict each other")
        if not self.anonymous and len(given) != 1:
            raise ValueError(
                "set exactly one of token_file or token_credential"
                " (or anonymous: true for InfluxDB 1.x without authentication)"
            )
        return self


class CostConfig(ConfigModel):
    site: str = Field(pattern=TAG_VALUE, description="the `site` tag to bill")
    tariff: Path = PathField(DEFAULT_PATH, description="the tariff file")
    devices: list[str] | None = Field(
        None, min_length=1, description="devices whose energy makes the bill (default: all)"
    )
    influxdb: CostInfluxDB

    _where: str = PrivateAttr("")
    _document: YamlDocument | None = PrivateAttr(None)

    def origin(self, *loc: int | str) -> Problem:
        line = self._document.line_of(loc) if self._document is not None else None
        return Problem(self._where, "", ".".join(str(p) for p in loc), line)


def load_cost_config(path: Path) -> CostConfig:
    """Read and validate `path`; ConfigError with one line per problem."""
    try:
        document = load_yaml(path)
        if not isinstance(document.data, dict):
            raise ProblemsError.one(str(path), f"expected a mapping of settings (see {EXAMPLE})")
        config = validate(CostConfig, document.data, str(path), document, example=EXAMPLE)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
    config._where = str(path)
    config._document = document
    if not config.tariff.is_absolute():
        config.tariff = path.parent / config.tariff
    return config


def token_location(config: CostConfig) -> SecretLocation | None:
    """Where the token is read (None: anonymous). A credential comes from systemd's
    $CREDENTIALS_DIRECTORY; outside systemd from the file homewatt-cost@.service loads
    (contracts/secrets.json), which the location says it assumed."""
    influxdb = config.influxdb
    try:
        if influxdb.token_file is not None:
            location, _ = locate_file(
                APP, influxdb.token_file, config.origin("influxdb", "token_file"), "token"
            )
            return location
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
    if influxdb.token_credential is None:
        return None
    name = influxdb.token_credential
    origin = config.origin("influxdb", "token_credential")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        return SecretLocation(Path(directory) / name, origin, "token")
    spec = next(
        (s for s in load_contract().secrets.values() if (UNIT, name) in s.credentials),
        None,
    )
    if spec is None:
        raise ConfigError(
            [
                Problem(
                    origin.where,
                    f"credential {name!r} needs systemd's LoadCredential= ($CREDENTIALS_DIRECTORY"
                    f" is not set) and {UNIT} loads no credential of that name: outside systemd"
                    " name a file (token_file) instead",
                    origin.key,
                    origin.line,
                )
            ]
        )
    return SecretLocation(
        spec.path,
        origin,
        "token",
        assumed=f"outside systemd: {spec.path}, the file {UNIT} hands over as credential {name}",
    )


def read_token(config: CostConfig) -> str | None:
    """The token (None: anonymous); ConfigError naming the key and the file."""
    location = token_location(config)
    if location is None:
        return None
    try:
        return read_located(APP, location)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
