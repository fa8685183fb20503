"""Configuration: the contract with terraform, clear errors naming file and key, and secrets
only from private files or systemd credentials."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from homewatt_backup.config import AzureConfig, InfluxDB2Config, load_settings
from homewatt_backup.errors import ConfigError, redact
from homewatt_backup.store import SAS_PERMISSIONS
from tests.backup.conftest import write_secret

REPO = Path(__file__).resolve().parents[2]
CONTRACT = json.loads((REPO / "contracts" / "backup-azure.json").read_text())
EXAMPLE = REPO / "backup" / "backup.example.yaml"
CLI = str(Path(sys.executable).with_name("homewatt-backup"))


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of `path` that (stripped) starts with `text`."""
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip().startswith(text))


def config_file(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "backup.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def base_config(**azure: object) -> dict[str, object]:
    data: dict[str, object] = {
        "site": "home",
        "influxdb": {
            "engine": "influxdb2",
            "org": "o",
            "bucket": "b",
            "token_credential": "influxdb-operator-token",
        },
    }
    if azure:
        data["azure"] = azure
    return data


def test_azure_section_accepts_exactly_the_contract_keys_plus_the_credential_sources() -> None:
    contract_keys = set(CONTRACT["backup_config_keys"])
    sas_keys = {
        CONTRACT["terraform_outputs"]["backup_sas_tokens"]["backup_config_key"].split(".")[1],
        "sas_credential",
    }
    principal_keys = set(CONTRACT["service_principal_keys"]) | {
        f"client_{what}_{source}"
        for what in ("certificate", "secret")
        for source in ("file", "credential")
    }
    assert set(AzureConfig.model_fields) == contract_keys | sas_keys | principal_keys | {
        "authority_host"
    }
    assert CONTRACT["terraform_outputs"]["backup_azure_config"]["backup_config_section"] == "azure"


def test_the_auth_values_are_the_contracts_auth_modes() -> None:
    annotation = AzureConfig.model_fields["auth"].annotation
    assert set(typing.get_args(annotation)) == set(CONTRACT["auth_modes"].values())
    assert AzureConfig.model_fields["auth"].default == CONTRACT["auth_modes"]["sas"]


def test_the_sas_permissions_checked_per_retention_mode_are_the_contracts() -> None:
    assert CONTRACT["sas_permissions"] == SAS_PERMISSIONS
    assert set(SAS_PERMISSIONS) == set(CONTRACT["retention_values"])


@pytest.mark.parametrize("retention", CONTRACT["retention_values"])
def test_a_config_built_from_the_contracts_terraform_output_loads(
    tmp_path: Path, retention: str
) -> None:
    # what `terraform output backup_azure_config` gives for one site, plus the SAS file
    output = {
        "account_url": "https://homewattbackups.blob.core.windows.net",
        "container": "homewatt-home",
        "retention": retention,
    }
    output["auth"] = CONTRACT["auth_modes"]["sas"]
    assert set(output) == set(CONTRACT["backup_config_keys"])
    creds = tmp_path / "creds"
    write_secret(creds / "influxdb-operator-token", "t0ken")
    sas_file = write_secret(
        tmp_path / "azure-sas",
        f"sv=2026-10-06&sr=c&sp={CONTRACT['sas_permissions'][retention]}"
        "&se=2099-01-01T00%3A00%3A00Z&sig=abc",
    )
    path = config_file(tmp_path, base_config(**output, sas_file=str(sas_file)))
    settings = load_settings(path, creds, tmp_path / "state")
    assert settings.config.azure is not None
    assert settings.config.azure.retention == retention
    assert settings.secrets.sas is not None and settings.secrets.sas.startswith("sv=")


def test_an_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        base_config(
            account_url="https://a.blob.core.windows.net",
            container="home",
            retention="rotation",
            sas_file="/x",
            account_key="secret!",
        ),
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path)
    message = str(caught.value)
    line = line_of(path, "account_key:")
    assert message == (
        f"{path}:{line}: azure.account_key: unknown key (a typo? see backup.example.yaml)"
    )
    assert "secret!" not in message


INFLUXDB1 = {"engine": "influxdb1", "database": "homewatt", "password_credential": "p"}
AZURE_SAS = {
    "account_url": "https://a.blob.core.windows.net",
    "container": "home",
    "retention": "rotation",
    "sas_credential": "azure-sas",
}
AZURE_PRINCIPAL = {
    **{k: v for k, v in AZURE_SAS.items() if k != "sas_credential"},
    "auth": "service_principal",
    "tenant_id": "contoso.onmicrosoft.com",
    "client_id": "00000000-0000-0000-0000-000000000000",
    "client_certificate_credential": "azure-client-certificate",
}


@pytest.mark.parametrize(
    ("section", "base", "key"),
    [
        ("influxdb", None, "token"),
        ("influxdb", INFLUXDB1, "password"),
        ("azure", AZURE_SAS, "sas"),
        ("azure", AZURE_PRINCIPAL, "client_secret"),
        ("azure", AZURE_PRINCIPAL, "client_certificate"),
    ],
)
def test_a_secret_written_in_the_config_is_refused_naming_where_it_goes_never_the_value(
    tmp_path: Path, section: str, base: dict[str, object] | None, key: str
) -> None:
    """Every secret the backup reads, written inline: the apps' shared message (a file or a
    credential) at the section's mapping, as the collector gives it, not "unknown key"."""
    data = base_config()
    data[section] = {**(base or typing.cast(dict[str, object], data[section])), key: "s3cr3t!"}
    path = config_file(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path)
    message = str(caught.value)
    first = line_of(path, section + ":") + 1  # where the section's mapping starts
    assert message == (
        f"{path}:{first}: {section}: {key} must not be written in the config "
        f"file: put the secret in a file named by {key}_file (mode 0600) or in a systemd "
        f"credential named by {key}_credential (LoadCredential=)"
    )
    assert "s3cr3t!" not in message


def test_check_config_prints_the_inline_secret_message_whole_and_never_the_value(
    tmp_path: Path,
) -> None:
    """The CLI's error lines pass through the redaction of tokens: it must hide a token's value,
    not the word after "token" in a message ("token must not be written" came out as "token
    <redacted> not be written")."""
    data = base_config()
    typing.cast(dict[str, object], data["influxdb"])["token"] = "dGhpcy1pcy1hLXRva2VuLXZhbHVl=="
    path = config_file(tmp_path, data)
    done = subprocess.run(
        [CLI, "--config", str(path), "check-config", "--no-secrets"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "influxdb: token must not be written in the config file" in done.stderr, done.stderr
    assert "dGhpcy1pcy1hLXRva2VuLXZhbHVl" not in done.stdout + done.stderr
    assert redact("Authorization: Token dGhpcy1pcy1hLXRva2VuLXZhbHVl==") == (
        "Authorization: Token <redacted>"
    )
    assert redact("invalid token=dGhpcy1pcy1hLXRva2VuLXZhbHVl") == "invalid token=<redacted>"


def test_wrong_values_name_the_key_and_the_problem(tmp_path: Path) -> None:
    data = base_config(
        account_url="http://example.com",
        container="Home_1",
        retention="sometimes",
        sas_credential="azure-sas",
    )
    data["site"] = "My Site"
    path = config_file(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    for line, key in zip(
        lines, ("site", "azure.account_url", "azure.container", "azure.retention"), strict=True
    ):
        leaf = key.rsplit(".", 1)[-1]
        assert line.startswith(f"{path}:{line_of(path, leaf + ':')}: {key}: "), line
    assert "https" in lines[1]
    assert "'sometimes'" in lines[3]


def test_an_unknown_engine_is_named(tmp_path: Path) -> None:
    data = base_config()
    data["influxdb"] = {"engine": "influxdb3", "bucket": "b"}
    path = config_file(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path)
    assert str(caught.value) == (
        f"{path}:{line_of(path, 'engine:')}: influxdb.engine: must be one of 'influxdb2',"
        " 'influxdb1', not 'influxdb3'"
    )


def test_a_missing_token_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    path = config_file(tmp_path, base_config())
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path / "empty-creds")
    assert str(caught.value) == (
        f"{path}:{line_of(path, 'token_credential:')}: influxdb.token_credential: "
        f"{tmp_path / 'empty-creds' / 'influxdb-operator-token'}: does not exist"
    )


def test_outside_systemd_credentials_and_state_are_the_units_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = config_file(
        tmp_path,
        base_config(
            account_url="https://a.blob.core.windows.net",
            container="homewatt-home",
            retention="lifecycle",
            sas_credential="azure-sas",
        ),
    )
    settings = load_settings(path, None, read_secrets=False)
    assert {k: v.path for k, v in settings.secret_locations.items()} == {
        "token": Path("/etc/homewatt/credentials/influxdb-operator-token"),
        "sas": Path("/etc/homewatt/credentials/azure-sas"),
    }
    assert settings.assumed == (
        "influxdb.token_credential: outside systemd: /etc/homewatt/credentials/"
        "influxdb-operator-token, the file the unit hands over as credential"
        " influxdb-operator-token",
        "azure.sas_credential: outside systemd: /etc/homewatt/credentials/azure-sas,"
        " the file the unit hands over as credential azure-sas",
        "state directory: outside systemd: /var/lib/homewatt-backup, the unit's StateDirectory=",
    )
    assert settings.state_dir == Path("/var/lib/homewatt-backup")


def test_a_credential_no_unit_loads_needs_a_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    data = base_config()
    data["influxdb"]["token_credential"] = "my-token"  # type: ignore[index]
    path = config_file(tmp_path, data)
    with pytest.raises(ConfigError, match=r"credential 'my-token' needs systemd's LoadCredential="):
        load_settings(path, None)


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    token = write_secret(tmp_path / "token", "t0ken")
    token.chmod(0o644)
    data = base_config()
    data["influxdb"] = {"engine": "influxdb2", "org": "o", "bucket": "b", "token_file": str(token)}
    path = config_file(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, None)
    assert str(caught.value) == (
        f"{path}:{line_of(path, 'token_file:')}: influxdb.token_file: {token}: is readable by"
        f" group or others (mode 0644): run: sudo chmod 600 {token}"
    )


def test_a_secret_given_twice_or_not_at_all_is_refused(tmp_path: Path) -> None:
    data = base_config(
        account_url="https://a.blob.core.windows.net",
        container="home",
        retention="lifecycle",
        sas_file="/x",
        sas_credential="azure-sas",
    )
    with pytest.raises(ConfigError, match=r":\d+: azure: give either sas_file or sas_credential"):
        load_settings(config_file(tmp_path, data), tmp_path)
    data = base_config(
        account_url="https://a.blob.core.windows.net", container="home", retention="lifecycle"
    )
    with pytest.raises(ConfigError, match=r":\d+: azure: sas_file or sas_credential is required"):
        load_settings(config_file(tmp_path, data), tmp_path)


def test_invalid_yaml_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "backup.yaml"
    path.write_text("site: home\ninfluxdb: [\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path)
    assert str(caught.value) == (
        f"{path}:3:1: not valid YAML: expected the node content, but found '<stream end>'"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "site: home\nsite: cabin\n",
            "2: site: duplicate key (first on line 1)",
        ),
        (
            "site: home\ninfluxdb: {engine: influxdb2, org: o, bucket: b, token_file: /t,"
            " timeout_s: .inf}\n",
            "2: influxdb.timeout_s: Input should be a finite number, not .inf",
        ),
        (
            "site: home\ninfluxdb: {engine: influxdb2, org: o, bucket: b, token_file: /t,"
            " timeout_s: true}\n",
            "2: influxdb.timeout_s: Input should be a valid number, not true",
        ),
        (
            "site: home\ninfluxdb: {engine: influxdb1, database: d}\nkeep:\n  full: .nan\n",
            "4: keep.full: Input should be a valid integer, not .nan",
        ),
    ],
)
def test_values_yaml_would_take_loosely_are_refused_naming_the_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "backup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path)
    assert str(caught.value) == f"{path}:{expected}"


def test_the_committed_example_config_is_valid(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    write_secret(creds / "influxdb-operator-token", "t0ken")
    write_secret(creds / "azure-sas", "sp=rcwl&se=2099-01-01&sig=x")
    settings = load_settings(EXAMPLE, creds, tmp_path)
    assert settings.config.site == "home"
    # the container is what `terraform output backup_azure_config` gives for that site
    assert settings.config.azure is not None
    assert settings.config.azure.container == f"homewatt-{settings.config.site}"
    assert settings.config.keep.full == 10
    # the commented-out InfluxDB 1.x section is valid too
    text = EXAMPLE.read_text()
    block = text.split("# ... or InfluxDB 1.x")[1].split("\nschedule:")[0]
    v1 = "\n".join(
        line.replace("# ", "", 1)
        for line in block.splitlines()[1:]
        if line.startswith("# ") and not line.startswith("#   #")
    )
    data = yaml.safe_load(text)
    data["influxdb"] = yaml.safe_load(v1)["influxdb"]
    path = config_file(tmp_path, data)
    assert load_settings(path, creds, tmp_path).config.engine.value == "influxdb1"


@pytest.mark.parametrize("site", CONTRACT["site_examples"]["valid"])
def test_site_names_terraform_accepts_load(tmp_path: Path, site: str) -> None:
    data = base_config()
    data["site"] = site
    creds = tmp_path / "creds"
    write_secret(creds / "influxdb-operator-token", "t0ken")
    assert load_settings(config_file(tmp_path, data), creds).config.site == site


@pytest.mark.parametrize("site", CONTRACT["site_examples"]["invalid"])
def test_site_names_terraform_refuses_are_refused_with_the_rule(tmp_path: Path, site: str) -> None:
    data = base_config()
    data["site"] = site
    path = config_file(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, tmp_path)
    assert str(caught.value) == (
        f"{path}:{line_of(path, 'site:')}: site: must be 1-40 lowercase letters and digits in"
        " groups joined by single hyphens (e.g. home, cabin-2): the site's key in Terraform's"
        " `sites`"
    )


# --- azure.auth: service_principal (Entra ID; tests/backup/test_entra_azurite.py signs in) ---

TENANT = "4f1c2b7e-0d39-4a8e-9c1e-5b2a7d9e3f10"
CLIENT = "0b7a1e52-9c3d-4f6e-8a21-d5c4b3a29e87"
PRINCIPAL = {
    "account_url": "https://homewattbackups.blob.core.windows.net",
    "container": "homewatt-home",
    "retention": "lifecycle",
    "auth": "service_principal",
    "tenant_id": TENANT,
    "client_id": CLIENT,
}


def test_a_service_principal_config_reads_its_certificate_from_the_credential_it_names(
    tmp_path: Path,
) -> None:
    creds = tmp_path / "creds"
    write_secret(creds / "influxdb-operator-token", "t0ken")
    pem = (
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
    )
    write_secret(creds / "azure-client-certificate", pem + "\n")
    path = config_file(
        tmp_path,
        base_config(**PRINCIPAL, client_certificate_credential="azure-client-certificate"),
    )
    settings = load_settings(path, creds, tmp_path / "state")
    assert settings.secrets.client_certificate == pem + "\n"
    assert settings.secrets.sas is None and settings.secrets.client_secret is None
    assert settings.config.azure is not None
    assert settings.config.azure.credential_source == (
        f"the service principal {CLIENT} of tenant {TENANT} (the systemd credential"
        " 'azure-client-certificate', azure.client_certificate_credential)"
    )


def test_a_service_principal_config_reads_a_client_secret_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    write_secret(creds / "influxdb-operator-token", "t0ken")
    secret = write_secret(tmp_path / "client-secret", "Ab8Q~x.y_z-1\n")
    path = config_file(tmp_path, base_config(**PRINCIPAL, client_secret_file=str(secret)))
    assert load_settings(path, creds, tmp_path / "state").secrets.client_secret == "Ab8Q~x.y_z-1"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "needs exactly one of client_certificate_credential"),
        (
            {"client_secret_credential": "a", "client_certificate_credential": "b"},
            "(given: client_certificate_credential, client_secret_credential)",
        ),
        ({"tenant_id": None, "client_secret_credential": "a"}, "needs tenant_id"),
        ({"client_id": "not-a-guid", "client_secret_credential": "a"}, "client_id"),
        (
            {"sas_credential": "azure-sas", "client_secret_credential": "a"},
            "drop the sas_* key",
        ),
        ({"auth": "sas", "sas_credential": "azure-sas"}, "tenant_id, client_id only apply"),
        (
            {"client_secret_credential": "a", "authority_host": "http://login.example"},
            "must be an https:// host",
        ),
        ({"auth": "managed_identity"}, "'sas' or 'service_principal'"),
    ],
)
def test_a_service_principal_config_with_a_missing_or_extra_key_is_one_clear_error(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    azure = {k: v for k, v in {**PRINCIPAL, **change}.items() if v is not None}
    path = config_file(tmp_path, base_config(**azure))
    with pytest.raises(ConfigError) as info:
        load_settings(path, tmp_path, tmp_path / "state", read_secrets=False)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_the_examples_commented_service_principal_keys_load(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    block = text.split("# How the site signs in")[1]
    keys = yaml.safe_load(
        "\n".join(
            line.strip()[2:]
            for line in block.splitlines()
            if line.strip().startswith("# ")
            and not line.strip().startswith("# #")
            and re.match(r"^[a-z_]+: ", line.strip()[2:])
        )
    )
    assert set(keys) == {
        "auth",
        "tenant_id",
        "client_id",
        "client_certificate_credential",
        "authority_host",
    }
    data = yaml.safe_load(text)
    del data["azure"]["sas_credential"]
    data["azure"].update(keys)
    creds = tmp_path / "creds"
    write_secret(creds / "influxdb-operator-token", "t0ken")
    settings = load_settings(config_file(tmp_path, data), creds, tmp_path, read_secrets=False)
    assert settings.config.azure is not None
    assert settings.config.azure.auth == "service_principal"
    assert settings.secret_locations["certificate"].path == creds / "azure-client-certificate"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["lt", "lt"], "extra_buckets: 'lt' given more than once"),
        (
            ["lt", "b"],
            "extra_buckets: 'b' is the bucket itself (influxdb.bucket): list only the other"
            " buckets",
        ),
        ([""], "extra_buckets[0]: String should have at least 1 character"),
    ],
    ids=["twice", "the-bucket", "empty"],
)
def test_extra_buckets_are_each_named_once_and_never_the_bucket(
    tmp_path: Path, extra: list[str], problem: str
) -> None:
    data = base_config()
    influxdb = data["influxdb"]
    assert isinstance(influxdb, dict)
    influxdb["extra_buckets"] = extra
    path = config_file(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, None, read_secrets=False)
    assert str(caught.value).startswith(f"{path}:"), caught.value
    assert f": influxdb.{problem}" in str(caught.value)
    influxdb["extra_buckets"] = ["homewatt_longterm"]
    loaded = load_settings(config_file(tmp_path, data), None, read_secrets=False)
    assert isinstance(loaded.config.influxdb, InfluxDB2Config)
    assert loaded.config.influxdb.extra_buckets == ["homewatt_longterm"]
