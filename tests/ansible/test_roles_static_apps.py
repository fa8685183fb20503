"""The collector and backup roles without a container: argument specs against defaults,
generated READMEs, preflight refusals (one clear message each), the per-instance drop-in and
the rendered configs, each config accepted by the app's own check-config --no-secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ansible import test_roles_static as static

ROLES = ["collector", "backup"]
REPO = static.REPO
LINE = {
    "name": "line1",
    "source": {
        "kind": "modbus",
        "port": "/dev/null",
        "meters": [{"name": "main", "model": "orno-we515", "device_id": 1}],
    },
}
DEMO = {"name": "demo", "source": {"kind": "demo"}}


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_name_every_default_with_the_same_value(role: str) -> None:
    static.test_argument_specs_name_every_default_with_the_same_value(role)


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_is_generated_from_argument_specs(role: str, tmp_path: Path) -> None:
    static.test_role_readme_is_generated_from_argument_specs(role, tmp_path)


def refused(role: str, tmp_path: Path, **variables: object) -> str:
    done = static.preflight(role, tmp_path, {}, **variables)
    assert done.returncode != 0, done.stdout
    return " ".join(done.stdout.split())


@pytest.mark.parametrize(
    ("instances", "words"),
    [
        ([{"name": "Main", "source": {"kind": "demo"}}],
         "collector_instances[0] needs a unique name"),
        ([DEMO, DEMO], "collector_instances[1] needs a unique name"),
        ([{"name": "x", "source": {"kind": "emporia"}}], "whose kind is one of demo, modbus"),
        ([{"name": "x", "source": {"kind": "modbus", "meters": [{}]}}], "needs port"),
        ([{**LINE, "source": {**LINE["source"], "port": "/dev/serial/by-id/usb-none"}}],
         "the serial port /dev/serial/by-id/usb-none does not exist"),
    ],
)  # fmt: skip
def test_collector_preflight_refuses_a_bad_instance_with_one_message(
    instances: list, words: str, tmp_path: Path
) -> None:
    assert words in refused("collector", tmp_path, collector_instances=instances)


def test_collector_preflight_refuses_an_incomplete_central_sink(tmp_path: Path) -> None:
    text = refused(
        "collector", tmp_path, collector_instances=[DEMO], collector_central_sink_enabled=True
    )
    assert "collector_central_sink needs url" in text


def test_collector_preflight_accepts_a_modbus_line_and_a_demo(tmp_path: Path) -> None:
    done = static.preflight("collector", tmp_path, {}, collector_instances=[LINE, DEMO])
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("site", ["Home", "a--b", "x" * 41, "cabin_2"])
def test_backup_preflight_refuses_a_site_terraform_cannot_name(site: str, tmp_path: Path) -> None:
    assert "must be 1-40 lowercase letters" in refused("backup", tmp_path, backup_site=site)


def test_backup_preflight_refuses_azure_without_an_account_url(tmp_path: Path) -> None:
    text = refused("backup", tmp_path, backup_azure_enabled=True)
    assert "backup_azure_account_url must be the storage account's blob URL" in text


def dropin(instance: dict, tmp_path: Path, **variables: object) -> str:
    return static.render(
        "collector", "dropin.conf.j2", tmp_path, __collector_instance=instance, **variables
    )


def directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_demo_instance_gets_only_its_write_token(tmp_path: Path) -> None:
    assert directives(dropin(DEMO, tmp_path)) == [
        "[Service]",
        "LoadCredential=influxdb-write-token:/etc/homewatt/credentials/influxdb-write-token",
    ]


def test_a_modbus_instance_with_a_central_sink_gets_serial_access_and_both_tokens(
    tmp_path: Path,
) -> None:
    central = {
        "name": "central", "url": "https://influx.example.org", "org": "fleet",
        "bucket": "homes", "token_credential": "influxdb-central-token",
    }  # fmt: skip
    text = dropin(
        LINE, tmp_path, collector_central_sink_enabled=True, collector_central_sink=central
    )
    assert directives(text) == [
        "[Service]",
        "SupplementaryGroups=dialout",
        "DeviceAllow=char-ttyACM rw",
        "DeviceAllow=char-ttyUSB rw",
        "LoadCredential=influxdb-write-token:/etc/homewatt/credentials/influxdb-write-token",
        "LoadCredential=influxdb-central-token:/etc/homewatt/credentials/influxdb-central-token",
    ]


def check_config(app: str, config: Path) -> subprocess.CompletedProcess[str]:
    tool = REPO / ".tools" / "venv" / "bin" / app
    argv = [str(tool), "check-config", "--no-secrets", "-c", str(config)]
    if app == "homewatt-backup":
        argv = [str(tool), "--config", str(config), "check-config", "--no-secrets"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("instance", [DEMO, LINE], ids=["demo", "modbus"])
def test_the_rendered_collector_config_passes_check_config(instance: dict, tmp_path: Path) -> None:
    text = static.render("collector", "collector.yaml.j2", tmp_path, __collector_instance=instance)
    config = tmp_path / f"{instance['name']}.yaml"
    config.write_text(text)
    assert yaml.safe_load(text)["source"] == instance["source"]
    done = check_config("homewatt-collector", config)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("azure", [False, True], ids=["local", "azure"])
def test_the_rendered_backup_config_passes_check_config(azure: bool, tmp_path: Path) -> None:
    variables = {"backup_site": "cabin-2", "backup_azure_enabled": azure}
    if azure:
        variables["backup_azure_account_url"] = "https://homewattbackups.blob.core.windows.net"
    text = static.render("backup", "backup.yaml.j2", tmp_path, **variables)
    config = tmp_path / "backup.yaml"
    config.write_text(text)
    parsed = yaml.safe_load(text)
    assert parsed["site"] == "cabin-2"
    assert ("azure" in parsed) == azure
    if azure:
        assert parsed["azure"]["container"] == "homewatt-cabin-2"
    done = check_config("homewatt-backup", config)
    assert done.returncode == 0, done.stdout + done.stderr


TENANT = "4f1c2b7e-0d39-4a8e-9c1e-5b2a7d9e3f10"
CLIENT = "0b7a1e52-9c3d-4f6e-8a21-d5c4b3a29e87"
ENTRA = {
    "backup_azure_enabled": True,
    "backup_azure_account_url": "https://homewattbackups.blob.core.windows.net",
    "backup_azure_auth": "service_principal",
    "backup_azure_tenant_id": TENANT,
    "backup_azure_client_id": CLIENT,
}


@pytest.mark.parametrize("credential", ["certificate", "secret"])
def test_a_service_principal_config_names_its_credential_and_passes_check_config(
    credential: str, tmp_path: Path
) -> None:
    variables = {**ENTRA, "backup_azure_client_credential": credential}
    text = static.render("backup", "backup.yaml.j2", tmp_path, **variables)
    azure = yaml.safe_load(text)["azure"]
    assert azure["auth"] == "service_principal"
    assert (azure["tenant_id"], azure["client_id"]) == (TENANT, CLIENT)
    assert azure[f"client_{credential}_credential"] == f"azure-client-{credential}"
    assert "sas_credential" not in azure
    config = tmp_path / "backup.yaml"
    config.write_text(text)
    done = check_config("homewatt-backup", config)
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = directives(static.render("backup", "dropin.conf.j2", tmp_path, **variables))
    assert loaded == [
        "[Service]",
        "LoadCredential=",
        "LoadCredential=influxdb-operator-token:/etc/homewatt/credentials/influxdb-operator-token",
        f"LoadCredential=azure-client-{credential}:/etc/homewatt/credentials/azure-client-{credential}",
    ]


def test_a_service_principal_without_its_ids_is_refused(tmp_path: Path) -> None:
    text = refused("backup", tmp_path, **{**ENTRA, "backup_azure_tenant_id": ""})
    assert "service_principal needs backup_azure_tenant_id and backup_azure_client_id" in text


def test_install_answers_are_archived_when_set(tmp_path: Path) -> None:
    answers = "/opt/homewatt/src/ansible/inventories/local/host_vars/localhost/install.yml"
    text = static.render(
        "backup", "backup.yaml.j2", tmp_path, backup_config_files_install_answers=answers
    )
    files = yaml.safe_load(text)["config_files"]
    assert files == {"enabled": True, "directory": "/etc/homewatt", "install_answers": answers}
    config = tmp_path / "backup.yaml"
    config.write_text(text)
    assert check_config("homewatt-backup", config).returncode == 0
