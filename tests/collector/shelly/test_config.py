"""The shelly source's config: clear errors naming the key, passwords only from files or
systemd credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homewatt_collector.config import validate_config
from homewatt_collector.errors import ConfigError
from homewatt_collector.sources.shelly.config import read_passwords


def collector(devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "site": "home",
        "source": {"kind": "shelly", "devices": devices},
        "sinks": [{"url": "http://127.0.0.1:8086", "org": "o", "bucket": "b", "anonymous": True}],
    }


@pytest.mark.parametrize(
    ("device", "message"),
    [
        (
            {"password": "x"},
            "source.devices[0]: password must not be written in the config file: put the"
            " secret in a file named by password_file (mode 0600) or in a systemd credential"
            " named by password_credential (LoadCredential=)",
        ),
        ({"interval_s": 0}, "source.devices[0].interval_s"),
        ({"interval_s": 61}, "less than or equal to 60"),
        ({"name": "bad name"}, "source.devices[0].name"),
        ({"password_file": "/a", "password_credential": "b"}, "at most one of password_file"),
        ({"channels": {"switch0": "no spaces"}}, "channel name 'no spaces'"),
    ],
)
def test_a_bad_device_entry_is_told_by_key(device: dict[str, Any], message: str) -> None:
    entry = {"name": "plug", "host": "192.0.2.10", **device}
    with pytest.raises(ConfigError) as caught:
        validate_config(collector([entry]), "plugs.yaml")
    assert message in str(caught.value)


def test_two_devices_with_one_name_are_refused() -> None:
    devices = [{"name": "plug", "host": "192.0.2.10"}, {"name": "plug", "host": "192.0.2.11"}]
    with pytest.raises(ConfigError, match=r"device names must be unique: \['plug'\]"):
        validate_config(collector(devices), "plugs.yaml")


def test_a_password_file_open_to_others_is_refused_naming_the_key(tmp_path: Path) -> None:
    secret = tmp_path / "plug.password"
    secret.write_text("secret\n")
    secret.chmod(0o644)
    config = validate_config(
        collector([{"name": "plug", "host": "192.0.2.10", "password_file": str(secret)}]), ""
    )
    with pytest.raises(ConfigError, match=r"source\.devices\[0\]\.password_file"):
        read_passwords(config.source)  # type: ignore[arg-type]
    secret.chmod(0o600)
    assert read_passwords(config.source) == {"plug": "secret"}  # type: ignore[arg-type]


def test_a_password_credential_is_read_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shelly-plug").write_text("from systemd")
    (tmp_path / "shelly-plug").chmod(0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = validate_config(
        collector([{"name": "plug", "host": "192.0.2.10", "password_credential": "shelly-plug"}]),
        "",
    )
    assert read_passwords(config.source) == {"plug": "from systemd"}  # type: ignore[arg-type]


def test_the_shelly_example_config_is_valid() -> None:
    from homewatt_collector.config import load_config  # noqa: PLC0415
    from tests.collector.conftest import REPO  # noqa: PLC0415

    config = load_config(REPO / "collector" / "shelly.example.yaml")
    assert config.source.kind == "shelly"
    assert [d.name for d in config.source.devices] == ["kitchen-plug", "office-plug"]  # type: ignore[union-attr]


def plugs_config(tmp_path: Path, password_file: Path) -> Path:
    config = tmp_path / "plugs.yaml"
    device = {"name": "office", "host": "192.0.2.10", "password_file": str(password_file)}
    config.write_text(yaml.safe_dump(collector([device])))
    return config


def test_check_config_reads_the_device_passwords(tmp_path: Path) -> None:
    from tests.collector.test_cli import cli  # noqa: PLC0415

    secret = tmp_path / "office.password"
    secret.write_text("plug-secret\n")
    secret.chmod(0o600)
    result = cli("check-config", "-c", str(plugs_config(tmp_path, secret)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "    its passwords read" in result.stdout.splitlines()
    assert "plug-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize("broken", ["missing", "open to others"])
def test_check_config_refuses_an_unreadable_device_password_naming_its_key(
    broken: str, tmp_path: Path
) -> None:
    from tests.collector.test_cli import cli  # noqa: PLC0415

    secret = tmp_path / "office.password"
    if broken == "open to others":
        secret.write_text("plug-secret\n")
        secret.chmod(0o644)
    config = plugs_config(tmp_path, secret)
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 1, result.stdout
    assert f"{config}: source.devices[0].password_file" in result.stderr
    assert str(secret) in result.stderr
    assert "plug-secret" not in result.stdout + result.stderr


def test_check_config_no_secrets_does_not_read_the_device_passwords(tmp_path: Path) -> None:
    from tests.collector.test_cli import cli  # noqa: PLC0415

    config = plugs_config(tmp_path, tmp_path / "not-there")
    result = cli("check-config", "--no-secrets", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "    its passwords not read (--no-secrets)" in result.stdout.splitlines()


def test_outside_systemd_a_device_credential_is_the_file_of_its_name_in_the_credentials_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One credential per device (named by the operator: the contract cannot list them): the
    file the collector role and install.sh write, /etc/homewatt/credentials/<name>, is read;
    it is missing here, and the error names it."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = validate_config(
        collector([{"name": "plug", "host": "192.0.2.10", "password_credential": "shelly-xyz"}]),
        "",
    )
    with pytest.raises(ConfigError) as caught:
        read_passwords(config.source)  # type: ignore[arg-type]
    assert "source.devices[0].password_credential" in str(caught.value)
    assert "/etc/homewatt/credentials/shelly-xyz" in str(caught.value)
