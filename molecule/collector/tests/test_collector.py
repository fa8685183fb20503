"""The collector role inside its Molecule instance.

The demo instance writes through the InfluxDB 2 write API to the repository's stand-in, run as
a process in the instance by prepare.yml; it is NOT InfluxDB 2 (none can run here). The Modbus
instance's adapter is a pty at its by-id path: DeviceAllow= covers ttyUSB/ttyACM only, so that
unit runs without reading a meter; its rendered config, drop-in and state are checked. The
Shelly instance reads a Shelly test device (tests/support/shelly_devices.py, Digest auth with
the password the role wrote as a credential; NOT a plug); the nightly cost unit runs with its
token against the stand-in's v1 /query, which cannot answer it (checked: one line, no traceback).
"""

from __future__ import annotations

import json
import re
import time

import pytest
import testinfra.host

INSTANCES = ["demo", "line1", "plugs"]
CONTRACT_MODE = {
    "/etc/homewatt/credentials/influxdb-write-token": ("0o600", "root"),
    "/etc/homewatt/credentials/influxdb-cost-token": ("0o600", "root"),
}
# Test values set by molecule.yml and prepare.yml, not secrets: the stand-in's operator token,
# and the Shelly test device's password (collector_credentials['shelly-office']).
OPERATOR = "molecule-collector-operator-token"
SHELLY_PASSWORD = "molecule-shelly-not-a-secret"  # noqa: S105 (a test value, above)
SITE = "molecule"
COST = f"homewatt-cost@{SITE}"


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


def dropin(host: testinfra.host.Host, name: str) -> list[str]:
    """The directives of instance `name`'s drop-in (comments left out)."""
    text = host.file(
        f"/etc/systemd/system/homewatt-collector@{name}.service.d/homewatt.conf"
    ).content_string
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_shelly_password_is_a_root_only_credential_file_with_the_vaulted_value(
    host: testinfra.host.Host,
) -> None:
    secret = host.file("/etc/homewatt/credentials/shelly-office")
    assert (oct(secret.mode), secret.user, secret.group) == ("0o600", "root", "root")
    assert secret.content_string == SHELLY_PASSWORD + "\n"
    assert SHELLY_PASSWORD not in host.file("/etc/homewatt/collector/plugs.yaml").content_string


def test_only_the_shelly_instance_loads_its_password_and_it_has_no_device_access(
    host: testinfra.host.Host,
) -> None:
    assert dropin(host, "plugs") == [
        "[Service]",
        "LoadCredential=influxdb-write-token:/etc/homewatt/credentials/influxdb-write-token",
        "LoadCredential=shelly-office:/etc/homewatt/credentials/shelly-office",
    ]
    for name in ("demo", "line1"):
        assert not [d for d in dropin(host, name) if "shelly-office" in d], name
    # as systemd sees the unit: no device but the pseudo ones, no serial group
    assert host.check_output(f"systemctl show -P DeviceAllow {unit('plugs')}") == ""
    assert host.check_output(f"systemctl show -P SupplementaryGroups {unit('plugs')}") == ""
    assert host.check_output(f"systemctl show -P DevicePolicy {unit('plugs')}") == "closed"


def test_the_shelly_instance_reads_its_plug_with_the_credential_and_never_restarted(
    host: testinfra.host.Host,
) -> None:
    """The test device refuses a wrong Digest answer, so samples of office-plug prove the
    password reached the unit through LoadCredential=; no read errors, no restart."""
    deadline = time.monotonic() + 60
    found: list[list] = []
    while time.monotonic() < deadline and len([r for r in found if r[2] is not None]) < 3:
        found = rows(
            influxql(
                host,
                "SELECT power_w, energy_total_kwh FROM electricity WHERE site = 'molecule'"
                " AND source = 'shelly' AND device = 'office-plug' AND time > now() - 10m",
            )
        )
        time.sleep(2)
    assert found and all(row[1] > 0 for row in found), found
    # the plug's own counter (the first readings only set the series' baseline)
    energy = [row[2] for row in found if row[2] is not None]
    assert len(energy) >= 3 and energy == sorted(energy) and energy[0] > 0, found
    errors = rows(
        influxql(
            host,
            "SELECT read_errors FROM homewatt_health WHERE unit = 'plugs' AND time > now() - 10m",
        )
    )
    assert errors and all(row[1] == 0 for row in errors), errors
    assert host.check_output(f"systemctl show -P NRestarts {unit('plugs')}") == "0"


def test_the_cost_timer_is_enabled_and_active_and_its_files_have_the_contracts_modes(
    host: testinfra.host.Host,
) -> None:
    timer = host.service(f"{COST}.timer")
    assert timer.is_enabled and timer.is_running
    for path in ("/etc/homewatt/tariff.yaml", f"/etc/homewatt/cost/{SITE}.yaml"):
        config = host.file(path)
        assert (oct(config.mode), config.user) == ("0o644", "root"), path
        assert "token:" not in config.content_string, path
    assert "Europe/Warsaw" in host.file("/etc/homewatt/tariff.yaml").content_string
    assert (
        "token_credential: influxdb-cost-token"
        in host.file(f"/etc/homewatt/cost/{SITE}.yaml").content_string
    )


def test_the_cost_unit_runs_with_its_token_and_ends_with_the_collectors_one_line(
    host: testinfra.host.Host,
) -> None:
    """`systemctl start homewatt-cost@<site>` as the timer starts it: the unit loads its token
    and queries the scenario's InfluxDB, the stand-in, whose InfluxQL subset has no first()
    (NOT InfluxDB 2, which answers it): the run fails with the collector's own one line, no
    traceback. The bill written for real by the shipped unit is tested against InfluxDB 1.6.7
    in tests/collector/test_cost_units.py."""
    done = host.run(f"systemctl start {COST}.service")
    assert done.rc != 0
    assert host.check_output(f"systemctl show -P Result {COST}.service") == "exit-code"
    journal = host.check_output(f"journalctl -u {COST}.service -o cat -n 20")
    assert (
        "homewatt-collector: error: InfluxDB http://127.0.0.1:8086/query (database homewatt):"
        " HTTP 400: influxdb stand-in: functions such as first() are not supported"
    ) in journal, journal
    assert "Traceback" not in journal and "token" not in journal.lower(), journal


def test_the_cost_units_exposure_is_at_most_2_0(host: testinfra.host.Host) -> None:
    out = host.check_output(f"systemd-analyze security {COST}.service --no-pager")
    level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert level <= 2.0, out[-2000:]


def test_without_an_emporia_instance_the_venv_has_no_pyemvue(host: testinfra.host.Host) -> None:
    """pyemvue (with boto3, botocore) is the collector's `emporia` extra, installed only for an
    emporia instance."""
    done = host.run("/opt/homewatt/venv/bin/python -c 'import pyemvue'")
    assert done.rc == 1 and "No module named 'pyemvue'" in done.stderr, done.stderr
    assert host.run("/opt/homewatt/venv/bin/python -c 'import boto3'").rc == 1
