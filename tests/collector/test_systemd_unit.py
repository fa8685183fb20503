"""The collector's systemd unit and its per-instance drop-ins: valid for systemd, sandboxed,
wired to the app's conventions.

Checked with systemd's own tools (`systemd-analyze verify` and `security --offline`); the unit
is started under a real systemd in test_unit_under_systemd.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.collector.conftest import REPO
from tests.support.contracts import config_key_values, secrets_contract, unit_credentials
from tests.support.systemd_units import security_exposure, verify_unit

UNIT = REPO / "systemd" / "homewatt-collector@.service"
DROP_INS = REPO / "systemd" / "collector-instance"


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


def test_systemd_accepts_each_instance_drop_in_and_the_exposure_stays_at_most_2(
    tmp_path: Path,
) -> None:
    """The unit with a drop-in applied, as systemd would merge it (a drop-in only adds)."""
    for drop_in in sorted(DROP_INS.glob("*.conf")):
        merged = tmp_path / drop_in.stem / "homewatt-collector@.service"
        merged.parent.mkdir()
        body = drop_in.read_text().split("[Service]\n", 1)[1]
        merged.write_text(UNIT.read_text().replace("[Install]", f"{body}\n[Install]"))
        verify_unit(merged)
        assert security_exposure(merged) <= 2.0, drop_in.name


def test_the_service_notifies_systemd_and_is_watched() -> None:
    unit = directives(UNIT)
    assert unit["Type"] == ["notify"]
    assert unit["WatchdogSec"] == ["30s"]
    assert unit["Restart"] == ["on-failure"]
    assert "time-sync.target" in unit["After"][0]
    assert "time-sync.target" not in unit["Wants"][0], "ordered after, never pulled in"


def test_serial_access_is_by_a_drop_ins_device_allow_list_not_private_devices() -> None:
    unit = directives(UNIT)
    assert unit["DevicePolicy"] == ["closed"]
    assert "PrivateDevices" not in unit
    assert "DeviceAllow" not in unit and "SupplementaryGroups" not in unit, "per instance"
    serial = directives(DROP_INS / "serial.conf")
    assert serial["DeviceAllow"] == ["char-ttyACM rw", "char-ttyUSB rw"]
    assert serial["SupplementaryGroups"] == ["dialout"]


def test_each_instance_has_its_own_config_user_and_outbox() -> None:
    unit = directives(UNIT)
    assert "--config /etc/homewatt/collector/%i.yaml" in unit["ExecStart"][0]
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["homewatt-collector/%i"]


def test_the_token_arrives_as_the_credential_the_contract_and_the_example_config_name() -> None:
    assert "LoadCredential" not in directives(UNIT), "a drop-in's: a missing file fails a start"
    assert unit_credentials("homewatt-collector@.service") == set()
    loaded = set(directives(DROP_INS / "influxdb-write-token.conf")["LoadCredential"])
    assert loaded == {
        f"{entry['credential']}:{secret['path']}"
        for secret in secrets_contract()["secrets"].values()
        for entry in secret["loaded_by"]
        if entry["unit"] == "homewatt-collector@.service"
        and "collector-instance/" in entry["where"]
    }
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
