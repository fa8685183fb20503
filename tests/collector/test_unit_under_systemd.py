"""The shipped collector unit, started for real: systemd/homewatt-collector@.service unchanged
(and the per-instance drop-ins of systemd/collector-instance/ where an instance needs them),
the collector installed from wheels into a venv as on a Pi, in a bookworm systemd container of
the test rig, delivering to VictoriaMetrics on the host (on the rig's bridge address).

One container serves the module (booting and installing cost about 40 s); each test runs its
own instance (`homewatt-collector@<name>`, `site=<name>`) and stops it.

How the tests meet the clock check (homewatt_common/clock.py): the container shares the
host's kernel, whose NTP state a container cannot change (and must not: the machine is shared).
- The kernel's answer, through exactly the shipped sandbox, is compared with what the real
  systemd-timedated tells root (`timedatectl`): both read the same kernel.
- The fallbacks are reached with a test drop-in `ProtectClock=yes` (adjtimex refused, as in a
  stricter sandbox) and timedated masked; their state is then set the way systemd-timesyncd
  sets it: `/run/systemd/timesync/` (its RuntimeDirectory=) present, `synchronized` in it or
  not; neither: "cannot tell".
- The other tests set `clock.wait_for_sync: false` (the host's kernel may be unsynchronised).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.homewatt_install import install_app
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig
from tests.support.victoria import VictoriaMetrics

pytestmark = [pytest.mark.systemd_rig, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
DROP_INS = REPO / "systemd" / "collector-instance"
FAULTINJECT = REPO / "tests" / "support" / "faultinject"


def install_collector(box: SystemdContainer, wheels: Path) -> None:
    """The README's hand install of the collector and its unit, plus the fault injector."""
    install_app(box, wheels, "homewatt-collector", units=["homewatt-collector@.service"])
    box.copy_in(FAULTINJECT, "/opt/homewatt-test")


@pytest.fixture(scope="module")
def box(systemd_rig: SystemdRig, homewatt_wheels: Path) -> Iterator[SystemdContainer]:
    container = systemd_rig.boot("bookworm", purpose="collector")
    try:
        install_collector(container, homewatt_wheels)
        yield container
    finally:
        container.stop(timeout=60)


@pytest.fixture(scope="module")
def victoria(
    systemd_rig: SystemdRig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(
        tmp_path_factory.mktemp("victoria"), host=str(systemd_rig.daemon.network.ip)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


KERNEL_REFUSED = "[Service]\nProtectClock=yes\n"  # test drop-in: reach the fallbacks


def set_clock(box: SystemdContainer, state: str) -> None:
    """`synced`, `not synced` or `cannot tell` as systemd-timesyncd would leave it, timedated
    masked; `timedated`: the real timedated answers (the kernel's state), no timesyncd."""
    if state == "timedated":
        box.run("systemctl unmask systemd-timedated.service && rm -rf /run/systemd/timesync")
        return
    box.run("systemctl mask systemd-timedated.service && systemctl stop systemd-timedated.service")
    box.run("rm -rf /run/systemd/timesync")
    if state in ("synced", "not synced"):
        box.run("install -d -m 0755 /run/systemd/timesync")
    if state == "synced":
        box.run("touch /run/systemd/timesync/synchronized")


def instance_config(
    victoria: VictoriaMetrics, name: str, *, token: bool = False, clock: bool = False
) -> str:
    """collector.example.yaml as shipped (demo source), site=<name>, its sink on the host;
    without `token` the sink is anonymous (VictoriaMetrics takes no token), without `clock`
    `clock.wait_for_sync: false`."""
    config = yaml.safe_load((REPO / "collector" / "collector.example.yaml").read_text())
    config["site"] = name
    sink = config["sinks"][0]
    sink["url"] = victoria.url
    if not token:
        del sink["token_credential"]
        sink["anonymous"] = True
    assert config["clock"]["wait_for_sync"] is True
    config["clock"]["wait_for_sync"] = clock
    return yaml.safe_dump(config, sort_keys=False)


def write_instance(
    box: SystemdContainer,
    victoria: VictoriaMetrics,
    name: str,
    *,
    token: bool = False,
    clock: bool = False,
    drop_ins: dict[str, str] | None = None,
) -> str:
    """The config /etc/homewatt/collector/<name>.yaml (0644 root) and drop-ins; the unit name."""
    box.write_file(
        f"/etc/homewatt/collector/{name}.yaml",
        instance_config(victoria, name, token=token, clock=clock),
    )
    for file, text in (drop_ins or {}).items():
        box.write_file(f"/etc/systemd/system/homewatt-collector@{name}.service.d/{file}", text)
    box.systemctl("daemon-reload")
    return f"homewatt-collector@{name}.service"


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, box: SystemdContainer, unit: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    state = box.unit_properties(
        unit, "ActiveState", "SubState", "NRestarts", "Result", "StatusText"
    )
    raise AssertionError(f"no {what} after {timeout:.0f} s: {state}\n{box.journal(unit)}")


def samples(victoria: VictoriaMetrics, site: str, metric: str = "electricity_power_w") -> list[int]:
    return [ts for ts, _value, _labels in victoria.samples(metric, site=site)]


def properties(box: SystemdContainer, unit: str) -> dict[str, str]:
    return box.unit_properties(
        unit, "ActiveState", "SubState", "NRestarts", "Result", "StatusText", "MainPID"
    )


def assert_no_sandbox_refusal(journal: str) -> None:
    assert "status=31/SYS" not in journal, "killed by its own syscall filter"
    assert "Operation not permitted" not in journal and "Traceback" not in journal, journal


def test_the_shipped_unit_runs_a_demo_instance_without_drop_ins_survives_sigkill_and_stops_cleanly(
    box: SystemdContainer, victoria: VictoriaMetrics
) -> None:
    """Exactly the shipped sandbox, no drop-in (no serial port, no token file anywhere), the
    config 0644 root in the 0755 /etc/homewatt: READY, samples at the host's server, a
    `systemctl kill -s KILL` restarts it and delivery goes on, `systemctl stop` ends it
    cleanly (exit 0, the outbox flushed)."""
    box.run("rm -rf /etc/homewatt/credentials")
    unit = write_instance(box, victoria, "demo")
    assert box.run(
        "stat -c '%a %U:%G' /etc/homewatt /etc/homewatt/collector/demo.yaml"
    ).stdout.split("\n")[:2] == ["755 root:root", "644 root:root"]

    box.systemctl("start", unit)  # returns at READY=1
    wait_for("sample", lambda: len(samples(victoria, "demo")) >= 3, 30, box, unit)
    state = properties(box, unit)
    assert (state["ActiveState"], state["NRestarts"]) == ("active", "0"), state
    assert state["StatusText"] == "collecting every 1 s"
    assert samples(victoria, "demo", "homewatt_health_read_errors"), "health samples too"
    assert_no_sandbox_refusal(box.journal(unit))

    killed_at = int(time.time())
    box.systemctl("kill", "--signal=KILL", unit)
    wait_for(
        "restart after SIGKILL",
        lambda: (
            properties(box, unit)["NRestarts"] == "1"
            and properties(box, unit)["ActiveState"] == "active"
        ),
        90,  # RestartSec=5s, then Python's start: up to 25 s seen in the rig under load
        box,
        unit,
    )
    wait_for(
        "sample after the restart",
        lambda: max(samples(victoria, "demo")) > killed_at + 2,
        30,
        box,
        unit,
    )

    box.systemctl("stop", unit)
    state = properties(box, unit)
    assert (state["ActiveState"], state["Result"]) == ("inactive", "success"), state
    journal = box.journal(unit)
    assert "stopped; sink local: 0 samples pending in the outbox" in journal
    assert_no_sandbox_refusal(journal.split("status=9/KILL")[-1])


def test_the_token_drop_in_hands_over_the_root_only_token_file(
    box: SystemdContainer, victoria: VictoriaMetrics
) -> None:
    """The example config as shipped (token_credential: influxdb-write-token) with the README's
    drop-in; the token file 0600 root in the 0700 /etc/homewatt/credentials. The collector reads
    it from $CREDENTIALS_DIRECTORY (without it, it stops at start with a config error)."""
    box.write_file("/etc/homewatt/credentials/influxdb-write-token", "rig-token\n", mode=0o600)
    box.run("chmod 0700 /etc/homewatt/credentials")
    unit = write_instance(
        box,
        victoria,
        "token",
        token=True,
        drop_ins={
            "influxdb-write-token.conf": (DROP_INS / "influxdb-write-token.conf").read_text()
        },
    )
    credentials = "/etc/homewatt/credentials"
    modes = box.run(
        f"stat -c '%a %U:%G' {credentials} {credentials}/influxdb-write-token"
    ).stdout.split("\n")[:2]
    assert modes == ["700 root:root", "600 root:root"]
    try:
        box.systemctl("start", unit)
        wait_for("sample", lambda: len(samples(victoria, "token")) >= 2, 30, box, unit)
        assert properties(box, unit)["NRestarts"] == "0"
        assert_no_sandbox_refusal(box.journal(unit))
    finally:
        box.systemctl("stop", unit)


def test_waiting_for_ntp_longer_than_the_start_timeout_keeps_the_unit_up_and_says_so(
    box: SystemdContainer, victoria: VictoriaMetrics
) -> None:
    """Not synchronised yet (timesyncd runs, no flag file): READY at once with a STATUS saying
    it waits, the watchdog fed meanwhile (a test drop-in shortens both: TimeoutStartSec=40s,
    which leaves room for Python's start on a loaded machine (25 s seen in the rig under load),
    and WatchdogSec=4s, and refuses adjtimex to reach the fallback), no sample taken; the flag
    appears and samples follow."""
    set_clock(box, "not synced")
    timing = "TimeoutStartSec=40s\nWatchdogSec=4s\n"
    unit = write_instance(
        box, victoria, "ntpwait", clock=True, drop_ins={"test.conf": KERNEL_REFUSED + timing}
    )
    try:
        box.systemctl("start", unit)
        time.sleep(45)  # after READY: longer than TimeoutStartSec= and WatchdogSec=
        state = properties(box, unit)
        assert (state["ActiveState"], state["NRestarts"]) == ("active", "0"), state
        assert state["StatusText"] == "waiting for the system clock to be synchronised (NTP)"
        assert samples(victoria, "ntpwait") == []
        set_clock(box, "synced")
        wait_for("sample", lambda: bool(samples(victoria, "ntpwait")), 30, box, unit)
        journal = box.journal(unit)
        assert (
            "says systemd-timesyncd (no /run/systemd/timesync/synchronized yet), before taking"
            " samples" in journal
        )
        assert "system clock synchronised (systemd-timesyncd" in journal
        assert properties(box, unit)["NRestarts"] == "0"
    finally:
        box.systemctl("stop", unit)


def test_when_nothing_can_tell_the_clock_state_it_says_so_and_collects(
    box: SystemdContainer, victoria: VictoriaMetrics
) -> None:
    set_clock(box, "cannot tell")
    unit = write_instance(
        box, victoria, "cannottell", clock=True, drop_ins={"test.conf": KERNEL_REFUSED}
    )
    try:
        box.systemctl("start", unit)
        wait_for("sample", lambda: bool(samples(victoria, "cannottell")), 30, box, unit)
        assert (
            "cannot tell whether the system clock is synchronised (adjtimex refused (EPERM: a"
            " sandbox?); timedated does not answer and systemd-timesyncd does not run); taking"
            " samples anyway" in box.journal(unit)
        )
    finally:
        box.systemctl("stop", unit)


def test_the_shipped_sandbox_lets_the_collector_read_the_kernels_ntp_state(
    box: SystemdContainer, victoria: VictoriaMetrics
) -> None:
    """Exactly the shipped sandbox and config: the collector's answer (adjtimex) is the one
    systemd-timedated gives root, read from the same kernel (the host's: synchronised or not,
    whichever it is when the test runs)."""
    set_clock(box, "timedated")
    expected = box.run("timedatectl show --property=NTPSynchronized --value").stdout.strip()
    assert expected in ("yes", "no")
    unit = write_instance(box, victoria, "kernel", clock=True)
    try:
        box.systemctl("start", unit)
        if expected == "yes":
            wait_for("sample", lambda: bool(samples(victoria, "kernel")), 30, box, unit)
            line = "system clock synchronised (the kernel (adjtimex))"
        else:
            line = (
                "waiting for the system clock to be synchronised (NTP), says the kernel"
                " (adjtimex), before taking samples"
            )
        wait_for("the kernel's answer", lambda: line in box.journal(unit), 30, box, unit)
        state = properties(box, unit)
        assert (state["ActiveState"], state["NRestarts"]) == ("active", "0"), state
        assert_no_sandbox_refusal(box.journal(unit))
    finally:
        box.systemctl("stop", unit)


def test_a_hung_loop_is_killed_by_the_watchdog_and_restarted(
    box: SystemdContainer, victoria: VictoriaMetrics
) -> None:
    """The demo source's read hangs at the 4th cycle (injected into the real process, as a
    stuck serial call would); the test drop-in shortens WatchdogSec= to 4 s."""
    faults = [
        {
            "target": "homewatt_collector.sources.demo.source:DemoSource.read",
            "hang": 3600,
            "after": 3,
        }
    ]
    box.write_file("/opt/homewatt-test/faults.json", json.dumps(faults))
    unit = write_instance(
        box,
        victoria,
        "hung",
        drop_ins={
            "hang.conf": "[Service]\nWatchdogSec=4s\n"
            "Environment=PYTHONPATH=/opt/homewatt-test/faultinject"
            " HOMEWATT_TEST_FAULTS_FILE=/opt/homewatt-test/faults.json\n"
        },
    )
    try:
        box.systemctl("start", unit)
        wait_for(
            "watchdog restart",
            lambda: int(properties(box, unit)["NRestarts"]) >= 1,
            40,
            box,
            unit,
        )
        journal = box.journal(unit)
        assert "Watchdog timeout (limit 4s)!" in journal, journal
        assert samples(victoria, "hung"), "it collected before it hung"
    finally:
        box.systemctl("stop", unit)
