"""Config files: the example is valid; each mistake gets one clear error naming file, line, key."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from homewatt_collector.config import (
    CollectorConfig,
    SourceConfig,
    load_config,
    outbox_dir,
    read_token,
)
from homewatt_collector.errors import ConfigError
from homewatt_collector.sources import SOURCES
from tests.collector.conftest import REPO

EXAMPLE = REPO / "collector" / "collector.example.yaml"

VALID = """\
site: home
source:
  kind: demo
sinks:
  - url: http://127.0.0.1:8086
    org: homewatt
    bucket: homewatt
    anonymous: true
outbox:
  dir: /tmp/x
"""


def load_text(tmp_path: Path, text: str, name: str = "main.yaml") -> CollectorConfig:
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


def test_the_committed_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.site == "home"
    assert config.sinks[0].token_file == Path("/etc/homewatt/influxdb-write.token")


def test_defaults_fill_in_what_a_minimal_config_leaves_out(tmp_path: Path) -> None:
    config = load_text(tmp_path, VALID)
    assert config.interval_s == 1
    assert config.unit == "main", "the unit tag defaults to the file name"
    assert config.outbox.max_size_mb == 200
    assert config.sinks[0].batch_size == 5000
    assert config.clock.wait_for_sync is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("site: home", "site: my home"), ":1: site: String should match pattern"),
        (("  kind: demo", "  kind: demo\n  colour: red"), ":4: source.colour: unknown key"),
        (("  kind: demo", "  kind: teleport"), "source: Input tag 'teleport'"),
        (
            ("    anonymous: true", "    anonymous: true\n    token: abc"),
            "must not be written in the config",
        ),
        (
            ("    anonymous: true", "    anonymous: false"),
            "set exactly one of token_file or token_credential",
        ),
        (("http://127.0.0.1:8086", "ftp://x"), ":5: sinks[0].url: 'ftp://x' is not an http"),
        (
            ("site: home\n", "site: home\ninterval_s: 0.5\n"),
            ":2: interval_s: Input should be a valid integer",
        ),
        (("bucket: homewatt", "bucket: ''"), ":7: sinks[0].bucket: String should have at least 1"),
        (("site: home\n", ""), "site: required key is missing"),
    ],
)
def test_each_mistake_names_the_file_line_key_and_problem(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    message = error_of(tmp_path, VALID.replace(*change))
    assert str(tmp_path / "main.yaml") in message
    assert expected in message
    assert "Traceback" not in message


def test_sink_names_must_be_unique(tmp_path: Path) -> None:
    sink = VALID[VALID.index("  - url") : VALID.index("outbox:")]
    text = VALID.replace("outbox:", sink + "outbox:")
    assert "sink names must be unique" in error_of(tmp_path, text)


def test_yaml_syntax_errors_point_at_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "site: home\nsource: [kind: demo\n")
    assert "main.yaml:3:" in message and "not valid YAML" in message


def test_an_empty_or_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    assert "the file is empty" in error_of(tmp_path, "")
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_config(tmp_path / "absent.yaml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, VALID.replace("site: home", "site: ''").replace("org: homewatt", "org: ''")
    )
    assert "site:" in message and "sinks[0].org:" in message


def test_a_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    config = load_text(tmp_path, VALID.replace("anonymous: true", f"token_file: {token}"))
    with pytest.raises(
        ConfigError, match=r"readable by group or others \(mode 0644\); run: chmod 600"
    ):
        read_token(config.sinks[0])
    token.chmod(0o600)
    assert read_token(config.sinks[0]) == "s3cret"


def test_a_token_credential_is_read_from_systemds_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_text(tmp_path, VALID.replace("anonymous: true", "token_credential: influx"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="needs systemd's LoadCredential="):
        read_token(config.sinks[0])
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "influx").write_text("tok\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    assert read_token(config.sinks[0]) == "tok"


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    token.chmod(0o600)
    config = load_text(tmp_path, VALID.replace("anonymous: true", f"token_file: {token}"))
    with pytest.raises(ConfigError, match="is empty"):
        read_token(config.sinks[0])


def test_the_outbox_defaults_to_systemds_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_text(tmp_path, VALID.replace("outbox:\n  dir: /tmp/x\n", ""))
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/homewatt-collector/main")
    assert outbox_dir(config) == Path("/var/lib/homewatt-collector/main")
    monkeypatch.delenv("STATE_DIRECTORY")
    with pytest.raises(ConfigError, match="StateDirectory="):
        outbox_dir(config)


def test_the_published_json_schema_matches_the_config_model() -> None:
    published = json.loads((REPO / "collector" / "collector-config.schema.json").read_text())
    assert published == CollectorConfig.model_json_schema(), (
        "regenerate: homewatt-collector schema > collector/collector-config.schema.json"
    )


def test_every_registered_source_kind_has_a_config_model_in_the_union() -> None:
    union = typing.get_args(SourceConfig)[0]
    members = typing.get_args(union) or (union,)
    assert {m.model_fields["kind"].default for m in members} == set(SOURCES.names())
    assert all(SOURCES.get(m.model_fields["kind"].default).config_model is m for m in members)
