"""The shipped backup unit, started for real: systemd/homewatt-backup.service unchanged, the
backup installed from wheels into a venv as on a Pi, in a bookworm systemd container of the
test rig, backing up a real InfluxDB 1.6.7 on the host (listening on the rig's bridge address;
Debian's `influxd` binary copied in for `influxd backup -portable`).

What it proves, in one boot:
- ordering: with systemd-time-wait-sync enabled, a started backup waits (a queued job, nothing
  run) until the clock is reported synchronised (`/run/systemd/timesync/synchronized`, the file
  timesyncd writes; the test writes it);
- the sandbox lets the clock check ask the kernel (adjtimex; `ProtectClock=` would refuse it
  and the check could not tell): on the test machines, which run no NTP client, the kernel says
  "not synchronised", so the run refuses with its one line, exit 1, and writes no health point;
- with `clock.wait_for_sync: false` the same unit makes a daily full backup (influxd under the
  sandbox) and writes its health point.
systemd-time-wait-sync refuses to run in a container and without CAP_SYS_TIME
(ConditionVirtualization=!container, ConditionCapability=CAP_SYS_TIME): a drop-in resets those
conditions here; on a Pi they hold. A host whose kernel clock is synchronised (an NTP client
running) cannot show the refusal: the test then checks that the run goes through."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from homewatt_common import clock as shared_clock
from tests.backup.conftest import DB, sample_lines
from tests.support.influxdb1 import InfluxDB1
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig

pytestmark = [pytest.mark.systemd_rig, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
UNIT = "homewatt-backup.service"
STATE = "/var/lib/private/homewatt-backup"  # StateDirectory= with DynamicUser=yes
REFUSAL = "homewatt-backup: error: the system clock is not synchronised"
WAIT_SYNC_DROP_IN = """# test rig only: run in a container without CAP_SYS_TIME, as it does on a Pi
[Unit]
ConditionVirtualization=
"""


@pytest.fixture(scope="module")
def backup_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the backup, homewatt-common and their pinned dependencies, built on the host
    (Python 3.11 as in bookworm), installed with --no-index as the backup role will do."""
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
    """The README's hand install (a venv in /opt/homewatt, the command on PATH, the unit), plus
    InfluxDB 1.x's `influxd` (the backup runs `influxd backup -portable` against the RPC)."""
    box.copy_in(wheels, "/opt/homewatt")
    box.run(
        "python3 -m venv /opt/homewatt/venv"
        " && /opt/homewatt/venv/bin/pip install --quiet --no-index"
        " --find-links /opt/homewatt/wheels homewatt-backup"
        " && ln -s /opt/homewatt/venv/bin/homewatt-backup /usr/local/bin/homewatt-backup"
    )
    influxd = shutil.which("influxd")
    assert influxd is not None, "influxd is missing: scripts/bootstrap installs influxdb"
    box.write_file("/usr/local/bin/influxd", Path(influxd).read_bytes(), mode=0o755)
    unit = (REPO / "systemd" / "homewatt-backup.service").read_text()
    box.write_file(f"/etc/systemd/system/{UNIT}", unit)
    box.systemctl("daemon-reload")


def site_config(influx: InfluxDB1, wait_for_sync: bool) -> str:
    """backup.example.yaml as shipped, its influxdb: section for InfluxDB 1.x on the host and
    without azure: (backups stay local)."""
    config = yaml.safe_load((REPO / "backup" / "backup.example.yaml").read_text())
    config["site"] = "rig"
    config["influxdb"] = {
        "engine": "influxdb1",
        "url": influx.url,
        "database": DB,
        "rpc_address": influx.rpc_address,
    }
    del config["azure"]
    config["clock"] = {"wait_for_sync": wait_for_sync}
    return yaml.safe_dump(config, sort_keys=False)


def health_rows(influx: InfluxDB1) -> list[list[object]]:
    results = influx.query("SELECT ok, kind FROM homewatt_backup", db=DB)[0]
    return [row[1:] for s in results.get("series", []) for row in s["values"]]


def wait_until_done(box: SystemdContainer, timeout: float = 120) -> dict[str, str]:
    """The oneshot's state once it is neither queued nor running."""
    deadline = time.monotonic() + timeout
    while True:
        state = box.unit_properties(UNIT, "ActiveState", "Result", "ExecMainStatus")
        jobs = box.systemctl("list-jobs", "--no-legend").stdout
        if UNIT not in jobs and state["ActiveState"] in ("inactive", "failed"):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{UNIT} still queued or running: {state}\n{box.journal(UNIT)}")
        time.sleep(0.5)


def archives(box: SystemdContainer) -> list[str]:
    found = box.run(f"find {STATE}/archives -name '*.tar' 2>/dev/null || true").stdout
    return sorted(Path(line).name for line in found.split())


def test_the_shipped_unit_waits_for_time_sync_refuses_an_unsynced_clock_and_backs_up(
    systemd_rig: SystemdRig,
    systemd_container: SystemdContainer,
    backup_wheels: Path,
    tmp_path: Path,
) -> None:
    box = systemd_container
    synced = shared_clock.clock_synchronized()
    influx = InfluxDB1(tmp_path / "influxdb", host=str(systemd_rig.daemon.network.ip)).start()
    try:
        influx.create_database(DB)
        influx.write(DB, sample_lines(int(datetime.now(UTC).timestamp()) - 600, 20))
        install_backup(box, backup_wheels)
        box.write_file("/etc/homewatt/backup.yaml", site_config(influx, wait_for_sync=True))
        # the unit as shipped names both credentials; each source must exist to start (this
        # site needs neither: InfluxDB 1.x without auth, no Azure)
        for name in ("influxdb-operator-token", "azure-sas"):
            box.write_file(f"/etc/homewatt/credentials/{name}", "unused\n", mode=0o600)

        # 1. ordering: queued behind time-sync.target until the clock is reported synchronised
        box.write_file(
            "/etc/systemd/system/systemd-time-wait-sync.service.d/rig.conf", WAIT_SYNC_DROP_IN
        )
        box.systemctl("daemon-reload")
        box.systemctl("start", "--no-block", "systemd-time-wait-sync.service")
        box.systemctl("start", "--no-block", UNIT)
        if synced is not True:
            time.sleep(3)
            jobs = box.systemctl("list-jobs", "--no-legend").stdout
            assert any(UNIT in line and "waiting" in line for line in jobs.splitlines()), jobs
            assert box.unit_properties(UNIT, "ActiveState")["ActiveState"] == "inactive"
            assert archives(box) == []
            box.run("mkdir -p /run/systemd/timesync && touch /run/systemd/timesync/synchronized")
        state = wait_until_done(box)
        journal = box.journal(UNIT)
        assert "status=31/SYS" not in journal, journal

        # 2. the app's own check, through the sandbox: the kernel says "not synchronised"
        if synced is not True:
            assert state["Result"] == "exit-code" and state["ExecMainStatus"] == "1", journal
            refusals = [line for line in journal.splitlines() if REFUSAL in line]
            assert len(refusals) == 1, journal
            assert "cannot tell whether the system clock" not in journal
            assert health_rows(influx) == []
            assert archives(box) == []
            box.write_file("/etc/homewatt/backup.yaml", site_config(influx, wait_for_sync=False))
            box.systemctl("reset-failed", UNIT)
            box.systemctl("start", UNIT, check=False)
            state = wait_until_done(box)
            journal = box.journal(UNIT)

        # 3. a daily full backup, by influxd under the sandbox, and its health point
        assert state["Result"] == "success", f"{state}\n{journal}"
        [archive] = archives(box)
        assert archive.endswith("Z.tar")
        assert box.run(f"test -f {STATE}/archives/rig/daily/{archive}", check=False).exit_code == 0
        assert health_rows(influx) == [[1, "daily"]]
    finally:
        influx.stop()
