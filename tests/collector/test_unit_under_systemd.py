"""The shipped collector unit, started for real: systemd/homewatt-collector@.service unchanged,
the collector installed from wheels into a venv as on a Pi, the example config (demo source,
token by LoadCredential=, clock check on), in a bookworm systemd container of the test rig,
delivering to VictoriaMetrics on the host (listening on the rig's bridge address)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig
from tests.support.victoria import VictoriaMetrics

pytestmark = [pytest.mark.systemd_rig, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
UNIT = "homewatt-collector@main.service"


@pytest.fixture(scope="module")
def collector_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the collector, homewatt-common and their pinned dependencies, built on the host
    (Python 3.11 as in bookworm), installed with --no-index as the collector role will do."""
    wheels = tmp_path_factory.mktemp("collector") / "wheels"
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
            str(REPO / "collector"),
        ],
        check=True,
        timeout=600,
    )
    return wheels


def install_collector(box: SystemdContainer, wheels: Path) -> None:
    """The README's hand install: a venv in /opt/homewatt, the command on PATH, the unit."""
    box.copy_in(wheels, "/opt/homewatt")
    box.run(
        "python3 -m venv /opt/homewatt/venv"
        " && /opt/homewatt/venv/bin/pip install --quiet --no-index"
        " --find-links /opt/homewatt/wheels homewatt-collector"
        " && ln -s /opt/homewatt/venv/bin/homewatt-collector /usr/local/bin/homewatt-collector"
    )
    unit = (REPO / "systemd" / "homewatt-collector@.service").read_text()
    box.write_file("/etc/systemd/system/homewatt-collector@.service", unit)
    box.systemctl("daemon-reload")


def example_config(sink_url: str) -> str:
    """collector.example.yaml as shipped (token as a systemd credential), its sink on the host."""
    config = yaml.safe_load((REPO / "collector" / "collector.example.yaml").read_text())
    config["site"] = "rig"
    config["sinks"][0]["url"] = sink_url
    return yaml.safe_dump(config, sort_keys=False)


def credential_sources() -> list[str]:
    """The files the shipped unit's LoadCredential= lines read (they must exist to start)."""
    unit = (REPO / "systemd" / "homewatt-collector@.service").read_text()
    return re.findall(r"^LoadCredential=[^:\s]+:(\S+)$", unit, re.MULTILINE)


class ShippedUnitFailed(AssertionError):
    """The unit itself failed (killed, not running, nothing delivered); anything else that
    goes wrong (the rig, pip, the sink) is a plain error and never counts as the xfail."""


@pytest.mark.xfail(
    strict=True,
    raises=ShippedUnitFailed,
    reason="issue 10 item 1: the shipped unit's SystemCallFilter=/ProtectClock= kill the"
    " collector with SIGSYS at its first adjtimex() (the NTP-sync check)",
)
def test_the_shipped_unit_runs_the_collector_and_delivers_samples(
    systemd_rig: SystemdRig,
    systemd_container: SystemdContainer,
    collector_wheels: Path,
    tmp_path: Path,
) -> None:
    box = systemd_container
    victoria = VictoriaMetrics(tmp_path / "victoria", host=str(systemd_rig.daemon.network.ip))
    victoria.start()
    try:
        install_collector(box, collector_wheels)
        box.write_file("/etc/homewatt/collector/main.yaml", example_config(victoria.url))
        for source in credential_sources():
            box.write_file(source, "rig-token", mode=0o600)
        box.systemctl("start", "--no-block", UNIT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            restarts = int(box.unit_properties(UNIT, "NRestarts")["NRestarts"])
            if restarts >= 1 or victoria.export('{site="rig"}'):
                break
            time.sleep(1)
        state = box.unit_properties(UNIT, "ActiveState", "SubState", "NRestarts", "Result")
        journal = box.journal(UNIT)
        if "status=31/SYS" in journal:
            raise ShippedUnitFailed(f"killed by its own syscall filter (SIGSYS):\n{journal}")
        if state["ActiveState"] != "active" or state["NRestarts"] != "0":
            raise ShippedUnitFailed(f"not running: {state}\n{journal}")
        if not victoria.export('{site="rig"}'):
            raise ShippedUnitFailed(f"running, but no sample arrived:\n{journal}")
    finally:
        victoria.stop()
