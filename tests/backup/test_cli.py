"""The command line: --version, check-config, and domain errors as one line with exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homewatt_backup import __version__
from homewatt_backup.cli import app
from tests.backup.conftest import make_site, write_secret
from tests.support.azurite import Azurite
from tests.support.influxdb1 import InfluxDB1

REPO = Path(__file__).resolve().parents[2]


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"homewatt-backup {__version__}"


def test_every_command_is_there_with_help() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "list", "verify", "restore", "check-config"):
        assert command in result.stdout


def test_a_missing_config_file_is_one_line_and_exit_1_from_the_installed_command(
    tmp_path: Path,
) -> None:
    script = Path(sys.executable).parent / "homewatt-backup"
    done = subprocess.run(
        [str(script), "--config", str(tmp_path / "nope.yaml"), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (
        done.stderr
        == f"homewatt-backup: error: {tmp_path / 'nope.yaml'}: the file does not exist\n"
    )
    assert done.stdout == ""


@pytest.mark.integration
def test_check_config_reports_the_site_and_the_sas(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", influxdb1, azurite, retention="lifecycle")
    result = site.cli("check-config")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"{site.config_path}: site home, influxdb1 homewatt, state in {site.state_dir}",
        f"  azure.sas_credential: {site.credentials / 'azure-sas'}",
    ]
    assert lines[2].startswith(
        f"azure: {azurite.account_url}/{site.container}, retention "
        "lifecycle, SAS permissions 'rcwl', expires "
    )
    assert lines[3:] == ["ok"]


@pytest.mark.integration
def test_check_config_refuses_a_sas_without_the_rotation_modes_delete(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(
        tmp_path / "site", influxdb1, azurite, retention="rotation", permissions="rcwl"
    )
    result = site.cli("check-config")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "homewatt-backup: error: the SAS in the systemd credential 'azure-sas' "
        "(azure.sas_credential) lacks permission(s) 'd': retention rotation needs 'rcwdl', the "
        "SAS grants 'rcwl'"
    )


@pytest.mark.integration
def test_errors_never_show_the_sas_signature(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(tmp_path / "site", influxdb1, azurite)
    sas = azurite.sas("not-this-container", "rcwdl")
    write_secret(site.credentials / "azure-sas", sas)
    result = site.cli("--verbose", "run")
    assert result.exit_code == 1
    signature = sas.split("sig=")[1].split("&")[0]
    assert signature not in result.output
    assert "Traceback" not in result.output


def test_bad_arguments_are_explained(tmp_path: Path) -> None:
    config = tmp_path / "backup.yaml"
    config.write_text("site: home\ninfluxdb: {engine: influxdb1, database: db}\n")
    runner = CliRunner()
    result = runner.invoke(
        app, ["--config", str(config), "--state-dir", str(tmp_path), "restore", "not-a-name"]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "homewatt-backup: error: NAME: 'not-a-name' is not a backup name"
        " (<site>/<kind>/<YYYYMMDDTHHMMSSZ>.tar, as `homewatt-backup list` shows)\n"
    )
    result = runner.invoke(
        app, ["--config", str(config), "--state-dir", str(tmp_path), "restore", "--at", "yesterday"]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "homewatt-backup: error: --at: 'yesterday' is not a time like 2026-11-23T18:30:00Z\n"
    )


def test_a_credentials_directory_we_may_only_search_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # systemd's /run/credentials/<unit> can be search-only for the service user; the CLI must
    # not demand to list it (found running the unit under a real systemd). Tests run as root,
    # so the missing read right is simulated at os.access.
    creds = tmp_path / "credentials"
    write_secret(creds / "influxdb-operator-token", "t0ken")
    config = tmp_path / "backup.yaml"
    config.write_text(
        "site: home\ninfluxdb: {engine: influxdb2, org: o, bucket: b, "
        "token_credential: influxdb-operator-token}\n"
    )
    real_access = os.access

    def no_read(path: object, mode: int, **kwargs: object) -> bool:
        if Path(str(path)) in (creds, tmp_path / "state") and mode & os.R_OK:
            return False
        return real_access(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", no_read)
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(config),
            "--credentials-dir",
            str(creds),
            "--state-dir",
            str(tmp_path / "state"),
            "check-config",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"{config}: site home, influxdb2 o/b, state in {tmp_path / 'state'}"
    )
    assert result.stdout.splitlines()[-1] == "ok"


def sas_site(tmp_path: Path, sas: str) -> list[str]:
    """A config with an azure section whose SAS file holds `sas`; the CLI's base arguments."""
    write_secret(tmp_path / "credentials" / "azure-sas", sas)
    config = tmp_path / "backup.yaml"
    config.write_text(
        "site: home\ninfluxdb: {engine: influxdb1, database: homewatt}\nazure:\n"
        "  account_url: https://homewattbackups.blob.core.windows.net\n"
        "  container: homewatt-home\n  retention: lifecycle\n  sas_credential: azure-sas\n"
    )
    return [
        "--config",
        str(config),
        "--credentials-dir",
        str(tmp_path / "credentials"),
        "--state-dir",
        str(tmp_path / "state"),
    ]


SAS = "sv=2026-10-06&sr=c&sp=rcwl&se=2099-01-01T00%3A00%3A00Z&sig=c2VjcmV0LXNpZw%3D%3D"


def test_check_config_refuses_a_sas_whose_parameters_do_not_parse(tmp_path: Path) -> None:
    args = sas_site(tmp_path, SAS.replace("se=2099-01-01T00%3A00%3A00Z", "se=next-year"))
    result = CliRunner().invoke(app, [*args, "check-config"])
    assert result.exit_code == 1
    assert result.stderr == (
        "homewatt-backup: error: the SAS in the systemd credential 'azure-sas'"
        " (azure.sas_credential) is not a valid SAS: se='next-year' is not a date and time (like"
        " 2026-12-31T00:00:00Z); put the one `terraform output -json backup_sas_tokens` gives"
        " there\n"
    )
    assert "ok" not in result.stdout.splitlines()


def test_a_sas_pasted_as_the_container_url_is_used_and_said_so(tmp_path: Path) -> None:
    url = f"https://homewattbackups.blob.core.windows.net/homewatt-home?{SAS}"
    args = sas_site(tmp_path, url)
    result = CliRunner().invoke(app, [*args, "check-config"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == [
        "azure: https://homewattbackups.blob.core.windows.net/homewatt-home, retention"
        " lifecycle, SAS permissions 'rcwl', expires 2099-01-01",
        "ok",
    ]
    assert result.stderr == (
        f"INFO {tmp_path / 'credentials' / 'azure-sas'} holds a whole URL: using its query"
        " string (the SAS) only; the account and container come from the config\n"
    )
    assert "c2VjcmV0" not in result.output


def test_check_config_without_secrets_reads_none_and_says_what_it_assumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "backup.yaml"
    config.write_text(
        "site: home\ninfluxdb: {engine: influxdb2, org: o, bucket: b,"
        " token_credential: influxdb-operator-token}\n"
    )
    base = ["--config", str(config), "--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(app, [*base, "check-config", "--no-secrets"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "  influxdb.token_credential: /etc/homewatt/credentials/influxdb-operator-token",
        "  assumed influxdb.token_credential: outside systemd:"
        " /etc/homewatt/credentials/influxdb-operator-token, the file the unit hands over as"
        " credential influxdb-operator-token",
        "  secrets not read (--no-secrets)",
        "azure: not configured (backups stay local)",
        "ok",
    ]
