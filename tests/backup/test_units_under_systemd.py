"""The shipped backup service and timer, started for real: systemd/homewatt-backup.{service,timer}
unchanged, homewatt-backup installed from wheels into a venv as on a Pi, in a bookworm systemd
container of the test rig. The InfluxDB 2 engine backs up the repository's InfluxDB 2 stand-in
(not the real InfluxDB 2, which cannot run here) and uploads to Azurite, both on the host and
reached over the rig's bridge; Azurite through a relay on the container's loopback, because the
backup takes a plain-http emulator URL only on loopback (tests/support/tcp_relay.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.azurite import Azurite
from tests.support.influxdb2 import InfluxDB2StandIn
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig

pytestmark = [pytest.mark.systemd_rig, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
TOKEN = "rig-operator-token"
RELAY_PORT = 10000  # Azurite's port on the container's loopback


@pytest.fixture(scope="module")
def backup_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of homewatt-backup, homewatt-common and their pinned dependencies (Python 3.11)."""
    wheels = tmp_path_factory.mktemp("backup") / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--constraint",
            str(REPO / "constraints.txt"),
            "--wheel-dir",
            str(wheels),
            str(REPO / "common"),
            str(REPO / "backup"),
        ],
        check=True,
        timeout=600,
    )
    return wheels


def install_backup(box: SystemdContainer, wheels: Path) -> None:
    """The README's hand install: a venv in /opt/homewatt, the command on PATH, both units."""
    box.copy_in(wheels, "/opt/homewatt")
    box.run(
        "python3 -m venv /opt/homewatt/venv"
        " && /opt/homewatt/venv/bin/pip install --quiet --no-index"
        " --find-links /opt/homewatt/wheels homewatt-backup"
        " && ln -s /opt/homewatt/venv/bin/homewatt-backup /usr/local/bin/homewatt-backup"
    )
    for unit in ("homewatt-backup.service", "homewatt-backup.timer"):
        box.write_file(f"/etc/systemd/system/{unit}", (REPO / "systemd" / unit).read_text())
    box.systemctl("daemon-reload")


@pytest.fixture
def site(
    systemd_rig: SystemdRig, tmp_path: Path
) -> Iterator[tuple[InfluxDB2StandIn, Azurite, str]]:
    bridge = str(systemd_rig.daemon.network.ip)
    influx = InfluxDB2StandIn(tmp_path / "standin", host=bridge).start()
    azurite = Azurite(tmp_path / "azurite", host=bridge).start()
    try:
        influx.setup(org="homewatt", bucket="homewatt", token=TOKEN)
        yield influx, azurite, azurite.new_container("homewatt")
    finally:
        azurite.stop()
        influx.stop()


def test_the_shipped_backup_service_completes_a_backup_and_the_timer_schedules_it(
    systemd_rig: SystemdRig,
    systemd_container: SystemdContainer,
    backup_wheels: Path,
    site: tuple[InfluxDB2StandIn, Azurite, str],
) -> None:
    """Exactly the shipped sandbox: both credentials by LoadCredential= from 0600 root files,
    the config 0644 root; the run ends with success, the archive is in Azure (Azurite), nothing
    was refused by the sandbox; the timer is active, triggers the service, within the hour."""
    influx, azurite, container = site
    box = systemd_container
    install_backup(box, backup_wheels)
    box.copy_in(REPO / "tests" / "support" / "tcp_relay.py", "/opt/homewatt-test")
    box.run(
        "systemd-run --unit=azurite-relay python3 /opt/homewatt-test/tcp_relay.py"
        f" 127.0.0.1 {RELAY_PORT} {azurite.host} {azurite.port}"
    )
    config = yaml.safe_load((REPO / "backup" / "backup.example.yaml").read_text())
    config["site"] = "rig"
    config["influxdb"]["url"] = influx.url
    config["azure"]["account_url"] = f"http://127.0.0.1:{RELAY_PORT}/devstoreaccount1"
    config["azure"]["container"] = container
    # the clock check is tests/backup/test_unit_under_systemd.py's subject; the host's kernel,
    # which the container shares, may be unsynchronised
    config["clock"] = {"wait_for_sync": False}
    box.write_file("/etc/homewatt/backup.yaml", yaml.safe_dump(config, sort_keys=False))
    credentials = {
        "influxdb-operator-token": TOKEN,
        "azure-sas": azurite.sas(container, "rcwl"),
    }
    for name, value in credentials.items():
        box.write_file(f"/etc/homewatt/credentials/{name}", value + "\n", mode=0o600)
    box.run("chmod 0700 /etc/homewatt/credentials")

    done = box.systemctl("start", "homewatt-backup.service", check=False)
    journal = box.journal("homewatt-backup.service")
    assert done.exit_code == 0, journal
    state = box.unit_properties(
        "homewatt-backup.service", "Result", "ExecMainStatus", "ActiveState"
    )
    assert state == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}
    assert "status=31/SYS" not in journal and "Operation not permitted" not in journal, journal
    blobs = [blob.name for blob in azurite.container(container).list_blobs()]
    assert any(name.startswith("rig/") for name in blobs), (blobs, journal)

    box.systemctl("start", "homewatt-backup.timer")
    timer = box.unit_properties(
        "homewatt-backup.timer", "ActiveState", "Triggers", "NextElapseUSecRealtime"
    )
    assert timer["ActiveState"] == "active"
    assert timer["Triggers"] == "homewatt-backup.service"
    assert timer["NextElapseUSecRealtime"], "scheduled"
