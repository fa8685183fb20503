"""The collector's systemd unit: valid for systemd, sandboxed, wired to the app's conventions.

Checked with systemd's own tools (`systemd-analyze verify` and `security --offline`); the unit
is not booted under a systemd PID 1 here. The notify protocol it relies on (READY, WATCHDOG,
STOPPING) is exercised against a real socket in test_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.collector.conftest import REPO
from tests.support.contracts import config_key_values, secrets_contract, unit_credentials
from tests.support.systemd_units import security_exposure, verify_unit

UNIT = REPO / "systemd" / "homewatt-collector@.service"


def directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_accepts_the_unit_without_a_single_warning() -> None:
    verify_unit(UNIT)


def test_the_units_exposure_is_at_most_2() -> None:
    assert security_exposure(UNIT) <= 2.0


def test_the_service_notifies_systemd_and_is_watched() -> None:
    unit = directives(UNIT)
    assert unit["Type"] == ["notify"]
    assert unit["WatchdogSec"] == ["30s"]
    assert unit["Restart"] == ["on-failure"]
    assert "time-sync.target" in unit["After"][0]


def test_serial_access_is_by_device_allow_list_not_private_devices() -> None:
    unit = directives(UNIT)
    assert unit["DevicePolicy"] == ["closed"]
    assert "char-ttyUSB rw" in unit["DeviceAllow"]
    assert "PrivateDevices" not in unit
    assert unit["SupplementaryGroups"] == ["dialout"]


def test_each_instance_has_its_own_config_user_and_outbox() -> None:
    unit = directives(UNIT)
    assert "--config /etc/homewatt/collector/%i.yaml" in unit["ExecStart"][0]
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["homewatt-collector/%i"]


def test_the_token_arrives_as_the_credential_the_contract_and_the_example_config_name() -> None:
    loaded = set(directives(UNIT)["LoadCredential"])
    assert loaded == unit_credentials("homewatt-collector@.service")
    example = yaml.safe_load((REPO / "collector" / "collector.example.yaml").read_text())
    names = {sink["token_credential"] for sink in example["sinks"]}
    assert names <= config_key_values("homewatt-collector")["sinks[].token_credential"]
    assert names <= {credential.split(":")[0] for credential in loaded}
    assert "Environment=" not in UNIT.read_text().replace("Environment=PYTHONUNBUFFERED=1", "")


def test_the_unit_runs_the_config_and_state_directory_the_contract_names() -> None:
    unit = directives(UNIT)
    spec = secrets_contract()["units"]["homewatt-collector@.service"]
    assert f"--config {spec['config']} " in unit["ExecStart"][0] + " "
    assert f"/var/lib/{unit['StateDirectory'][0]}" == spec["state_directory"]


def test_the_sandboxing_block_is_alphabetised() -> None:
    text = UNIT.read_text()
    block = text[text.index("# Sandboxing") :]
    keys = [
        ln.split("=", 1)[0] for ln in block.splitlines() if "=" in ln and not ln.startswith("#")
    ]
    assert keys == sorted(keys)
