"""Static checks over the whole repository: lint, format, strict typing, shell scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import require_tool

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SHELL_SCRIPTS = [
    ".ci/run",
    "scripts/bootstrap",
    "scripts/test",
    "tests/support/influxdb2/entrypoint.sh",
    "tests/support/influxdb2/influxd",
]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, timeout=600)


def test_ruff_finds_no_lint_errors() -> None:
    result = run(str(VENV_BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_code_is_formatted() -> None:
    result = run(str(VENV_BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, (
        result.stdout + result.stderr + "\nfix: .tools/venv/bin/ruff format ."
    )


def test_the_apps_pass_mypy_strict() -> None:
    result = run(str(VENV_BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_influxdb2_standin_passes_mypy_strict() -> None:
    result = run(str(VENV_BIN / "mypy"), "--strict", "tests/support/influxdb2")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_systemd_rig_passes_mypy_strict() -> None:
    rig = ["dockerd", "systemd_image", "systemd_container", "systemd_rig", "docker_inside"]
    result = run(str(VENV_BIN / "mypy"), "--strict", *(f"tests/support/{m}.py" for m in rig))
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [s for s in SHELL_SCRIPTS if (REPO / s).exists()]
    scripts += [str(p.relative_to(REPO)) for p in REPO.glob("*.sh")]
    result = run(require_tool("shellcheck"), "--severity=style", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr
