"""The service and timer units: systemd's own verifier and security analyzer, and the
directives issue 5 asks for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.contracts import config_key_values, secrets_contract, unit_credentials
from tests.support.systemd_units import exec_paths, security_exposure, verify_unit

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICE = UNITS / "homewatt-backup.service"
TIMER = UNITS / "homewatt-backup.timer"


def directives(path: Path) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key, []).append(value)
    return out


def test_backup_units_pass_systemd_analyze_verify_without_any_output() -> None:
    verify_unit(SERVICE, TIMER)


def test_verify_unit_reports_unknown_keys(tmp_path: Path) -> None:
    broken = tmp_path / "homewatt-backup.service"
    broken.write_text(SERVICE.read_text().replace("Nice=19", "Nice=19\nNiceness=19"))
    with pytest.raises(AssertionError, match="Unknown key 'Niceness'"):
        verify_unit(broken)


def test_backup_service_exposure_is_at_most_2() -> None:
    assert security_exposure(SERVICE) <= 2.0


def test_the_timer_runs_hourly_catches_up_and_spreads_a_little() -> None:
    timer = directives(TIMER)["Timer"]
    assert timer["OnCalendar"] == ["hourly"]
    assert timer["Persistent"] == ["true"]
    delay = timer["RandomizedDelaySec"][0]
    assert re.fullmatch(r"\d+min", delay) and int(delay[:-3]) <= 10
    assert directives(TIMER)["Install"]["WantedBy"] == ["timers.target"]


def test_the_service_is_a_low_priority_oneshot_of_a_dedicated_user_with_credentials() -> None:
    service = directives(SERVICE)["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["DynamicUser"] == ["yes"] and service["StateDirectory"] == ["homewatt-backup"]
    assert service["Nice"] == ["19"] and service["IOSchedulingClass"] == ["idle"]
    assert set(service["LoadCredential"]) == unit_credentials("homewatt-backup.service")
    assert "Environment" not in service  # secrets never in the environment
    assert "User" not in service and "SupplementaryGroups" not in service  # no docker group
    assert exec_paths(SERVICE.read_text()) == ["/usr/local/bin/homewatt-backup"]
    assert service["ExecStart"][0].endswith(" run")


def test_the_sandboxing_block_is_alphabetised_and_each_directive_commented() -> None:
    text = SERVICE.read_text()
    block = text.split("# Sandboxing (alphabetical).")[1].splitlines()[1:]
    block = [line for line in block if line]
    keys = [line.split("=")[0] for line in block if line and not line.startswith("#")]
    assert keys == sorted(keys)
    for key in (
        "CapabilityBoundingSet",
        "MemoryMax",
        "NoNewPrivileges",
        "PrivateTmp",
        "ProtectHome",
        "ProtectSystem",
        "RestrictAddressFamilies",
        "SystemCallFilter",
    ):
        assert key in keys
    assert block[0].startswith("#")  # a comment leads the block
    comments = sum(1 for line in block if line.startswith("#"))
    assert comments >= 15


def test_the_example_config_names_the_credentials_the_unit_loads() -> None:
    example = yaml.safe_load((UNITS.parent / "backup" / "backup.example.yaml").read_text())
    keys = config_key_values("homewatt-backup")
    assert example["influxdb"]["token_credential"] in keys["influxdb.token_credential"]
    assert example["azure"]["sas_credential"] in keys["azure.sas_credential"]
    loaded = {c.split(":")[0] for c in directives(SERVICE)["Service"]["LoadCredential"]}
    assert {example["influxdb"]["token_credential"], example["azure"]["sas_credential"]} <= loaded


def test_the_service_runs_the_config_and_state_directory_the_contract_names() -> None:
    service = directives(SERVICE)["Service"]
    spec = secrets_contract()["units"]["homewatt-backup.service"]
    assert service["ExecStart"] == [f"/usr/local/bin/homewatt-backup --config {spec['config']} run"]
    assert f"/var/lib/{service['StateDirectory'][0]}" == spec["state_directory"]


def test_the_service_pulls_in_and_waits_for_time_sync() -> None:
    """Wants= as well as After=: ordering alone does not start time-sync.target's waiters."""
    unit = directives(SERVICE)["Unit"]
    assert "time-sync.target" in " ".join(unit["Wants"]).split()
    assert "time-sync.target" in " ".join(unit["After"]).split()
