"""Fixtures for the Ansible suite: Molecule against the systemd test rig's daemon and images.

Molecule's docker driver talks to the rig's private dockerd (DOCKER_HOST is its socket, from
`SystemdRig.daemon.env()`); its instances run `images.role_image(...)`, the rig's systemd
image plus the roles' packages; the role scenarios that need the stand-ins get
`images.standin_archives(...)` in their environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ansible import images
from tests.support.systemd_rig import SystemdRig

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "ansible" / "bin"  # scripts/bootstrap builds it
CAP_SYS_PTRACE = 19  # linux/capability.h
LOG_DAYS = 1  # Molecule's logs of older sessions are removed


def can_grant_sys_ptrace() -> bool:
    """Whether this process may give containers CAP_SYS_PTRACE (it is in our bounding set):
    a test container, like fresh-run's, may lack it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    return False


# The long scenarios (site on two releases with rotation; later the collector and backup
# roles end to end) take 10-25 min each on 2 cores: the default test command leaves them out so
# that CI stays under an hour, and says so in the skip reason. HOMEWATT_TEST_LONG=1 runs them.
LONG_SCENARIOS = os.environ.get("HOMEWATT_TEST_LONG") == "1"
long_scenario = pytest.mark.skipif(
    not LONG_SCENARIOS,
    reason="long Molecule scenario, not in the default test command (CI time): run it with "
    "HOMEWATT_TEST_LONG=1 ./scripts/test tests/ansible",
)


# Where that is missing the stand-in scenarios still run; the verifiers skip (molecule/conftest.py)
# and the site test leaves out only what needs `docker exec` into a nested container.
NO_PTRACE_REASON = (
    "this test process lacks CAP_SYS_PTRACE in its bounding set (a container without it, like "
    "fresh-run's), so no Molecule instance can have it: the instance's runc then cannot open "
    "/proc/<pid>/ns/* of a nested container whose process runs as another uid (influxd 1000, "
    "Grafana 472; the kernel's ptrace access check), so `docker exec` and Docker's "
    "health checks fail in them with 'setns process: exit status 1'"
)


@dataclass(frozen=True)
class MoleculeRun:
    """One `molecule` command's exit code, its whole output and how long it took (s)."""

    scenario: str
    returncode: int
    output: str
    seconds: float


@dataclass
class Molecule:
    """Runs Molecule from the repository root against the rig's daemon and images."""

    env: dict[str, str]
    log_dir: Path

    def run(
        self, scenario: str, *args: str, timeout: float, env: dict[str, str] | None = None
    ) -> MoleculeRun:
        """`molecule ARGS[0] -s scenario ARGS[1:]` (put ansible-playbook's after a "--").

        Past `timeout` (s) Molecule and everything it started (ansible-playbook, its workers)
        are killed as one process group, then TimeoutExpired is raised."""
        started = time.monotonic()
        with subprocess.Popen(
            ["molecule", args[0], "-s", scenario, *args[1:]],
            cwd=REPO,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        seconds = time.monotonic() - started
        output = done.stdout + done.stderr
        log = (
            self.log_dir
            / f"molecule-{scenario}-{len(list(self.log_dir.iterdir())):02}-{args[0]}.log"
        )
        log.write_text(output)
        print(
            f"molecule {' '.join(args)} -s {scenario}: "
            f"rc={done.returncode} in {seconds:.0f} s ({log})"
        )
        return MoleculeRun(scenario, done.returncode, output, seconds)


@pytest.fixture(scope="session")
def standin_images(systemd_rig: SystemdRig) -> dict[str, str]:
    """The InfluxDB 2 and Grafana stand-in images, saved as the tars the roles load; their tags
    and folder as Molecule's environment."""
    return images.standin_archives(systemd_rig)


@pytest.fixture(scope="session")
def molecule(systemd_rig: SystemdRig) -> Molecule:
    """Molecule from .tools/ansible, its driver on the rig's dockerd, bookworm instances."""
    if not (TOOLS_BIN / "molecule").exists():
        pytest.fail(
            f"{TOOLS_BIN}/molecule is missing: run scripts/bootstrap (the test command does)"
        )
    env = {
        **systemd_rig.daemon.env(),
        "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOMEWATT_MOLECULE_IMAGE_BOOKWORM": images.role_image(systemd_rig, "bookworm"),
        # A capability the instance gets in place of SYS_PTRACE where we cannot grant that.
        "HOMEWATT_MOLECULE_PTRACE_CAP": "SYS_PTRACE" if can_grant_sys_ptrace() else "NET_ADMIN",
        # Each task's duration in the logs (where a scenario's time goes).
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    # Beside the rig's own logs, not in pytest's temp dirs (which other sessions clean up): one
    # folder per session, since two sessions of one checkout share the rig (say, the long site
    # scenario beside the role scenarios); those of sessions over a day old are removed.
    logs = systemd_rig.daemon.log_dir / "molecule"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.iterdir():
        if time.time() - old.stat().st_mtime < LOG_DAYS * 86400:
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    log_dir = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log_dir.mkdir()
    return Molecule(env=env, log_dir=log_dir)
