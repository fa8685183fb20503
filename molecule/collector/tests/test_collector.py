"""The collector role inside its Molecule instance.

The demo instance writes through the InfluxDB 2 write API to the repository's stand-in, run as
a process in the instance by prepare.yml; it is NOT InfluxDB 2 (none can run here). The Modbus
instance's adapter is a pty at its by-id path: DeviceAllow= covers ttyUSB/ttyACM only, so that
unit runs without reading a meter; its rendered config, drop-in and state are checked.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import testinfra.host

INSTANCES = ["demo", "line1"]
CONTRACT_MODE = {"/etc/homewatt/credentials/influxdb-write-token": ("0o600", "root")}
# A test value set by prepare.yml, not a secret: the stand-in's operator token.
OPERATOR = "molecule-collector-operator-token"


def unit(name: str) -> str:
    return f"homewatt-collector@{name}.service"


# Run by the instance's python3 (the trixie instance is the rig's bare image, without curl): the
# stand-in's InfluxQL answer to argv[1] with the operator token.
QUERY = """
import sys, urllib.parse, urllib.request
url = "http://127.0.0.1:8086/query?db=homewatt&epoch=s&q=" + urllib.parse.quote(sys.argv[1])
request = urllib.request.Request(url, headers={"Authorization": "Token " + sys.argv[2]})
print(urllib.request.urlopen(request, timeout=10).read().decode())
"""


def influxql(host: testinfra.host.Host, query: str) -> dict:
    return json.loads(host.check_output("python3 -c %s %s %s", QUERY, query, OPERATOR))


def rows(answer: dict) -> list[list]:
    series = answer["results"][0].get("series", [])
    return [row for s in series for row in s["values"]]


@pytest.mark.parametrize("name", INSTANCES)
def test_each_instance_is_enabled_and_running(host: testinfra.host.Host, name: str) -> None:
    service = host.service(unit(name))
    assert service.is_enabled
    assert service.is_running


@pytest.mark.parametrize("name", INSTANCES)
def test_each_instance_runs_as_its_own_dynamic_user(host: testinfra.host.Host, name: str) -> None:
    pid = host.check_output(f"systemctl show -P MainPID {unit(name)}")
    uid = int(host.file(f"/proc/{pid}/status").content_string.split("Uid:")[1].split()[0])
    # systemd's dynamic users: 61184-65519 (systemd.exec(5), DynamicUser=).
    assert 61184 <= uid <= 65519
    assert host.check_output(f"systemctl show -P DynamicUser {unit(name)}") == "yes"


def test_configs_and_credentials_have_the_contracts_modes(host: testinfra.host.Host) -> None:
    for name in INSTANCES:
        config = host.file(f"/etc/homewatt/collector/{name}.yaml")
        assert (oct(config.mode), config.user) == ("0o644", "root")
        assert "token:" not in config.content_string
    for path, (mode, owner) in CONTRACT_MODE.items():
        secret = host.file(path)
        assert (oct(secret.mode), secret.user) == (mode, owner)
    assert oct(host.file("/etc/homewatt/credentials").mode) == "0o700"


def test_the_unit_is_the_repositorys_and_the_drop_ins_differ_by_source_kind(
    host: testinfra.host.Host,
) -> None:
    demo = host.file(
        "/etc/systemd/system/homewatt-collector@demo.service.d/homewatt.conf"
    ).content_string
    line = host.file(
        "/etc/systemd/system/homewatt-collector@line1.service.d/homewatt.conf"
    ).content_string
    for text in (demo, line):
        assert (
            "LoadCredential=influxdb-write-token:/etc/homewatt/credentials/influxdb-write-token"
            in text
        )
    assert "DeviceAllow" not in demo and "dialout" not in demo
    assert "DeviceAllow=char-ttyUSB rw" in line and "SupplementaryGroups=dialout" in line
    assert host.file("/usr/local/bin/homewatt-collector").linked_to == (
        "/opt/homewatt/venv/bin/homewatt-collector"
    )


def test_the_modbus_config_has_its_meters_and_passes_check_config(
    host: testinfra.host.Host,
) -> None:
    text = host.file("/etc/homewatt/collector/line1.yaml").content_string
    assert "sdm630" in text and "sdm120" in text
    done = host.run("homewatt-collector check-config --instance line1")
    assert done.rc == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ok")


@pytest.mark.parametrize("name", INSTANCES)
def test_exposure_is_at_most_2_0(host: testinfra.host.Host, name: str) -> None:
    out = host.check_output(f"systemd-analyze security {unit(name)} --no-pager")
    level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert level <= 2.0, out[-2000:]


def test_demo_samples_arrive_through_the_write_api_not_run_against_a_real_influxdb2(
    host: testinfra.host.Host,
) -> None:
    deadline = time.monotonic() + 60
    found: list[list] = []
    while time.monotonic() < deadline and len(found) < 5:
        found = rows(
            influxql(
                host,
                "SELECT power_w, device FROM electricity"
                " WHERE site = 'molecule' AND time > now() - 10m",
            )
        )
        time.sleep(2)
    assert len(found) >= 5, found
    assert all(row[1] > 0 for row in found)
    health = rows(
        influxql(host, "SELECT cycle_lateness_ms FROM homewatt_health WHERE time > now() - 10m")
    )
    assert health, "no homewatt_health points from the demo instance"
