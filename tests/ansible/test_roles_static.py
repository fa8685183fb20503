"""The roles without a container: argument specs against defaults, generated READMEs, lint,
preflight refusals with faked facts, the RS485 udev rule, the Flux text and the contracts."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import TOOLS_BIN

REPO = Path(__file__).resolve().parents[2]
ROLES_DIR = REPO / "ansible" / "roles"
ROLES = ["base", "docker", "influxdb", "grafana"]


def tool(name: str) -> str:
    path = TOOLS_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/bootstrap (the test command does)")
    return str(path)


def run(
    *argv: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_name_every_default_with_the_same_value(role: str) -> None:
    defaults = load(ROLES_DIR / role / "defaults" / "main.yml")
    options = load(ROLES_DIR / role / "meta" / "argument_specs.yml")["argument_specs"]["main"][
        "options"
    ]
    assert set(options) == set(defaults), (
        "argument_specs and defaults/main.yml name different variables"
    )
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{role}: {name}'s default differs"
        assert options[name].get("description"), f"{role}: {name} has no description"
        assert name.startswith(f"{role}_"), f"{name} lacks the role prefix {role}_"


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_is_generated_from_argument_specs(role: str, tmp_path: Path) -> None:
    copy = tmp_path / role
    shutil.copytree(ROLES_DIR / role, copy)
    done = run(tool("aar-doc"), str(copy), "markdown", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (copy / "README.md").read_text() == (ROLES_DIR / role / "README.md").read_text(), (
        f"ansible/roles/{role}/README.md is out of date: "
        f".tools/ansible/bin/aar-doc ansible/roles/{role} markdown"
    )


def test_ansible_lint_production_profile_passes_offline() -> None:
    env = {**os.environ, "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}"}
    done = run(
        tool("ansible-lint"),
        "--offline",
        "--profile",
        "production",
        "ansible/",
        "molecule/",
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_yamllint_passes_on_ansible_molecule_and_grafana() -> None:
    targets = [
        p for p in ("ansible", "molecule", ".config/molecule", "grafana") if (REPO / p).exists()
    ]
    done = run(tool("yamllint"), "--strict", *targets)
    assert done.returncode == 0, done.stdout + done.stderr


# --- preflight refusals, with facts faked through a fact cache (no container needed) ---

FACTS = {
    "ansible_architecture": "aarch64",
    "ansible_os_family": "Debian",
    "ansible_distribution": "Debian",
    "ansible_distribution_release": "bookworm",
    "ansible_virtualization_role": "host",
    "ansible_virtualization_type": "",
    "ansible_mounts": [{"mount": "/", "size_available": 20 * 1024**3}],
}


def preflight(
    role: str, tmp_path: Path, facts: dict, **variables: object
) -> subprocess.CompletedProcess[str]:
    """Run only `role`'s preflight on a fake host whose facts come from a fact cache."""
    cache = tmp_path / "facts"
    cache.mkdir(parents=True)
    # ansible-core 2.19's jsonfile cache: file s1_<host>, the facts as a JSON string in __payload__.
    (cache / "s1_pi").write_text(json.dumps({"__payload__": json.dumps({**FACTS, **facts})}))
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Preflight",
                    "hosts": "pi",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Preflight only",
                            "ansible.builtin.include_role": {
                                "name": role,
                                "tasks_from": "preflight",
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = {
        **os.environ,
        "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}",
        "ANSIBLE_ROLES_PATH": str(ROLES_DIR),
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
    }
    done = run(
        tool("ansible-playbook"), "-i", "pi,", "-c", "local", "-e", json.dumps(variables),
        str(playbook), env=env,
    )  # fmt: skip
    done.stdout += done.stderr  # Ansible 2.19 prints a failed task's message on stderr
    return done


ARMHF = (
    "InfluxDB 2 needs a 64-bit OS: install Raspberry Pi OS (64-bit), or point the collector's"
    " sinks at an existing InfluxDB"
)


@pytest.mark.parametrize("role", ["base", "influxdb"])
@pytest.mark.parametrize("arch", ["armv7l", "armv6l"])
def test_preflight_refuses_a_32bit_pi_with_one_line(role: str, arch: str, tmp_path: Path) -> None:
    done = preflight(role, tmp_path, {"ansible_architecture": arch})
    assert done.returncode != 0
    assert ARMHF in " ".join(done.stdout.split()), done.stdout


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        ({"ansible_distribution_release": "bullseye"}, "Debian bullseye on aarch64"),
        ({"ansible_os_family": "RedHat", "ansible_distribution": "Fedora"}, "Fedora bookworm"),
        ({"ansible_architecture": "riscv64"}, "on riscv64"),
    ],
)
def test_base_preflight_refuses_other_systems(facts: dict, words: str, tmp_path: Path) -> None:
    done = preflight("base", tmp_path, facts)
    assert done.returncode != 0
    assert (
        "homewatt supports Raspberry Pi OS / Debian 64-bit (arm64, amd64), bookworm or trixie"
        in " ".join(done.stdout.split())
    )
    assert words in " ".join(done.stdout.split())


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_base_preflight_accepts_bookworm_and_trixie(release: str, tmp_path: Path) -> None:
    done = preflight("base", tmp_path, {"ansible_distribution_release": release})
    assert done.returncode == 0, done.stdout + done.stderr


def test_influxdb_preflight_refuses_a_raw_bucket_larger_than_the_disk(tmp_path: Path) -> None:
    small = {"ansible_mounts": [{"mount": "/", "size_available": 200 * 1024**2}]}
    done = preflight(
        "influxdb", tmp_path, small, influxdb_data_dir=str(tmp_path / "influxdb"),
        influxdb_raw_retention_days=365, collector_instances=[DEMO_INSTANCE],
    )  # fmt: skip
    text = " ".join(done.stdout.split())
    assert done.returncode != 0
    assert "InfluxDB's raw bucket needs about" in text
    assert "/ has 200 MiB free" in text


# The example inventory's instances (ansible/inventories/example/host_vars).
DEMO_INSTANCE = {"name": "demo", "source": {"kind": "demo", "device": "demo-meter"}}
WORKSHOP_INSTANCE = {
    "name": "main",
    "source": {
        "kind": "modbus",
        "port": "/dev/homewatt-rs485-main",
        "meters": [
            {"name": "mains", "model": "sdm630", "device_id": 1},
            {"name": "heatpump", "model": "sdm120", "device_id": 2},
        ],
    },
}


def test_influxdb_disk_estimate_counts_the_points_collector_instances_write(
    tmp_path: Path,
) -> None:
    """2 GiB free holds a demo instance's 30 days (3 points a second: 1.1 GiB with the margin)
    but not the workshop's SDM630 + SDM120 (8 a second: 2.9 GiB); the refusal names the points
    a day it counted from collector_instances (the variable the collector role reads)."""
    disk = {"ansible_mounts": [{"mount": "/", "size_available": 2 * 1024**3}]}
    data_dir = str(tmp_path / "influxdb")
    demo = preflight(
        "influxdb", tmp_path / "demo", disk, influxdb_data_dir=data_dir,
        collector_instances=[DEMO_INSTANCE],
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    workshop = preflight(
        "influxdb", tmp_path / "workshop", disk, influxdb_data_dir=data_dir,
        collector_instances=[WORKSHOP_INSTANCE],
    )  # fmt: skip
    text = " ".join(workshop.stdout.split())
    assert workshop.returncode != 0
    assert f"({8 * 86400} points a day x 100 bytes x 30 days" in text, text
    # Read once every 10 s, the workshop fits again.
    slow = preflight(
        "influxdb", tmp_path / "slow", disk, influxdb_data_dir=data_dir,
        collector_instances=[{**WORKSHOP_INSTANCE, "interval_s": 10}],
    )  # fmt: skip
    assert slow.returncode == 0, slow.stdout + slow.stderr


def points_per_day_filter() -> Callable[..., int]:
    """The influxdb role's filter, loaded from its file as Ansible loads a role's plugins."""
    path = ROLES_DIR / "influxdb" / "filter_plugins" / "influxdb_disk.py"
    spec = importlib.util.spec_from_file_location("influxdb_disk", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["homewatt_points_per_day"]


METERS = REPO / "collector" / "src" / "homewatt_collector" / "meters"


@pytest.mark.parametrize(
    ("instances", "interval_s", "per_day"),
    [
        # No instance yet: sized as one point a second.
        ([], 1, 86400),
        # Demo: health + device health + one channel.
        ([DEMO_INSTANCE], 1, 3 * 86400),
        # health + SDM630 (device health + total, l1, l2, l3) + SDM120 (device health + total).
        ([WORKSHOP_INSTANCE], 1, 8 * 86400),
        # Each instance at its own interval_s, else the default one.
        ([DEMO_INSTANCE, {**WORKSHOP_INSTANCE, "interval_s": 5}], 2, 3 * 43200 + 8 * 17280),
        # An inline template (source.templates) with two channels.
        (
            [
                {
                    "name": "custom",
                    "source": {
                        "kind": "modbus",
                        "meters": [{"name": "m", "model": "mine", "device_id": 3}],
                        "templates": {
                            "mine": {
                                "registers": [
                                    {"field": "power_w", "address": 0},
                                    {"field": "power_w", "channel": "l1", "address": 2},
                                ]
                            }
                        },
                    },
                }
            ],
            1,
            (1 + 1 + 2) * 86400,
        ),
        # A model in no template counts as the most channels a meter has (4).
        (
            [{"name": "x", "source": {"kind": "modbus", "meters": [{"model": "unknown-9"}]}}],
            1,
            (1 + 1 + 4) * 86400,
        ),
    ],
)
def test_points_per_day_follow_the_collectors_points_per_cycle(
    instances: list[dict], interval_s: int, per_day: int
) -> None:
    assert points_per_day_filter()(instances, interval_s, str(METERS)) == per_day


def test_influxdb_preflight_accepts_the_default_retention_on_a_16gb_card(tmp_path: Path) -> None:
    card = {"ansible_mounts": [{"mount": "/", "size_available": 12 * 1024**3}]}
    done = preflight("influxdb", tmp_path, card, influxdb_data_dir=str(tmp_path / "influxdb"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("image", ["influxdb:latest", "influxdb:2", "influxdb:2.7", "influxdb"])
def test_influxdb_preflight_refuses_a_moving_image_tag(image: str, tmp_path: Path) -> None:
    done = preflight("influxdb", tmp_path, {}, influxdb_image=image)
    assert done.returncode != 0
    assert "must name an exact release" in " ".join(done.stdout.split())


@pytest.mark.parametrize(
    "adapter",
    [
        {"name": "Main", "vendor_id": "0403", "product_id": "6001", "serial": "A1"},
        {"name": "main", "vendor_id": "403", "product_id": "6001", "serial": "A1"},
        {"name": "main", "vendor_id": "0403", "product_id": "6001", "serial": 'A1", RUN+="/bin/x'},
    ],
)
def test_base_preflight_refuses_an_rs485_adapter_udev_cannot_match(
    adapter: dict, tmp_path: Path
) -> None:
    done = preflight("base", tmp_path, {}, base_rs485_adapters=[adapter])
    assert done.returncode != 0
    assert "base_rs485_adapters[0] needs name" in " ".join(done.stdout.split())


# --- templates rendered by Ansible itself, checked as text ---


def render(role: str, template: str, tmp_path: Path, **variables: object) -> str:
    """`role`'s template rendered by Ansible on the controller with the role's defaults and vars."""
    out = tmp_path / "rendered"
    play = {
        "name": "Render",
        "hosts": "localhost",
        "gather_facts": False,
        "vars_files": [
            str(ROLES_DIR / role / "defaults" / "main.yml"),
            str(ROLES_DIR / role / "vars" / "main.yml"),
        ],
        "vars": {"role_path": str(ROLES_DIR / role)},
        "tasks": [
            {
                "name": "Render",
                "ansible.builtin.copy": {
                    "content": "{{ lookup('ansible.builtin.template', role_path ~ '/templates/"
                    + template
                    + "') }}",
                    "dest": str(out),
                    "mode": "0600",
                },
            }
        ],
    }
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([play]))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}
    done = run(
        tool("ansible-playbook"), "-i", "localhost,", "-c", "local",
        "-e", json.dumps(variables), str(playbook), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text()


UDEV_KEY = re.compile(r'^\s*([A-Z]+(?:\{[^}]+\})?)\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*$')


def test_udev_rule_matches_each_adapter_by_usb_ids_and_serial(tmp_path: Path) -> None:
    """udev does not run in containers: the rule's keys are checked here, as udev parses them
    (KEY{attr}OP"value" pairs separated by commas; == matches, += and = assign)."""
    adapters = [
        {"name": "main", "vendor_id": "0403", "product_id": "6001", "serial": "A10K1ABC"},
        {"name": "heat-pump", "vendor_id": "1a86", "product_id": "7523", "serial": "5A7B0123"},
    ]
    text = render("base", "99-homewatt-rs485.rules.j2", tmp_path, base_rs485_adapters=adapters)
    rules = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(rules) == len(adapters)
    for rule, adapter in zip(rules, adapters, strict=True):
        pairs = []
        for part in rule.split(", "):
            match = UDEV_KEY.match(part)
            assert match, f"not a udev key/value pair: {part!r}"
            pairs.append(match.groups())
        matches = {key: value for key, op, value in pairs if op == "=="}
        assigns = {key: (op, value) for key, op, value in pairs if op != "=="}
        assert matches == {
            "SUBSYSTEM": "tty",
            "ATTRS{idVendor}": adapter["vendor_id"],
            "ATTRS{idProduct}": adapter["product_id"],
            "ATTRS{serial}": adapter["serial"],
        }
        assert assigns["SYMLINK"] == ("+=", f"homewatt-rs485-{adapter['name']}")
        assert assigns["GROUP"] == ("=", "dialout")
        assert assigns["MODE"] == ("=", "0660")


def test_no_udev_rule_without_adapters(tmp_path: Path) -> None:
    text = render("base", "99-homewatt-rs485.rules.j2", tmp_path)
    assert [line for line in text.splitlines() if line.strip() and not line.startswith("#")] == []


CONTRACT = json.loads((REPO / "contracts" / "influxdb-grafana.json").read_text())


def test_downsampling_flux_is_generated_from_the_contract(tmp_path: Path) -> None:
    """Not parsed by a Flux parser (none runs here); checked against the contract line by line."""
    flux = render("influxdb", "longterm.flux.j2", tmp_path)
    down = CONTRACT["downsampling"]
    every, lookback = down["schedule"]["every"], down["schedule"]["lookback"]
    assert f'option task = {{name: "{down["flux_task_name"]}", every: {every}}}' in flux
    assert f'from(bucket: "{down["source"]["bucket"]}")' in flux
    assert f"|> range(start: -{lookback})" in flux
    assert f'r._measurement == "{down["source"]["measurement"]}"' in flux
    assert flux.count(f'|> to(bucket: "{down["target"]["bucket"]}", org: "homewatt")') == len(
        {f["aggregate"] for f in down["fields"]}
    )
    windows = re.findall(r"aggregateWindow\(every: (\w+), fn: (\w+), timeSrc: \"_start\"", flux)
    assert {fn for _, fn in windows} == {f["aggregate"] for f in down["fields"]}
    assert {w for w, _ in windows} == {down["window"]}
    for field in down["fields"]:
        assert f'r._field == "{field["from"]}"' in flux
        if field["field"] != field["from"]:
            assert f'if r._field == "{field["from"]}" then "{field["field"]}"' in flux
    assert flux.count("(") == flux.count(")") and flux.count("{") == flux.count("}")


def test_grafana_datasource_url_variable_is_the_contracts() -> None:
    variables = load(ROLES_DIR / "grafana" / "vars" / "main.yml")
    assert CONTRACT["datasource"]["url_env"] in variables["_grafana_env"]


def test_grafana_alert_limit_defaults_are_grafana_limits_yaml() -> None:
    limits_file = REPO / "grafana" / "alerting" / "limits.yaml"
    if not limits_file.exists():
        pytest.skip("grafana/ (the dashboards issue) is not in this checkout yet")
    limits = load(limits_file)
    defaults = load(ROLES_DIR / "grafana" / "defaults" / "main.yml")
    assert {name: spec["default"] for name, spec in limits.items()} == {
        name: value
        for name, value in defaults.items()
        if name.startswith("grafana_alert_") and name != "grafana_alert_receiver"
    }
