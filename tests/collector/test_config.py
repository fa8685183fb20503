"""Config files: the example is valid; each mistake gets one clear error naming file, line, key."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from homewatt_collector.config import (
    CollectorConfig,
    OutboxDir,
    SourceConfig,
    load_config,
    outbox_dir,
    read_token,
    token_location,
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
    assert config.sinks[0].token_credential == "influxdb-write-token"


@pytest.mark.parametrize("name", ["collector", "shelly", "emporia"])
def test_every_example_instance_config_is_valid_and_shows_its_clock_section(name: str) -> None:
    path = REPO / "collector" / f"{name}.example.yaml"
    config = load_config(path)
    assert config.clock.wait_for_sync is True
    assert "\nclock:\n" in path.read_text(), f"{path.name} shows no clock: section"


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
        (
            ("  kind: demo", "  kind: teleport"),
            ":3: source.kind: must be one of 'demo', 'modbus', 'shelly', 'emporia', not 'teleport'",
        ),
        (
            ("    anonymous: true", "    anonymous: true\n    token: abc"),
            ":5: sinks[0]: token must not be written in the config file: put the secret in a file"
            " named by token_file (mode 0600) or in a systemd credential named by token_credential"
            " (LoadCredential=)",
        ),
        (
            ("    anonymous: true", "    anonymous: false"),
            "set exactly one of token_file or token_credential",
        ),
        (("http://127.0.0.1:8086", "ftp://x"), ":5: sinks[0].url: 'ftp://x' is not an http"),
        (
            ("site: home\n", "site: home\ninterval_s: 0.5\n"),
            ":2: interval_s: Input should be a valid integer, not 0.5",
        ),
        (
            ("site: home\n", "site: home\ninterval_s: true\n"),
            ":2: interval_s: Input should be a valid integer, not true",
        ),
        (
            ("    anonymous: true", "    anonymous: true\n    timeout_s: .nan"),
            ":9: sinks[0].timeout_s: Input should be a finite number, not .nan",
        ),
        (
            ("    anonymous: true", "    anonymous: true\n    retry_max_s: .inf"),
            ":9: sinks[0].retry_max_s: Input should be a finite number, not .inf",
        ),
        (
            ("  kind: demo", "  kind: demo\n  seed: '7'"),
            ":4: source.seed: Input should be a valid integer, not '7'",
        ),
        (
            ("outbox:\n", "clock:\n  wait_for_sync: 1\noutbox:\n"),
            ":10: clock.wait_for_sync: Input should be a valid boolean, not 1",
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


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    text = VALID.replace("    bucket: homewatt\n", "    bucket: homewatt\n    url: http://x:1\n")
    assert error_of(tmp_path, text) == (
        f"{tmp_path / 'main.yaml'}:8: sinks[0].url: duplicate key (first on line 5)"
    )


def test_yaml_syntax_errors_point_at_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "site: home\nsource: [kind: demo\n")
    assert "main.yaml:3:" in message and "not valid YAML" in message


def test_an_empty_or_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    assert "the file is empty" in error_of(tmp_path, "")
    with pytest.raises(ConfigError, match=r"absent\.yaml: the file does not exist"):
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
    with pytest.raises(ConfigError) as info:
        read_token(config, 0)
    assert str(info.value) == (
        f"{tmp_path / 'main.yaml'}:8: sinks[0].token_file: {token}: is readable by group or"
        f" others (mode 0644): run: sudo chmod 600 {token}"
    )
    token.chmod(0o600)
    assert read_token(config, 0) == "s3cret"


def test_a_token_credential_is_read_from_systemds_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_text(tmp_path, VALID.replace("anonymous: true", "token_credential: influx"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as info:
        read_token(config, 0)
    assert str(info.value) == (
        f"{tmp_path / 'main.yaml'}:8: sinks[0].token_credential: credential 'influx' needs"
        " systemd's LoadCredential= ($CREDENTIALS_DIRECTORY is not set), and the homewatt unit"
        " loads no credential of that name (influxdb-write-token, influxdb-central-token,"
        " emporia-password, shelly-password):"
        " outside systemd name a file instead"
    )
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "influx").write_text("tok\n")
    (tmp_path / "creds" / "influx").chmod(0o400)  # as systemd hands it over
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    assert read_token(config, 0) == "tok"


def test_outside_systemd_a_credential_is_read_from_the_file_the_unit_hands_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_text(
        tmp_path, VALID.replace("anonymous: true", "token_credential: influxdb-write-token")
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    location, warnings = token_location(config, 0)
    assert location is not None and warnings == []
    assert location.path == Path("/etc/homewatt/credentials/influxdb-write-token")
    assert location.assumed == (
        "outside systemd: /etc/homewatt/credentials/influxdb-write-token,"
        " the file the unit hands over as credential influxdb-write-token"
    )


def test_the_old_credential_name_is_refused_with_the_line_that_renames_it(
    tmp_path: Path,
) -> None:
    config = load_text(
        tmp_path, VALID.replace("anonymous: true", "token_credential: influxdb-token")
    )
    with pytest.raises(ConfigError) as info:
        read_token(config, 0)
    (problem,) = info.value.problems
    path = tmp_path / "main.yaml"
    assert str(problem) == (
        f"{path}:8: sinks[0].token_credential: 'influxdb-token' is the old name of this"
        " credential (homewatt 0.1): the unit now hands over 'influxdb-write-token'"
    )
    assert problem.fix == (
        "sudo sed -i 's/token_credential: influxdb-token$/token_credential: influxdb-write-token/'"
        f" {path}",
    )


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    token.chmod(0o600)
    config = load_text(tmp_path, VALID.replace("anonymous: true", f"token_file: {token}"))
    with pytest.raises(ConfigError, match=f"{token}: is empty"):
        read_token(config, 0)


def test_the_outbox_defaults_to_systemds_state_directory_and_outside_it_to_the_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_text(tmp_path, VALID.replace("outbox:\n  dir: /tmp/x\n", ""), "kitchen.yaml")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/private/homewatt-collector/kitchen")
    assert outbox_dir(config) == OutboxDir(Path("/var/lib/private/homewatt-collector/kitchen"))
    monkeypatch.delenv("STATE_DIRECTORY")
    assert outbox_dir(config) == OutboxDir(
        Path("/var/lib/homewatt-collector/kitchen"),
        "outside systemd: the unit's StateDirectory= for instance kitchen",
    )


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
