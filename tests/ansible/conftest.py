"""Fixtures for the Ansible suite: the private docker daemon, the images, a Molecule runner."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ansible import rig

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MoleculeRun:
    """One `molecule` command's exit code, its whole output and how long it took (s)."""

    scenario: str
    returncode: int
    output: str
    seconds: float


@dataclass
class Molecule:
    """Runs Molecule from the repository root against the private daemon and images."""

    env: dict[str, str]
    log_dir: Path

    def run(
        self, scenario: str, *args: str, timeout: float, env: dict[str, str] | None = None
    ) -> MoleculeRun:
        started = time.monotonic()
        done = subprocess.run(
            ["molecule", *args, "-s", scenario],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - started
        output = done.stdout + done.stderr
        log = self.log_dir / f"molecule-{scenario}-{args[0]}.log"
        log.write_text(output)
        print(f"molecule {' '.join(args)} -s {scenario}: rc={done.returncode} in {seconds:.0f} s ({log})")
        return MoleculeRun(scenario, done.returncode, output, seconds)


@pytest.fixture(scope="session")
def private_docker() -> Iterator[rig.PrivateDocker]:
    rig.require_docker_tools()
    docker = rig.PrivateDocker().start()
    try:
        yield docker
    finally:
        docker.stop()


@pytest.fixture(scope="session")
def molecule(private_docker: rig.PrivateDocker, tmp_path_factory: pytest.TempPathFactory) -> Molecule:
    tools = rig.tools_bin()
    if not (tools / "molecule").exists():
        pytest.fail(f"{tools}/molecule is missing: run scripts/bootstrap (the test command does)")
    env = {
        **private_docker.env,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "HOMEWATT_MOLECULE_IMAGE_BOOKWORM": rig.prepared_image(private_docker, "bookworm"),
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    return Molecule(env=env, log_dir=tmp_path_factory.mktemp("molecule"))
