"""A fleet of three Pis converges with one `ansible-playbook` run: the example inventory's
hosts (an ORNO WE-515 line, an SDM630 + SDM120 line, a demo host) with its own group_vars and
host_vars, each host a fresh bookworm systemd container of the rig, reached through Ansible's
community.docker.docker connection; the collector and backup roles run by their tags. A second
run changes nothing.

Containers have no serial ports: each configured port is a pty at its configured path, and a
unit cannot read a pty (DeviceAllow= covers ttyUSB/ttyACM only), so the Modbus hosts are
checked for their rendered config and unit state; the demo host collects end to end into the
InfluxDB 2 stand-in run in its container (tests/support/influxdb2 as a process: NOT InfluxDB 2,
which cannot run here). The central sink of the `central` group points at the example's
placeholder URL and is checked in the configs only.

What the roles build on (the base and influxdb roles' files: the credentials directory, the
write and operator tokens; the stand-in; the ptys) is put in place with `docker exec`, not by a
playbook: 3 hosts x 17 prepare tasks took 5 min at a load of 14, these commands take seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.ansible import images
from tests.ansible.conftest import TOOLS_BIN, long_scenario
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "ansible" / "inventories" / "example"
WHEELS = "/var/cache/homewatt-test-wheels"
TAGS = ",".join(
    f"{role}_{part}" for role in ("collector", "backup") for part in ("install", "configure", "run")
)
# What each example host measures (its host_vars): instance -> [(meter, model, device id)].
EXPECTED: dict[str, dict[str, list[tuple[str, str, int]]]] = {
    "pi-meter-cupboard": {"main": [("main", "orno-we515", 1)]},
    "pi-workshop": {"main": [("mains", "sdm630", 1), ("heatpump", "sdm120", 2)]},
    "pi-demo": {"demo": []},
}
CENTRAL = {"pi-meter-cupboard", "pi-workshop"}  # the example's `central` group


@pytest.fixture(scope="module")
def fleet(systemd_rig: SystemdRig) -> Iterator[dict[str, SystemdContainer]]:
    """One booted container per example host, the test command's wheelhouse mounted read-only
    as an offline Pi's wheel directory."""
    image = images.role_image(systemd_rig, "bookworm")
    boxes: dict[str, SystemdContainer] = {}
    try:
        for host in EXPECTED:
            boxes[host] = SystemdContainer.boot(
                systemd_rig.daemon,
                image,
                purpose=host,
                extra_options=(f"--volume={REPO}/.tools/wheels:{WHEELS}:ro",),
                # 90 s (the default) was not enough to boot at a load of 27.
                timeout=600,
            )
        yield boxes
    finally:
        for box in boxes.values():
            box.stop(timeout=60, strict=False)


def inventory(tmp_path: Path, fleet: dict[str, SystemdContainer]) -> Path:
    """The example inventory, copied; each host reached through `docker exec`; the test's
    additions in group_vars/all/test.yml (the wheelhouse, a made-up central token)."""
    inv = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    for name, settings in hosts["all"]["children"]["homewatt"]["hosts"].items():
        settings.clear()
        settings.update(
            ansible_connection="community.docker.docker",
            ansible_host=fleet[name].name,
            ansible_python_interpreter="/usr/bin/python3",
        )
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inv / "group_vars" / "all" / "test.yml").write_text(
        "---\n"
        f"collector_wheelhouse: {WHEELS}\n"
        f"backup_wheelhouse: {WHEELS}\n"
        "# A test value, not a secret: the central InfluxDB is the example's placeholder.\n"
        "vault_influxdb_central_token: fleet-test-central-token\n"
        "# The host's kernel clock (shared by containers) is not NTP-synchronised here.\n"
        "collector_wait_for_time_sync_enabled: false\n"
        "backup_wait_for_time_sync_enabled: false\n"
    )
    return inv


def playbook(
    inv: Path, env: dict[str, str], *args: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    # Written as it runs (a hung or slow run shows where it is): <tmp_path>/ansible-*.log
    log = tmp_path / f"ansible-{len(list(tmp_path.glob('ansible-*.log'))):02}.log"
    with log.open("w") as sink:
        done = subprocess.run(
            [str(TOOLS_BIN / "ansible-playbook"), "-i", str(inv), *args],
            cwd=REPO / "ansible",
            env={
                **os.environ,
                **env,
                "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}",
                "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                "NO_COLOR": "1",
            },
            stdout=sink, stderr=subprocess.STDOUT, text=True, timeout=3600, check=False,
        )  # fmt: skip
    output = log.read_text()
    seconds = time.monotonic() - started
    print(f"ansible-playbook {' '.join(args)}: rc={done.returncode} in {seconds:.0f} s ({log})")
    assert done.returncode == 0, output[-8000:]
    return subprocess.CompletedProcess(done.args, done.returncode, output, "")


def recaps(output: str) -> dict[str, int]:
    """`changed` per host in the PLAY RECAP (failed must be 0)."""
    found = {}
    for host in EXPECTED:
        line = re.search(rf"^{host}\s*:.*\bchanged=(\d+).*\bfailed=(\d+)", output, re.M)
        assert line, f"no PLAY RECAP line for {host}"
        assert line[2] == "0", line[0]
        found[host] = int(line[1])
    return found


# Test-only: a pty linked at argv[1], both ends held open (a container has no USB adapter).
PTY_SCRIPT = """#!/usr/bin/python3
import os, signal, sys
master, slave = os.openpty()
link = sys.argv[1]
os.makedirs(os.path.dirname(link), exist_ok=True)
if os.path.lexists(link + ".new"):
    os.unlink(link + ".new")
os.symlink(os.ttyname(slave), link + ".new")
os.replace(link + ".new", link)
signal.pause()
"""
STANDIN_LIB = "/opt/influxdb-standin/lib"
STANDIN_UNIT = f"""[Unit]
Description=InfluxDB 2 stand-in (homewatt tests; NOT InfluxDB)
[Service]
WorkingDirectory={STANDIN_LIB}
ExecStart=/usr/bin/python3 -s -m influxdb2 run --http-bind-address=127.0.0.1:8086
"""
# Test values, not secrets: the stand-in's operator token in the throwaway demo container,
# and a write token for the Modbus hosts, whose local InfluxDB is not there (their units
# cannot read their pty, so nothing is written: the outbox would keep it).
OPERATOR_TOKEN = "fleet-test-operator-token"
NO_INFLUXDB_WRITE_TOKEN = "fleet-test-write-token-no-influxdb-here"
CREDENTIALS = "/etc/homewatt/credentials"


def make_ptys(box: SystemdContainer, ports: list[str]) -> None:
    """A pty at each configured port path, each a transient unit."""
    box.write_file("/usr/local/sbin/hw-test-pty", PTY_SCRIPT, mode=0o755)
    for number, port in enumerate(ports):
        box.run(
            ["systemd-run", f"--unit=hw-test-pty-{number}", "/usr/local/sbin/hw-test-pty", port]
        )
        box.run(f"for i in $(seq 100); do test -e {port} && exit 0; sleep 0.1; done; exit 1")


# Run by the container's python3 (a Pi's image has no curl): argv is method, URL, token and a
# JSON body or ""; prints the answer's body, fails on an HTTP error.
HTTP_SCRIPT = """
import sys, urllib.request
method, url, token, body = sys.argv[1:5]
request = urllib.request.Request(url, data=body.encode() or None, method=method)
request.add_header("Authorization", "Token " + token)
request.add_header("Content-Type", "application/json")
print(urllib.request.urlopen(request, timeout=10).read().decode())
"""


def standin_api(box: SystemdContainer, method: str, path: str, body: object = None) -> Any:
    """The stand-in's JSON answer to `method path` (with the operator token) in `box`."""
    argv = ["python3", "-c", HTTP_SCRIPT, method, f"http://127.0.0.1:8086{path}", OPERATOR_TOKEN]
    return json.loads(box.run([*argv, "" if body is None else json.dumps(body)]).stdout)


def run_standin(box: SystemdContainer) -> str:
    """The InfluxDB 2 stand-in set up (org and bucket homewatt) and running on 127.0.0.1:8086,
    as the influxdb role leaves InfluxDB 2; a write-only token for the bucket, returned."""
    box.copy_in(REPO / "tests" / "support" / "influxdb2", STANDIN_LIB)
    box.run(
        f"cd {STANDIN_LIB} && python3 -s -m influxdb2 standin-init"
        " --http-bind-address=127.0.0.1:8086",
        env={
            "DOCKER_INFLUXDB_INIT_MODE": "setup",
            "DOCKER_INFLUXDB_INIT_USERNAME": "admin",
            "DOCKER_INFLUXDB_INIT_PASSWORD": "fleet-test-not-a-secret",
            "DOCKER_INFLUXDB_INIT_ORG": "homewatt",
            "DOCKER_INFLUXDB_INIT_BUCKET": "homewatt",
            "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": OPERATOR_TOKEN,
        },
    )
    box.write_file("/etc/systemd/system/influxdb-standin.service", STANDIN_UNIT)
    box.systemctl("daemon-reload")
    box.systemctl("start", "influxdb-standin.service")
    deadline = time.monotonic() + 60
    while box.run(["python3", "-c", HTTP_SCRIPT, "GET", "http://127.0.0.1:8086/health", "", ""],
                  check=False).exit_code != 0:  # fmt: skip
        assert time.monotonic() < deadline, box.journal("influxdb-standin.service", lines=30)
        time.sleep(0.5)
    bucket = standin_api(box, "GET", "/api/v2/buckets?name=homewatt")["buckets"][0]
    resource = {"type": "buckets", "id": bucket["id"], "orgID": bucket["orgID"]}
    created = standin_api(
        box,
        "POST",
        "/api/v2/authorizations",
        {
            "orgID": bucket["orgID"],
            "description": "homewatt collector: write homewatt",
            "permissions": [{"action": "write", "resource": resource}],
        },
    )
    token: str = created["token"]
    return token


def prepare(host: str, box: SystemdContainer, inv: Path) -> None:
    """What the base and influxdb roles leave for the collector and backup roles (the
    credentials directory, the write and operator tokens; contracts/secrets.json), the
    stand-in on the demo host, and a pty at each configured serial port."""
    box.run(f"install -d -m 0755 /etc/homewatt && install -d -m 0700 {CREDENTIALS}")
    write_token = run_standin(box) if host == "pi-demo" else NO_INFLUXDB_WRITE_TOKEN
    for name, value in (
        ("influxdb-write-token", write_token),
        ("influxdb-operator-token", OPERATOR_TOKEN),
    ):
        box.write_file(f"{CREDENTIALS}/{name}", f"{value}\n", mode=0o600)
    host_vars = yaml.safe_load((inv / "host_vars" / f"{host}.yml").read_text())
    make_ptys(
        box,
        [i["source"]["port"] for i in host_vars["collector_instances"] if "port" in i["source"]],
    )


# Long: three containers, a venv and pip from the wheelhouse in each, two runs of 87 tasks.
# Passed whole in 1604 s on the shared 2-core VM at a load of 14-18, falling to 2 at the end:
# boot 62 s, prepare 32 s, the first run 1167 s (about 105 CPU s for Ansible on the controller
# and 80 in each container; `python3 -m venv` and the two pip installs are 40% of it), the
# second 311 s (the copy and template tasks: a checksum and an attributes module call per file
# and host). About 550 CPU s in all: not for the default test command's budget.
@long_scenario
@pytest.mark.timeout(5400)
def test_three_pis_converge_in_one_run_with_their_own_meters_and_a_second_run_changes_nothing(
    systemd_rig: SystemdRig, fleet: dict[str, SystemdContainer], tmp_path: Path
) -> None:
    inv = inventory(tmp_path, fleet)
    env = systemd_rig.daemon.env()
    started = time.monotonic()
    for host, box in fleet.items():
        prepare(host, box, inv)
    print(f"prepared in {time.monotonic() - started:.0f} s")

    first = playbook(inv, env, "site.yml", "--tags", TAGS, tmp_path=tmp_path)
    assert all(changed > 0 for changed in recaps(first.stdout).values())

    for host, instances in EXPECTED.items():
        box = fleet[host]
        for name, meters in instances.items():
            config = yaml.safe_load(box.read_text(f"/etc/homewatt/collector/{name}.yaml"))
            found = [
                (m["name"], m["model"], m["device_id"]) for m in config["source"].get("meters", [])
            ]
            assert found == meters, (host, config)
            sinks = [sink["name"] for sink in config["sinks"]]
            assert sinks == (["local", "central"] if host in CENTRAL else ["local"]), sinks
            unit = f"homewatt-collector@{name}"
            assert box.systemctl("is-enabled", unit, check=False).stdout.strip() == "enabled"
            assert box.systemctl("is-active", unit, check=False).stdout.strip() == "active"
        timer = box.systemctl("is-active", "homewatt-backup.timer", check=False)
        assert timer.stdout.strip() == "active", host
        site = yaml.safe_load((inv / "host_vars" / f"{host}.yml").read_text())["collector_site"]
        assert f"site: {site}" in box.read_text("/etc/homewatt/backup.yaml")

    # The demo host collects end to end: its samples are in its (stand-in) InfluxDB.
    demo = fleet["pi-demo"]
    query = "SELECT power_w FROM electricity WHERE site = 'demo' AND time > now() - 10m"
    rows: list[list[object]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(rows) < 5:
        answer = standin_api(demo, "GET", f"/query?db=homewatt&epoch=s&q={quote(query)}")
        series = answer["results"][0].get("series", [])
        rows = [row for s in series for row in s["values"]]
        time.sleep(2)
    assert len(rows) >= 5, rows

    second = playbook(inv, env, "site.yml", "--tags", TAGS, tmp_path=tmp_path)
    assert recaps(second.stdout) == dict.fromkeys(EXPECTED, 0), second.stdout[-6000:]
