"""The shipped backup service and timer, started for real: systemd/homewatt-backup.{service,timer}
unchanged, homewatt-backup installed from wheels into a venv as on a Pi, in one bookworm systemd
container of the test rig that serves the module (booted and installed once; each test starts
from an empty state directory and its own config and credentials).

1. InfluxDB 1.6.7 on the host (listening on the rig's bridge address; Debian's `influxd`
   binary copied in for `influxd backup -portable`):
   - ordering: with systemd-time-wait-sync enabled, a started backup waits (a queued job,
     nothing run) until the clock is reported synchronised (`/run/systemd/timesync/
     synchronized`, the file timesyncd writes; the test writes it);
   - the sandbox lets the clock check ask the kernel (adjtimex; `ProtectClock=` would refuse
     it and the check could not tell): on the test machines, which run no NTP client, the
     kernel says "not synchronised", so the run refuses with its one line, exit 1, and writes
     no health point;
   - with `clock.wait_for_sync: false` the same unit makes a daily full backup (influxd under
     the sandbox) and writes its health point.
   systemd-time-wait-sync refuses to run in a container and without CAP_SYS_TIME
   (ConditionVirtualization=!container, ConditionCapability=CAP_SYS_TIME): a drop-in resets
   those conditions here; on a Pi they hold. A host whose kernel clock is synchronised (an NTP
   client running) cannot show the refusal: the test then checks that the run goes through.
   This test runs first: once time-sync.target is reached it stays reached in the container.
2. The InfluxDB 2 engine backs up the repository's InfluxDB 2 stand-in (not the real InfluxDB 2,
   which cannot run here) and uploads to Azurite, both on the host and reached over the rig's
   bridge; Azurite through a relay on the container's loopback, because the backup takes a
   plain-http emulator URL only on loopback (tests/support/tcp_relay.py). The timer is started
   and schedules the service.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from homewatt_common import clock as shared_clock
from tests.backup.conftest import DB, sample_lines
from tests.backup.test_influxdb2_http import create_bucket
from tests.support.azurite import Azurite
from tests.support.homewatt_install import install_app
from tests.support.influxdb1 import InfluxDB1
from tests.support.influxdb2 import InfluxDB2StandIn
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
TOKEN = "rig-operator-token"
RELAY_PORT = 10000  # Azurite's port on the container's loopback


@pytest.fixture(scope="module")
def box(systemd_rig: SystemdRig, homewatt_wheels: Path) -> Iterator[SystemdContainer]:
    """The README's hand install (a venv in /opt/homewatt, the command on PATH, the service and
    the timer), plus InfluxDB 1.x's `influxd` (the backup runs `influxd backup -portable`
    against the RPC)."""
    container = systemd_rig.boot("bookworm", purpose="backup")
    try:
        install_app(
            container, homewatt_wheels, "homewatt-backup", units=[UNIT, "homewatt-backup.timer"]
        )
        influxd = shutil.which("influxd")
        assert influxd is not None, "influxd is missing: scripts/bootstrap installs influxdb"
        container.write_file("/usr/local/bin/influxd", Path(influxd).read_bytes(), mode=0o755)
        yield container
    finally:
        container.stop(timeout=60)


@pytest.fixture
def fresh_box(box: SystemdContainer) -> SystemdContainer:
    """The module's container with the backup stopped and no state, config or credentials left
    by an earlier test."""
    box.systemctl("stop", UNIT, check=False)
    box.systemctl("reset-failed", UNIT, check=False)
    box.run(f"rm -rf {STATE} /var/lib/homewatt-backup /etc/homewatt")
    return box


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


@pytest.fixture
def site(
    systemd_rig: SystemdRig, tmp_path: Path
) -> Iterator[tuple[InfluxDB2StandIn, Azurite, str]]:
    bridge = str(systemd_rig.daemon.network.ip)
    influx = InfluxDB2StandIn(tmp_path / "standin", host=bridge).start()
    azurite = Azurite(tmp_path / "azurite", host=bridge).start()
    try:
        influx.setup(org="homewatt", bucket="homewatt", token=TOKEN)
        # the example's extra bucket, as the influxdb role creates it on a Pi
        create_bucket(influx, "homewatt_longterm", TOKEN)
        yield influx, azurite, azurite.new_container("homewatt")
    finally:
        azurite.stop()
        influx.stop()


def test_the_shipped_unit_waits_for_time_sync_refuses_an_unsynced_clock_and_backs_up(
    systemd_rig: SystemdRig, fresh_box: SystemdContainer, tmp_path: Path
) -> None:
    box = fresh_box
    synced = shared_clock.clock_synchronized()
    influx = InfluxDB1(tmp_path / "influxdb", host=str(systemd_rig.daemon.network.ip)).start()
    try:
        influx.create_database(DB)
        influx.write(DB, sample_lines(int(datetime.now(UTC).timestamp()) - 600, 20))
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


def test_the_shipped_backup_service_completes_a_backup_and_the_timer_schedules_it(
    fresh_box: SystemdContainer, site: tuple[InfluxDB2StandIn, Azurite, str]
) -> None:
    """Exactly the shipped sandbox: both credentials by LoadCredential= from 0600 root files,
    the config 0644 root; the run ends with success, the archive is in Azure (Azurite), nothing
    was refused by the sandbox; the timer is active, triggers the service, within the hour."""
    influx, azurite, container = site
    box = fresh_box
    since = box.journal_cursor()  # the first test's runs are in this container's journal too
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
    # the clock check is the first test's subject; the host's kernel,
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
    journal = box.journal("homewatt-backup.service", after_cursor=since)
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
