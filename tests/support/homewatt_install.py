"""The apps installed into a systemd container of the test rig as on a Pi: wheels built once on
the host, then the README's hand install (a venv in /opt/homewatt, the command on PATH, the
shipped unit files unchanged).

- `build_wheels(directory)`: wheels of homewatt-common, homewatt-collector, homewatt-backup and
  their pinned dependencies (constraints.txt), built with the test environment's Python (3.11,
  as in bookworm) into `directory/wheels`. One `pip wheel` for all three apps: the session
  fixture `homewatt_wheels` (tests/conftest.py) calls it once, and every test that installs an
  app uses that wheelhouse.
- `install_app(box, wheels, app, units=...)`: copy the wheelhouse in (once per container),
  create the venv (once), `pip install --no-index` the app from the wheelhouse (as the Ansible
  roles do on an offline Pi), link its command into /usr/local/bin, and write the named unit
  files of systemd/ into /etc/systemd/system, then `daemon-reload`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.support.systemd_container import SystemdContainer

REPO = Path(__file__).resolve().parents[2]
APPS = ("homewatt-collector", "homewatt-backup")
PREFIX = "/opt/homewatt"


def build_wheels(directory: Path) -> Path:
    """`directory/wheels`, holding the wheels of every app and of their pinned dependencies.
    CalledProcessError (pip's own message on stderr) when a wheel cannot be built."""
    wheels = directory / "wheels"
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
            f"{REPO / 'collector'}[emporia]",  # and the optional extra's wheels (pyemvue...)
            str(REPO / "backup"),
        ],
        check=True,
        timeout=900,
    )
    return wheels


def install_app(
    box: SystemdContainer,
    wheels: Path,
    app: str,
    *,
    units: Sequence[str] = (),
    extras: Sequence[str] = (),
) -> None:
    """Install `app` (one of APPS) with its optional `extras` (homewatt-collector's `emporia`)
    into `box` from the wheelhouse `wheels` (build_wheels), and the unit files `units` (names
    in systemd/) unchanged. Installing a second app into the same container reuses its copied
    wheelhouse and venv."""
    assert app in APPS, app
    if box.run(f"test -d {PREFIX}/wheels", check=False).exit_code != 0:
        box.copy_in(wheels, PREFIX)
    # one docker exec per step, each with its own time limit: on a loaded machine (2 cores shared
    # by many test sessions) creating the venv alone was measured at 4 min
    box.run(f"test -x {PREFIX}/venv/bin/pip || python3 -m venv {PREFIX}/venv", timeout=900)
    box.run(
        f"{PREFIX}/venv/bin/pip install --quiet --no-index --find-links {PREFIX}/wheels"
        f" '{app}{'[' + ','.join(extras) + ']' if extras else ''}'",
        timeout=900,
    )
    box.run(f"ln -sf {PREFIX}/venv/bin/{app} /usr/local/bin/{app}")
    for unit in units:
        box.write_file(f"/etc/systemd/system/{unit}", (REPO / "systemd" / unit).read_text())
    if units:
        box.systemctl("daemon-reload")
