"""The collector and backup roles without a container: argument specs against defaults,
generated READMEs, preflight refusals (one clear message each), the per-instance drop-in and
the rendered configs, each config accepted by the app's own check-config --no-secrets."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
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
PLUGS = {
    "name": "plugs",
    "source": {
        "kind": "shelly",
        "devices": [
            {"name": "kitchen", "host": "192.0.2.50", "interval_s": 5},
            {"name": "office", "host": "192.0.2.51", "password_credential": "shelly-office"},
            {"name": "garage", "host": "192.0.2.52", "password_credential": "shelly-garage"},
        ],
    },
}
TARIFF = {
    "timezone": "Europe/Warsaw",
    "currency": "PLN",
    "standing_charge_per_day": 1.25,
    "periods": [
        {"name": "peak", "price": 1.18, "days": ["mon", "tue", "wed", "thu", "fri"],
         "hours": ["07-13", "16-21"]},
        {"name": "offpeak", "price": 0.64},
    ],
    "holidays": ["2026-12-25"],
}  # fmt: skip


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
        ([{"name": "x", "source": {"kind": "zigbee"}}], "whose kind is one of demo, "),
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


def test_a_shelly_instance_loads_exactly_its_device_passwords_and_no_device(
    tmp_path: Path,
) -> None:
    assert directives(dropin(PLUGS, tmp_path)) == [
        "[Service]",
        "LoadCredential=influxdb-write-token:/etc/homewatt/credentials/influxdb-write-token",
        "LoadCredential=shelly-garage:/etc/homewatt/credentials/shelly-garage",
        "LoadCredential=shelly-office:/etc/homewatt/credentials/shelly-office",
    ]


def test_the_rendered_shelly_config_names_its_credentials_and_passes_check_config(
    tmp_path: Path,
) -> None:
    text = static.render(
        "collector", "collector.yaml.j2", tmp_path, __collector_instance=PLUGS,
        collector_credentials={"shelly-office": "never-rendered"},
    )  # fmt: skip
    assert "never-rendered" not in text
    devices = yaml.safe_load(text)["source"]["devices"]
    assert [d.get("password_credential") for d in devices] == [
        None,
        "shelly-office",
        "shelly-garage",
    ]
    config = tmp_path / "plugs.yaml"
    config.write_text(text)
    done = check_config("homewatt-collector", config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "its passwords not read (--no-secrets)" in done.stdout


def test_source_credentials_are_found_in_any_kinds_section() -> None:
    """A kind's *_credential keys anywhere in its section: Shelly's devices, an Emporia-like
    accounts list, nested mappings; each name once, sorted."""
    import importlib.util  # noqa: PLC0415

    path = static.ROLES_DIR / "collector" / "filter_plugins" / "collector_credentials.py"
    spec = importlib.util.spec_from_file_location("collector_credentials", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = module.homewatt_source_credentials
    assert found(PLUGS["source"]) == ["shelly-garage", "shelly-office"]
    accounts = {
        "kind": "cloud",
        "accounts": [{"username": "me", "password_credential": "cloud-password"}],
        "nested": {"api": {"key_credential": "cloud-key"}, "note_credential": None},
    }
    assert found(accounts) == ["cloud-key", "cloud-password"]
    assert found({"kind": "demo"}) == []


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"collector_instances": [{**PLUGS, "source": {**PLUGS["source"], "devices": [
            {"name": "x", "host": "192.0.2.1", "password_credential": "Shelly/Office"}]}}]},
         "the credential names Shelly/Office (a source's *_credential keys) must be lowercase"),
        ({"collector_credentials": {"shelly-office": ""}},
         "collector_credentials shelly-office: each credential needs its secret"),
        ({"collector_tariff": {"currency": "PLN"}},
         "collector_tariff is missing timezone, import_price or periods (one of them)"),
        ({"collector_tariff": {**TARIFF, "import_price": 1.0}},
         "collector_tariff is missing import_price or periods (one of them)"),
    ],
)  # fmt: skip
def test_collector_preflight_refuses_bad_credentials_or_an_incomplete_tariff(
    variables: dict, words: str, tmp_path: Path
) -> None:
    assert words in refused("collector", tmp_path, **variables)


def test_collector_preflight_accepts_shelly_plugs_and_a_tariff(tmp_path: Path) -> None:
    done = static.preflight(
        "collector", tmp_path, {}, collector_instances=[PLUGS], collector_tariff=TARIFF,
        collector_credentials={"shelly-office": "a", "shelly-garage": "b"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout


def cost_check(*args: str) -> subprocess.CompletedProcess[str]:
    tool = REPO / ".tools" / "venv" / "bin" / "homewatt-collector"
    argv = [str(tool), "cost", "--check", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_rendered_tariff_and_cost_config_pass_the_cost_check(tmp_path: Path) -> None:
    variables = {"collector_site": "cabin-2", "collector_tariff": TARIFF}
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text(static.render("collector", "tariff.yaml.j2", tmp_path, **variables))
    assert yaml.safe_load(tariff.read_text())["periods"][0]["hours"] == ["07-13", "16-21"]
    done = cost_check("--tariff", str(tariff))
    assert done.returncode == 0, done.stdout + done.stderr
    text = static.render(
        "collector", "cost.yaml.j2", tmp_path, **variables, collector_cost_devices=["main"]
    )
    assert yaml.safe_load(text) == {
        "site": "cabin-2",
        "tariff": "/etc/homewatt/tariff.yaml",
        "devices": ["main"],
        "influxdb": {
            "url": "http://127.0.0.1:8086",
            "database": "homewatt",
            "token_credential": "influxdb-cost-token",
        },
    }
    config = tmp_path / "cabin-2.yaml"
    config.write_text(text)
    done = cost_check("--no-secrets", "-c", str(config), "--tariff", str(tariff))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "token from /etc/homewatt/credentials/influxdb-cost-token" in done.stdout


def test_a_tariff_the_cost_check_refuses_fails_with_its_message(tmp_path: Path) -> None:
    bad = {**TARIFF, "periods": [{"name": "peak", "price": 1.0, "hours": ["07-13"]}]}
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text(static.render("collector", "tariff.yaml.j2", tmp_path, collector_tariff=bad))
    done = cost_check("--tariff", str(tariff))
    assert done.returncode == 1
    assert str(tariff) in done.stderr and "periods" in done.stderr


def test_the_readmes_collector_tariff_passes_the_cost_check(tmp_path: Path) -> None:
    """The README's `collector_tariff` example, rendered by the role, is a tariff the collector
    accepts."""
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    [example] = [yaml.safe_load(b) for b in blocks if b.startswith("collector_tariff:")]
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text(
        static.render(
            "collector", "tariff.yaml.j2", tmp_path, collector_tariff=example["collector_tariff"]
        )
    )
    done = cost_check("--tariff", str(tariff))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kinds_whose_library_is_an_extra_are_the_collectors_optional_dependencies() -> None:
    """The collector role installs `homewatt-collector[<extra>]` for the instances of a kind in
    `_collector_kind_extras`: every extra of collector/pyproject.toml is there, each for a
    source kind the collector has."""
    variables = static.load(static.ROLES_DIR / "collector" / "vars" / "main.yml")
    project = tomllib.loads((REPO / "collector" / "pyproject.toml").read_text())["project"]
    kind_extras = variables["_collector_kind_extras"]
    assert set(kind_extras.values()) == set(project["optional-dependencies"])
    schema = (REPO / "collector" / "collector-config.schema.json").read_text()
    for kind in kind_extras:
        assert f'"{kind}"' in schema, f"{kind} is not a source kind of the collector"
    assert not any("pyemvue" in d for d in project["dependencies"]), "pyemvue is an extra"


def restart_lists(tmp_path: Path, hosts: dict[str, dict]) -> dict[str, list[str]]:
    """configure.yml's task that sets `_collector_restart` (the handler's list), run by Ansible
    on one fake host per case of `hosts` (its variables: the registered results the task reads),
    in one ansible-playbook run; each host's list."""
    tasks = yaml.safe_load((static.ROLES_DIR / "collector" / "tasks" / "configure.yml").read_text())
    [task] = [t for t in tasks if "_collector_restart" in t.get("ansible.builtin.set_fact", {})]
    role_vars = static.load(static.ROLES_DIR / "collector" / "vars" / "main.yml")
    out = tmp_path / "restart"
    out.mkdir()
    write = {
        "name": "The list is written",
        "ansible.builtin.copy": {
            "content": "{{ _collector_restart | to_json }}",
            "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
        },
    }
    playbook = tmp_path / "restart.yml"
    play = {
        "name": "Restart list",
        "hosts": "all",
        "gather_facts": False,
        "vars": {"_collector_upgraded": role_vars["_collector_upgraded"]},
        "tasks": [task, write],
    }
    playbook.write_text(yaml.safe_dump([play]))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    env = static.ansible_env(
        ANSIBLE_FILTER_PLUGINS=str(static.ROLES_DIR / "collector" / "filter_plugins")
    )
    done = static.run(
        static.tool("ansible-playbook"), "-i", str(inventory), "-c", "local", str(playbook),
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return {host: json.loads((out / f"{host}.json").read_text()) for host in hosts}


def test_an_upgrade_restarts_every_instance_an_unchanged_run_none(tmp_path: Path) -> None:
    """New apps (pip reinstalled them), a dependency at a new version (pip replaced it) or a new
    unit template restart every instance, which would otherwise keep running the old code and
    settings, and so does such a restart left pending by an earlier run that failed before its
    handler (its file still there), even under --tags collector_configure; packages only
    added (an extra for a new instance) do not; otherwise only the
    instance whose config changed restarts, none on an unchanged run; under --tags
    collector_configure (install.yml not run: its results undefined) the configs alone decide.
    pip's lines as pip 24 prints them (its req_uninstall logs "Successfully uninstalled")."""
    instances = [DEMO, LINE, PLUGS]

    def case(config_changed: str | None = None, **registered: object) -> dict:
        """A host whose `config_changed` instance's config changed, with the `registered`
        results of install.yml's tasks (none: install.yml did not run) and no restart pending
        from an earlier run unless `__collector_restart_pending` says so."""
        configs = [
            {"changed": i["name"] == config_changed, "__collector_instance": i} for i in instances
        ]
        return {
            "collector_instances": instances,
            "collector_credentials": {},
            "_collector_source_credentials": [],
            "__collector_configs": {"results": configs},
            "__collector_dropins": {"results": [{**c, "changed": False} for c in configs]},
            "__collector_credentials_written": {"results": []},
            **registered,
        }

    unchanged = {"changed": False}
    skip = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
    skipped = {**skip, "results": [{**skip, "item": "dependencies"}]}
    current = "Requirement already satisfied: pydantic==2.12.5 in /opt/homewatt/venv/lib"

    def pip(apps: str | None, dependencies: str) -> dict:
        results = [{"item": "dependencies", "changed": "Successfully installed" in dependencies,
                    "stdout": dependencies}]  # fmt: skip
        if apps is not None:
            results.insert(0, {"item": "apps", "changed": True, "stdout": apps})
        return {"changed": any(r["changed"] for r in results), "results": results}

    reinstalled = pip(
        "  Attempting uninstall: homewatt-collector\n"
        "    Found existing installation: homewatt-collector 0.1.0\n"
        "    Uninstalling homewatt-collector-0.1.0:\n"
        "      Successfully uninstalled homewatt-collector-0.1.0\n"
        "Successfully installed homewatt-collector-0.1.0 homewatt-common-0.1.0",
        current,
    )
    upgraded_dependency = pip(
        None,
        "  Attempting uninstall: tenacity\n"
        "    Found existing installation: tenacity 9.0.0\n"
        "    Uninstalling tenacity-9.0.0:\n"
        "      Successfully uninstalled tenacity-9.0.0\n"
        "Successfully installed tenacity-9.1.2",
    )
    extra_added = pip(None, "Successfully installed boto3-1.40.0 pyemvue-0.18.9")
    lists = restart_lists(
        tmp_path,
        {
            "apps-reinstalled": case(
                __collector_pip=reinstalled, __collector_unit_template=unchanged
            ),
            "dependency-upgraded": case(
                __collector_pip=upgraded_dependency, __collector_unit_template=unchanged
            ),
            "extra-added": case(
                "plugs", __collector_pip=extra_added, __collector_unit_template=unchanged
            ),
            "unit-template-changed": case(
                __collector_pip=skipped, __collector_unit_template={"changed": True}
            ),
            "one-config-changed": case(
                "line1", __collector_pip=skipped, __collector_unit_template=unchanged
            ),
            "unchanged": case(__collector_pip=skipped, __collector_unit_template=unchanged),
            "configure-tag-only": case("plugs"),
            # an earlier run upgraded and failed before its handler: nothing to install now
            "restart-pending": case(
                __collector_pip=skipped,
                __collector_unit_template=unchanged,
                __collector_restart_pending={"stat": {"exists": True}},
            ),
            "restart-pending-configure-tag-only": case(
                __collector_restart_pending={"stat": {"exists": True}}
            ),
            "no-restart-pending": case(
                __collector_pip=skipped,
                __collector_unit_template=unchanged,
                __collector_restart_pending={"stat": {"exists": False}},
            ),
        },
    )
    assert lists == {
        "apps-reinstalled": ["demo", "line1", "plugs"],
        "dependency-upgraded": ["demo", "line1", "plugs"],
        "extra-added": ["plugs"],
        "unit-template-changed": ["demo", "line1", "plugs"],
        "one-config-changed": ["line1"],
        "unchanged": [],
        "configure-tag-only": ["plugs"],
        "restart-pending": ["demo", "line1", "plugs"],
        "restart-pending-configure-tag-only": ["demo", "line1", "plugs"],
        "no-restart-pending": [],
    }


def test_the_pending_restart_is_done_only_once_every_instance_was_restarted(
    tmp_path: Path,
) -> None:
    """The handler that removes the pending-restart file (after the restarts), run by Ansible
    on one fake host per case: removed when the restart list held every instance; kept when it
    held some (cannot happen with the file there, but must not lose it) or was never set (a run
    under --tags collector_install, which restarts nothing)."""
    handlers_file = static.ROLES_DIR / "collector" / "handlers" / "main.yml"
    handlers = yaml.safe_load(handlers_file.read_text())
    [forget] = [h for h in handlers if h.get("listen") == "Restart homewatt-collector@<name>"]
    instances = [DEMO, LINE, PLUGS]
    cases = {
        "all-restarted": ["demo", "line1", "plugs"],
        "some-restarted": ["line1"],
        "list-not-set": None,
    }
    hosts = {}
    for name, restarted in cases.items():
        pending = tmp_path / f"{name}.pending"
        pending.write_text("pending\n")
        hosts[name] = {"collector_instances": instances, "_collector_restart_pending": str(pending)}
        if restarted is not None:
            hosts[name]["_collector_restart"] = restarted
    task = {k: v for k, v in forget.items() if k != "listen"}
    play = {"name": "Forget", "hosts": "all", "gather_facts": False, "tasks": [task]}
    playbook = tmp_path / "forget.yml"
    playbook.write_text(yaml.safe_dump([play]))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    done = static.run(
        static.tool("ansible-playbook"), "-i", str(inventory), "-c", "local", str(playbook),
        env=static.ansible_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    left = {name: (tmp_path / f"{name}.pending").exists() for name in cases}
    assert left == {"all-restarted": False, "some-restarted": True, "list-not-set": True}


def test_the_backup_config_holds_the_long_term_bucket_and_passes_check_config(
    tmp_path: Path,
) -> None:
    text = static.render("backup", "backup.yaml.j2", tmp_path)
    influxdb = yaml.safe_load(text)["influxdb"]
    # the influxdb role's long-term bucket (contracts/influxdb-grafana.json), beside the raw one
    contract = json.loads((REPO / "contracts" / "influxdb-grafana.json").read_text())
    longterm = contract["influxql"]["retention_policies"]["longterm"]["bucket"]
    assert (influxdb["bucket"], influxdb["extra_buckets"]) == ("homewatt", [longterm])
    config = tmp_path / "backup.yaml"
    config.write_text(text)
    done = check_config("homewatt-backup", config)
    assert done.returncode == 0, done.stdout + done.stderr
    none = static.render("backup", "backup.yaml.j2", tmp_path, backup_influxdb_extra_buckets=[])
    config.write_text(none)
    assert yaml.safe_load(none)["influxdb"]["extra_buckets"] == []
    assert check_config("homewatt-backup", config).returncode == 0
    twice = static.render(
        "backup", "backup.yaml.j2", tmp_path, backup_influxdb_extra_buckets=[longterm, longterm]
    )
    config.write_text(twice)
    done = check_config("homewatt-backup", config)
    assert done.returncode == 1
    assert f"influxdb.extra_buckets: '{longterm}' given more than once" in done.stderr
