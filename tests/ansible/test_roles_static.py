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
from dataclasses import dataclass, field
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
#
# Every case below is one fake host of ONE ansible-playbook run (the module fixture
# `preflights`): each host gets its own facts from a fact cache and its own variables from the
# inventory, and runs only its role's preflight; a host whose preflight refuses fails alone, the
# others go on. One run instead of one per case: ansible-playbook's start-up (about 1.3 s)
# was most of each case's time.

FACTS = {
    "ansible_architecture": "aarch64",
    "ansible_os_family": "Debian",
    "ansible_distribution": "Debian",
    "ansible_distribution_release": "bookworm",
    "ansible_virtualization_role": "host",
    "ansible_virtualization_type": "",
    "ansible_mounts": [{"mount": "/", "size_available": 20 * 1024**3}],
}
# Never created: the preflight's `du` finds no data stored there yet.
DATA_DIR = "/nonexistent/homewatt-preflight/influxdb"


@dataclass(frozen=True)
class Preflight:
    """One fake host: the role whose preflight it runs, its facts (over FACTS), its variables."""

    role: str
    facts: dict = field(default_factory=dict)
    variables: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How one host's preflight ended: refused or not, and the messages of its failed tasks
    (and of their failed loop items) with whitespace collapsed."""

    refused: bool
    text: str


PREFLIGHTS: dict[str, Preflight] = {}


def case(name: str, role: str, facts: dict | None = None, **variables: object) -> str:
    """Registers the fake host `name` (collected into the one run) and returns its name."""
    PREFLIGHTS[name] = Preflight(role, facts or {}, variables)
    return name


def failed_messages(result: dict) -> list[str]:
    """The msg of a failed task result and of each of its failed loop items."""
    messages = [str(result["msg"])] if result.get("msg") else []
    for item in result.get("results", []):
        if item.get("failed"):
            messages.extend(failed_messages(item))
    return messages


def write_fact_cache(cache: Path, facts: dict[str, dict]) -> None:
    """Each fake host's facts (FACTS, updated by its own) in Ansible's jsonfile fact cache."""
    cache.mkdir(parents=True)
    for host, own in facts.items():
        # ansible-core 2.19's jsonfile cache: file s1_<host>, the facts as a JSON string in
        # __payload__.
        (cache / f"s1_{host}").write_text(json.dumps({"__payload__": json.dumps({**FACTS, **own})}))


def preflight_play(role: str, hosts: str) -> dict:
    """The play that runs only `role`'s preflight tasks on `hosts`."""
    return {
        "name": f"Preflight of {role}",
        "hosts": hosts,
        "gather_facts": False,
        "tasks": [
            {
                "name": "Preflight only",
                "ansible.builtin.include_role": {"name": role, "tasks_from": "preflight"},
            }
        ],
    }


def preflight_env(cache: Path, **extra: str) -> dict[str, str]:
    """ansible-playbook's environment for preflights: the roles, the fact cache (`smart`
    gathering reads it, never the machine), no colour, and `extra`."""
    return ansible_env(
        PATH=f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}",
        ANSIBLE_ROLES_PATH=str(ROLES_DIR),
        ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile",
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(cache),
        ANSIBLE_GATHERING="smart",
        **extra,
    )


def ansible_env(**extra: str) -> dict[str, str]:
    """This process's environment for ansible-playbook: no colour, the target's Python 3, and
    `extra`."""
    return {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        **extra,
    }


@pytest.fixture(scope="module")
def preflights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every registered case's preflight, run at once: its Outcome by case name."""
    work = tmp_path_factory.mktemp("preflight")
    cache = work / "facts"
    write_fact_cache(cache, {name: host.facts for name, host in PREFLIGHTS.items()})
    groups: dict[str, dict] = {}
    for name, host in PREFLIGHTS.items():
        groups.setdefault(host.role, {"hosts": {}})["hosts"][name] = host.variables
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": groups}}))
    playbook = work / "preflight.yml"
    playbook.write_text(yaml.safe_dump([preflight_play(role, role) for role in sorted(groups)]))
    env = preflight_env(
        cache,
        ANSIBLE_FORKS=str(len(PREFLIGHTS)),
        # Each host's results as JSON on stdout, so that each case gets its own messages.
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    done = run(
        tool("ansible-playbook"), "-i", str(inventory), "-c", "local", str(playbook), env=env,
    )  # fmt: skip
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook gave no JSON report:\n{done.stdout}{done.stderr}")
    messages: dict[str, list[str]] = {name: [] for name in PREFLIGHTS}
    for play in report["plays"]:
        for task in play["tasks"]:
            for name, result in task["hosts"].items():
                if result.get("failed") and not result.get("ignore_errors"):
                    messages[name].extend(failed_messages(result))
    stats = report["stats"]
    missing = set(PREFLIGHTS) - set(stats)
    assert not missing, f"no result for {sorted(missing)}:\n{done.stderr}"
    return {
        name: Outcome(
            refused=stats[name]["failures"] > 0 or stats[name]["unreachable"] > 0,
            text=" ".join(" ".join(messages[name]).split()),
        )
        for name in PREFLIGHTS
    }


ARMHF = (
    "InfluxDB 2 needs a 64-bit OS: install Raspberry Pi OS (64-bit), or point the collector's"
    " sinks at an existing InfluxDB"
)
ARMHF_CASES = [
    case(f"{role}-on-{arch}", role, {"ansible_architecture": arch})
    for role in ("base", "influxdb")
    for arch in ("armv7l", "armv6l")
]


@pytest.mark.parametrize("host", ARMHF_CASES)
def test_preflight_refuses_a_32bit_pi_with_one_line(
    host: str, preflights: dict[str, Outcome]
) -> None:
    done = preflights[host]
    assert done.refused
    assert ARMHF in done.text, done.text


OTHER_SYSTEMS = [
    (
        case("bullseye", "base", {"ansible_distribution_release": "bullseye"}),
        "Debian bullseye on aarch64",
    ),
    (
        case("fedora", "base", {"ansible_os_family": "RedHat", "ansible_distribution": "Fedora"}),
        "Fedora bookworm",
    ),
    (case("riscv64", "base", {"ansible_architecture": "riscv64"}), "on riscv64"),
]


@pytest.mark.parametrize(("host", "words"), OTHER_SYSTEMS)
def test_base_preflight_refuses_other_systems(
    host: str, words: str, preflights: dict[str, Outcome]
) -> None:
    done = preflights[host]
    assert done.refused
    assert (
        "homewatt supports Raspberry Pi OS / Debian 64-bit (arm64, amd64), bookworm or trixie"
        in done.text
    )
    assert words in done.text


SUPPORTED = [
    case(f"base-on-{release}", "base", {"ansible_distribution_release": release})
    for release in ("bookworm", "trixie")
]


@pytest.mark.parametrize("host", SUPPORTED)
def test_base_preflight_accepts_bookworm_and_trixie(
    host: str, preflights: dict[str, Outcome]
) -> None:
    assert not preflights[host].refused, preflights[host].text


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
SMALL_DISK = case(
    "200mib-free", "influxdb",
    {"ansible_mounts": [{"mount": "/", "size_available": 200 * 1024**2}]},
    influxdb_data_dir=DATA_DIR, influxdb_raw_retention_days=365,
    collector_instances=[DEMO_INSTANCE],
)  # fmt: skip


def test_influxdb_preflight_refuses_a_raw_bucket_larger_than_the_disk(
    preflights: dict[str, Outcome],
) -> None:
    done = preflights[SMALL_DISK]
    assert done.refused
    assert "InfluxDB's raw bucket needs about" in done.text
    assert "/ has 200 MiB free" in done.text


TWO_GIB = {"ansible_mounts": [{"mount": "/", "size_available": 2 * 1024**3}]}
DEMO_ON_2GIB = case(
    "demo-on-2gib", "influxdb", TWO_GIB, influxdb_data_dir=DATA_DIR,
    collector_instances=[DEMO_INSTANCE],
)  # fmt: skip
WORKSHOP_ON_2GIB = case(
    "workshop-on-2gib", "influxdb", TWO_GIB, influxdb_data_dir=DATA_DIR,
    collector_instances=[WORKSHOP_INSTANCE],
)  # fmt: skip
SLOW_WORKSHOP_ON_2GIB = case(
    "workshop-every-10s-on-2gib", "influxdb", TWO_GIB, influxdb_data_dir=DATA_DIR,
    collector_instances=[{**WORKSHOP_INSTANCE, "interval_s": 10}],
)  # fmt: skip


def test_influxdb_disk_estimate_counts_the_points_collector_instances_write(
    preflights: dict[str, Outcome],
) -> None:
    """2 GiB free holds a demo instance's 30 days (3 points a second: 1.1 GiB with the margin)
    but not the workshop's SDM630 + SDM120 (8 a second: 2.9 GiB); the refusal names the points
    a day it counted from collector_instances (the variable the collector role reads)."""
    demo = preflights[DEMO_ON_2GIB]
    assert not demo.refused, demo.text
    workshop = preflights[WORKSHOP_ON_2GIB]
    assert workshop.refused
    assert f"({8 * 86400} points a day x 100 bytes x 30 days" in workshop.text, workshop.text
    # Read once every 10 s, the workshop fits again.
    slow = preflights[SLOW_WORKSHOP_ON_2GIB]
    assert not slow.refused, slow.text


def points_per_day_filter() -> Callable[..., int]:
    """The influxdb role's filter, loaded from its file as Ansible loads a role's plugins."""
    path = ROLES_DIR / "influxdb" / "filter_plugins" / "influxdb_disk.py"
    spec = importlib.util.spec_from_file_location("influxdb_disk", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["homewatt_points_per_day"]


METERS = REPO / "collector" / "src" / "homewatt_collector" / "sources" / "modbus" / "templates"


def test_the_influxdb_role_reads_the_shipped_meter_templates_where_they_are() -> None:
    """The role's templates directory is the collector's (a moved folder would make every
    shipped model count as an unknown one, silently)."""
    role_vars = yaml.safe_load((ROLES_DIR / "influxdb" / "vars" / "main.yml").read_text())
    relative = role_vars["_influxdb_meter_templates_dir"].split("'")[1]
    directory = (ROLES_DIR / "influxdb" / relative.lstrip("/")).resolve()
    assert directory == METERS.resolve()
    assert list(directory.glob("*.yaml")), directory


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


SIXTEEN_GB_CARD = case(
    "default-retention-on-16gb", "influxdb",
    {"ansible_mounts": [{"mount": "/", "size_available": 12 * 1024**3}]},
    influxdb_data_dir=DATA_DIR,
)  # fmt: skip


def test_influxdb_preflight_accepts_the_default_retention_on_a_16gb_card(
    preflights: dict[str, Outcome],
) -> None:
    assert not preflights[SIXTEEN_GB_CARD].refused, preflights[SIXTEEN_GB_CARD].text


MOVING_TAGS = [
    case(f"image-{image.replace(':', '-').replace('.', '-')}", "influxdb", influxdb_image=image)
    for image in ("influxdb:latest", "influxdb:2", "influxdb:2.7", "influxdb")
]


@pytest.mark.parametrize("host", MOVING_TAGS)
def test_influxdb_preflight_refuses_a_moving_image_tag(
    host: str, preflights: dict[str, Outcome]
) -> None:
    done = preflights[host]
    assert done.refused
    assert "must name an exact release" in done.text


BAD_ADAPTERS = [
    case(f"adapter-{index}", "base", base_rs485_adapters=[adapter])
    for index, adapter in enumerate(
        [
            {"name": "Main", "vendor_id": "0403", "product_id": "6001", "serial": "A1"},
            {"name": "main", "vendor_id": "403", "product_id": "6001", "serial": "A1"},
            {
                "name": "main",
                "vendor_id": "0403",
                "product_id": "6001",
                "serial": 'A1", RUN+="/bin/x',
            },
        ]
    )
]


@pytest.mark.parametrize("host", BAD_ADAPTERS)
def test_base_preflight_refuses_an_rs485_adapter_udev_cannot_match(
    host: str, preflights: dict[str, Outcome]
) -> None:
    done = preflights[host]
    assert done.refused
    assert "base_rs485_adapters[0] needs name" in done.text


# --- templates rendered by Ansible itself, checked as text ---


@dataclass(frozen=True)
class Render:
    """A role's template, with variables given as extra vars would be (over its defaults)."""

    role: str
    template: str
    variables: dict = field(default_factory=dict)


ADAPTERS = [
    {"name": "main", "vendor_id": "0403", "product_id": "6001", "serial": "A10K1ABC"},
    {"name": "heat-pump", "vendor_id": "1a86", "product_id": "7523", "serial": "5A7B0123"},
]
RENDERS = {
    "udev-rule": Render("base", "99-homewatt-rs485.rules.j2", {"base_rs485_adapters": ADAPTERS}),
    "udev-rule-without-adapters": Render("base", "99-homewatt-rs485.rules.j2"),
    "longterm-flux": Render("influxdb", "longterm.flux.j2"),
}


def render_play(
    name: str, role: str, template: str, dest: Path, variables: dict | None = None
) -> dict:
    """The play that renders `role`'s `template` into `dest` on the controller, with the role's
    defaults and vars (as vars_files) and `variables` as task vars (they outrank vars_files,
    as extra vars would)."""
    return {
        "name": name,
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
                "vars": variables or {},
                "ansible.builtin.copy": {
                    "content": "{{ lookup('ansible.builtin.template', role_path ~ "
                    f"'/templates/{template}') }}}}",
                    "dest": str(dest),
                    "mode": "0600",
                },
            }
        ],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each of RENDERS rendered by Ansible on the controller with the role's defaults and vars,
    one play each in one ansible-playbook run (task vars outrank the plays' vars_files, as
    extra vars would)."""
    work = tmp_path_factory.mktemp("render")
    plays = [
        render_play(f"Render {name}", render.role, render.template, work / name, render.variables)
        for name, render in RENDERS.items()
    ]
    playbook = work / "render.yml"
    playbook.write_text(yaml.safe_dump(plays))
    env = ansible_env()
    done = run(tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return {name: (work / name).read_text() for name in RENDERS}


UDEV_KEY = re.compile(r'^\s*([A-Z]+(?:\{[^}]+\})?)\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*$')


def test_udev_rule_matches_each_adapter_by_usb_ids_and_serial(rendered: dict[str, str]) -> None:
    """udev does not run in containers: the rule's keys are checked here, as udev parses them
    (KEY{attr}OP"value" pairs separated by commas; == matches, += and = assign)."""
    adapters = ADAPTERS
    text = rendered["udev-rule"]
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


def test_no_udev_rule_without_adapters(rendered: dict[str, str]) -> None:
    text = rendered["udev-rule-without-adapters"]
    assert [line for line in text.splitlines() if line.strip() and not line.startswith("#")] == []


CONTRACT = json.loads((REPO / "contracts" / "influxdb-grafana.json").read_text())


def test_downsampling_flux_is_generated_from_the_contract(rendered: dict[str, str]) -> None:
    """Not parsed by a Flux parser (none runs here); checked against the contract line by line."""
    flux = rendered["longterm-flux"]
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
    for target in down["fields"]:
        assert f'r._field == "{target["from"]}"' in flux
        if target["field"] != target["from"]:
            assert f'if r._field == "{target["from"]}" then "{target["field"]}"' in flux
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


# --- one preflight or one template at a time (tests/ansible/test_roles_static_apps.py) ---


def preflight(
    role: str, tmp_path: Path, facts: dict, **variables: object
) -> subprocess.CompletedProcess[str]:
    """Run only `role`'s preflight on a fake host whose facts come from a fact cache."""
    cache = tmp_path / "facts"
    write_fact_cache(cache, {"pi": facts})
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(yaml.safe_dump([preflight_play(role, "pi")]))
    env = preflight_env(cache)
    done = run(
        tool("ansible-playbook"), "-i", "pi,", "-c", "local", "-e", json.dumps(variables),
        str(playbook), env=env,
    )  # fmt: skip
    done.stdout += done.stderr  # Ansible 2.19 prints a failed task's message on stderr
    return done


def render(role: str, template: str, tmp_path: Path, **variables: object) -> str:
    """`role`'s template rendered by Ansible on the controller with the role's defaults, vars
    and filter plugins."""
    out = tmp_path / "rendered"
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([render_play("Render", role, template, out)]))
    # the role's own filters, as when the role runs
    env = ansible_env(ANSIBLE_FILTER_PLUGINS=str(ROLES_DIR / role / "filter_plugins"))
    done = run(
        tool("ansible-playbook"), "-i", "localhost,", "-c", "local",
        "-e", json.dumps(variables), str(playbook), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text()
