"""contracts/secrets.json: one file the apps, units, examples, README and roles agree on. The
apps read the copy installed with homewatt_common; these tests read the repository's file."""

from __future__ import annotations

import json
from pathlib import Path

from homewatt_common.secrets_contract import load_contract, parse_contract
from tests.support.contracts import REPO, secrets_contract


def test_the_installed_contract_is_the_repositorys_file() -> None:
    assert load_contract() == parse_contract(secrets_contract())
    installed = Path(__import__("homewatt_common").__file__).with_name("secrets.json")
    assert json.loads(installed.read_text()) == secrets_contract()


def test_every_secret_lives_root_only_in_the_credentials_directory_under_its_own_name() -> None:
    contract = secrets_contract()
    directory = Path(contract["credentials_dir"]["path"])
    assert contract["credentials_dir"]["mode"] == "0700"
    for name, secret in contract["secrets"].items():
        assert Path(secret["path"]) == directory / name
        assert (secret["mode"], secret["owner"]) == ("0600", "root")
        assert secret["kind"] in ("token", "sas", "password", "certificate")
        for entry in secret["loaded_by"]:
            if entry.get("credential"):
                assert entry["credential"] == name, "one name per secret, credential included"


def test_no_credential_name_means_two_things_to_one_unit() -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, secret in secrets_contract()["secrets"].items():
        for entry in secret["loaded_by"]:
            if entry.get("credential"):
                key = (entry["unit"], entry["credential"])
                assert key not in seen, f"{key} names {seen.get(key)} and {name}"
                seen[key] = name


def test_the_old_layout_points_at_secrets_that_exist_and_paths_that_are_not_new() -> None:
    contract = secrets_contract()
    paths = {s["path"] for s in contract["secrets"].values()}
    for move in contract["old_layout"]["moves"]:
        assert move["new_secret"] in contract["secrets"]
        assert move["old_path"] not in paths
    current = {e["credential"] for s in contract["secrets"].values() for e in s["loaded_by"]}
    for rename in contract["old_layout"]["renamed_credentials"]:
        assert rename["new_secret"] in contract["secrets"]
        assert rename["old_credential"] not in current


def test_each_unit_the_contract_names_is_a_unit_file_of_the_repository() -> None:
    contract = secrets_contract()
    units = {e["unit"] for s in contract["secrets"].values() for e in s["loaded_by"]}
    units |= {name for name in contract["units"] if name != "description"}
    for unit in units - {"grafana container"}:
        assert (REPO / "systemd" / unit).exists(), unit


def test_the_fix_lines_are_what_a_shell_runs() -> None:
    contract = load_contract()
    assert [m.fix for m in contract.moves] == [
        f"sudo mv -n {m['old_path']} {contract.secrets[m['new_secret']].path}"
        for m in secrets_contract()["old_layout"]["moves"]
    ]
    rename = contract.renamed("homewatt-backup", "influxdb-token")
    assert rename is not None
    assert rename.fix("influxdb.token_credential", "/etc/homewatt/backup.yaml") == (
        "sudo sed -i 's/token_credential: influxdb-token$/token_credential:"
        " influxdb-operator-token/' /etc/homewatt/backup.yaml"
    )
