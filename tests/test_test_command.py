"""The test command on a developer's machine: it says first that it needs root and how long it
takes, never stops or disables a service it did not install, keeps its own environment apart
from the user's .venv, and hands what it created in a user's checkout back to the user.

scripts/bootstrap and scripts/test run for real; the system tools they call are stand-ins that
log their arguments (dpkg-query answers from a list, apt-get and systemctl only record): this
machine's packages and services are never touched. The bootstrap runs in the sandbox
(tests/support/sandbox.py, with /usr/sbin overlaid too, where it writes its policy-rc.d).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.contracts import REPO
from tests.support.sandbox import OVERLAID, Sandbox, require_sandbox

DPKG_QUERY = """#!/bin/sh
# stand-in: the packages in $INSTALLED are installed, no other
for last; do :; done
for pkg in $INSTALLED; do [ "$pkg" = "$last" ] && { printf 'install ok installed'; exit 0; }; done
exit 1
"""
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
"""


def bootstrap_packages(tmp_path: Path, installed: list[str]) -> list[str]:
    """Run scripts/bootstrap --packages-only with `installed` already there; the calls made."""
    sandbox = Sandbox(tmp_path / "sandbox", overlaid=(*OVERLAID, "/usr/sbin"))
    for name, text in (("dpkg-query", DPKG_QUERY), ("apt-get", RECORDER), ("systemctl", RECORDER)):
        (sandbox.bin / name).write_text(text)
        (sandbox.bin / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    done = sandbox.run(
        f"{REPO}/scripts/bootstrap --packages-only",
        env={"INSTALLED": " ".join(installed), "CALLS": str(calls)},
    )
    assert done.returncode == 0, done.stderr
    return calls.read_text().splitlines()


EVERYTHING = [
    "victoria-metrics",
    "influxdb",
    "socat",
    "shellcheck",
    "systemd",
    "sqlite3",
    "python3-venv",
    "git",
    "faketime",  # the backup clock tests (a process 400 days ahead)
    "nodejs",
    "npm",
    # the systemd test rig's (docker.io only where no dockerd and containerd are installed)
    "iptables",
    "iproute2",
    "debootstrap",
    "docker.io",
]


@pytest.mark.integration
def test_a_service_the_user_installed_is_neither_stopped_nor_disabled(tmp_path: Path) -> None:
    require_sandbox()
    calls = bootstrap_packages(tmp_path, [p for p in EVERYTHING if p != "socat"])
    assert [c for c in calls if c.startswith("apt-get") and " install " in c] == [
        "apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends socat"
    ]
    assert not [c for c in calls if c.startswith("systemctl")]


@pytest.mark.integration
def test_a_service_it_installs_itself_is_kept_off(tmp_path: Path) -> None:
    require_sandbox()
    calls = bootstrap_packages(tmp_path, [p for p in EVERYTHING if p != "victoria-metrics"])
    assert [c for c in calls if c.startswith("systemctl")] == [
        "systemctl disable --now victoria-metrics"
    ]


def test_its_environment_is_not_the_users_venv() -> None:
    for script in ("scripts/bootstrap", "scripts/test", ".ci/run"):
        text = (REPO / script).read_text()
        assert not re.search(r"\.venv/|venv \.venv\b", text), script
    assert (
        "make_venv .tools/venv requirements-dev.txt constraints.txt"
        in (REPO / "scripts" / "bootstrap").read_text()
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files back needs root")
def test_it_says_first_that_it_needs_root_and_hands_a_users_checkout_back(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "test", checkout / "scripts" / "test")
    bootstrap = checkout / "scripts" / "bootstrap"  # stands in: makes what the real one makes
    bootstrap.write_text('#!/bin/sh\nmkdir -p "$(dirname "$0")/../.tools/venv/lib"\n')
    bootstrap.chmod(0o755)
    python = checkout / ".tools" / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        '#!/bin/sh\nmkdir -p .pytest_cache/v && echo "$@" > .pytest_cache/v/args\nexit 5\n'
    )
    python.chmod(0o755)
    for path in [checkout, *checkout.rglob("*")]:
        os.chown(path, 4242, 4242, follow_symlinks=False)
    done = subprocess.run(
        [str(checkout / "scripts" / "test"), "-k", "outbox"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 5, done.stderr  # pytest's status comes through
    first = done.stderr.splitlines()[0]
    assert first.startswith("[test] needs root (apt-get;") and "min" in first, first
    assert (checkout / ".pytest_cache" / "v" / "args").read_text() == "-m pytest -k outbox\n"
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in [checkout, *checkout.rglob("*")]}
    assert owners == {(4242, 4242)}
