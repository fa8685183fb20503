"""The emporia config: passwords never inline, one password source, names in Vuegraf's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from homewatt_collector.errors import ConfigError
from homewatt_collector.sources.emporia.config import EmporiaSourceConfig, read_passwords


def source(**account: Any) -> dict[str, Any]:
    return {
        "kind": "emporia",
        "accounts": [{"name": "home", "username": "me@example.invalid", **account}],
    }


def test_an_inline_password_is_refused_naming_where_it_goes() -> None:
    with pytest.raises(ValidationError, match="password must not be written in the config file"):
        EmporiaSourceConfig.model_validate(source(password="hunter2"))


def test_a_password_source_is_required() -> None:
    with pytest.raises(ValidationError, match="set one of password_file or password_credential"):
        EmporiaSourceConfig.model_validate(source())


def test_the_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "emporia"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    config = EmporiaSourceConfig.model_validate(source(password_file=str(secret)))
    with pytest.raises(ConfigError, match=r"source\.accounts\[0\]\.password_file"):
        read_passwords(config)
    secret.chmod(0o600)
    assert read_passwords(config) == {"home": "s3cret"}


def test_outside_systemd_an_account_credential_is_the_file_of_its_name_in_the_credentials_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An account's credential named by the operator (emporia-cabin: not in the contract) is,
    outside systemd, the file the collector role and install.sh write,
    /etc/homewatt/credentials/<name>; it is missing here, and the error names it (not "the
    homewatt unit loads no credential of that name")."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = EmporiaSourceConfig.model_validate(source(password_credential="emporia-cabin"))
    with pytest.raises(ConfigError) as caught:
        read_passwords(config)
    assert "source.accounts[0].password_credential" in str(caught.value)
    assert "/etc/homewatt/credentials/emporia-cabin" in str(caught.value)
    assert "loads no credential of that name" not in str(caught.value)


def test_schema_timezone_and_channel_names_are_checked() -> None:
    config = EmporiaSourceConfig.model_validate(
        {
            **source(password_credential="emporia-home"),
            "schema": "vuegraf",
            "timezone": "Europe/Berlin",
        }
    )
    assert config.schema_ == "vuegraf"
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        EmporiaSourceConfig.model_validate(
            {**source(password_credential="x"), "timezone": "Mars/Base"}
        )
    with pytest.raises(ValidationError, match="schema"):
        EmporiaSourceConfig.model_validate({**source(password_credential="x"), "schema": "influx"})


def test_the_emporia_example_config_is_valid() -> None:
    from homewatt_collector.config import load_config  # noqa: PLC0415
    from tests.collector.conftest import REPO  # noqa: PLC0415

    config = load_config(REPO / "collector" / "emporia.example.yaml")
    assert isinstance(config.source, EmporiaSourceConfig)
    assert config.source.accounts[0].password_credential == "emporia-password"
