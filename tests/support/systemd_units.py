"""Checks of systemd unit files with systemd's own tools (Debian's systemd package).

- `verify_unit(*paths)`: `systemd-analyze verify` must print nothing at all. verify needs every
  Exec*= binary to exist, and the stock units (sysinit.target, ...) next to ours, so the check
  runs against a temporary root: the host's /usr/lib/systemd/system copied in, our units in its
  /etc/systemd/system, and each absolute Exec*= path that the host lacks created as an empty
  executable file in that root (the real binary is installed by Ansible on the Pi; here only
  the unit file is under test).
- `security_exposure(path)`: the overall exposure of `systemd-analyze security --offline=yes`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import require_tool

_EXEC = re.compile(r"^\s*Exec\w*\s*=\s*[-@:+!]*(/\S+)", re.MULTILINE)
_EXPOSURE = re.compile(r"Overall exposure level for \S+:\s*([0-9.]+)")
STOCK_UNITS = Path("/usr/lib/systemd/system")


def exec_paths(unit_text: str) -> list[str]:
    return _EXEC.findall(unit_text)


def verify_unit(*paths: Path) -> None:
    """Fail (AssertionError with systemd's words) on any output of `systemd-analyze verify`."""
    analyze = require_tool("systemd-analyze")
    with tempfile.TemporaryDirectory(prefix="unit-verify-") as tmp:
        root = Path(tmp)
        shutil.copytree(STOCK_UNITS, root / STOCK_UNITS.relative_to("/"), symlinks=True)
        units = root / "etc/systemd/system"
        units.mkdir(parents=True)
        copies = []
        for path in paths:
            copy = units / path.name
            shutil.copyfile(path, copy)
            copies.append(copy)
            for binary in exec_paths(path.read_text()):
                placed = root / binary.lstrip("/")
                if not placed.exists():
                    placed.parent.mkdir(parents=True, exist_ok=True)
                    placed.touch(mode=0o755)
        done = subprocess.run(
            [analyze, "verify", f"--root={root}", "--man=no", *map(str, copies)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        output = (done.stderr + done.stdout).replace(str(root), "")
        assert done.returncode == 0 and not output.strip(), (
            f"systemd-analyze verify {' '.join(p.name for p in paths)}:\n{output}"
        )


def security_exposure(path: Path) -> float:
    """The overall exposure level (0.0 best .. 10.0) systemd assigns a service unit."""
    analyze = require_tool("systemd-analyze")
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = _EXPOSURE.search(done.stdout + done.stderr)
    assert match is not None, f"no exposure level in:\n{done.stdout}\n{done.stderr}"
    return float(match.group(1))
