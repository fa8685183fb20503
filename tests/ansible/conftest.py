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
            ["molecule", args[0], "-s", scenario, *args[1:]],
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
        print(
            f"molecule {' '.join(args)} -s {scenario}: "
            f"rc={done.returncode} in {seconds:.0f} s ({log})"
        )
        return MoleculeRun(scenario, done.returncode, output, seconds)


@pytest.fixture(scope="session")
def private_docker() -> Iterator[rig.PrivateDocker]:
    rig.require_docker_tools()
    docker = rig.PrivateDocker().start()
    try:
        yield docker
    finally:
        docker.stop()


IMAGES_DIR = Path("/var/tmp/hw-ansible-images")


def _saved(docker: rig.PrivateDocker, tag: str, name: str) -> None:
    """`docker save` of `tag` as IMAGES_DIR/name, redone only when the tag changed."""
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    archive, stamp = IMAGES_DIR / name, IMAGES_DIR / f"{name}.tag"
    if archive.exists() and stamp.exists() and stamp.read_text() == tag:
        return
    docker.docker("save", "-o", str(archive), tag, timeout=600)
    stamp.write_text(tag)


@pytest.fixture(scope="session")
def standin_images(private_docker: rig.PrivateDocker) -> dict[str, str]:
    """The InfluxDB 2 and Grafana stand-in images, built FROM the bookworm image and saved as
    the tars the roles load (*_image_archive); their tags and folder as Molecule's env."""
    try:
        from tests.support.influxdb2 import image as influxdb_standin  # noqa: PLC0415
    except ImportError:
        pytest.skip(
            "the InfluxDB 2 stand-in (tests/support/influxdb2, the stand-in issue) "
            "is not in this checkout yet"
        )
    from tests.ansible import grafana_standin  # noqa: PLC0415

    if not rig.can_grant_sys_ptrace():
        pytest.skip(
            "no CAP_SYS_PTRACE to give the instances (a test container without it, like "
            "fresh-run's): docker exec and the health checks of containers running as another "
            "uid fail in them, so the influxdb, grafana and site scenarios cannot run here"
        )

    base = rig.systemd_image(private_docker, "bookworm")
    influxdb = influxdb_standin.build_image(rig.ResultDocker(private_docker), base)
    grafana = grafana_standin.build_image(private_docker, base)
    _saved(private_docker, influxdb, "influxdb-standin.tar")
    _saved(private_docker, grafana, "grafana-standin.tar")
    return {
        "HOMEWATT_MOLECULE_IMAGES_DIR": str(IMAGES_DIR),
        "HOMEWATT_INFLUXDB_STANDIN_IMAGE": influxdb,
        "HOMEWATT_GRAFANA_STANDIN_IMAGE": grafana,
    }


@pytest.fixture(scope="session")
def molecule(
    private_docker: rig.PrivateDocker, tmp_path_factory: pytest.TempPathFactory
) -> Molecule:
    tools = rig.tools_bin()
    if not (tools / "molecule").exists():
        pytest.fail(f"{tools}/molecule is missing: run scripts/bootstrap (the test command does)")
    env = {
        **private_docker.env,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "HOMEWATT_MOLECULE_IMAGE_BOOKWORM": rig.prepared_image(private_docker, "bookworm"),
        # A capability the instance gets in place of SYS_PTRACE where we cannot grant that.
        "HOMEWATT_MOLECULE_PTRACE_CAP": "SYS_PTRACE" if rig.can_grant_sys_ptrace() else "NET_ADMIN",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    return Molecule(env=env, log_dir=tmp_path_factory.mktemp("molecule"))
