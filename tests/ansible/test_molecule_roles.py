"""Each role's Molecule scenario, run whole (`molecule test`): create a systemd container,
converge, converge again changing nothing (idempotence), testinfra verifiers, destroy.

The docker, influxdb and grafana scenarios run Docker-in-Docker inside the instance. The
official InfluxDB 2 and Grafana images are not run here (no registry can be reached): their
scenarios use locally built stand-in images, and say so in their names.

Each test's timeout covers the session's one-off setup too (the private dockerd, images built
by debootstrap on a clean machine); Molecule itself gets 1200 s, a guard against a hang: the
influxdb and grafana scenarios took 570-700 s on the shared 2-core VM at a load average of
10-13 (one grafana run at 600 s was killed by the old limit).
"""

from __future__ import annotations

import pytest

from tests.ansible.conftest import Molecule, MoleculeRun


def assert_passed(run_: MoleculeRun) -> None:
    assert run_.returncode == 0, f"molecule test -s {run_.scenario} failed:\n{run_.output[-6000:]}"


@pytest.mark.timeout(1800)
def test_docker_role_converges_idempotently_and_passes_its_verifier(molecule: Molecule) -> None:
    assert_passed(molecule.run("docker", "test", timeout=1200))


@pytest.mark.timeout(1800)
def test_base_role_converges_idempotently_and_passes_its_verifier(molecule: Molecule) -> None:
    assert_passed(molecule.run("base", "test", timeout=1200))


@pytest.mark.timeout(1800)
def test_influxdb_role_against_the_standin_not_a_real_influxdb2(
    molecule: Molecule, standin_images: dict[str, str]
) -> None:
    assert_passed(molecule.run("influxdb", "test", timeout=1200, env=standin_images))


@pytest.mark.timeout(1800)
def test_grafana_role_against_the_standin_not_a_real_grafana(
    molecule: Molecule, standin_images: dict[str, str]
) -> None:
    assert_passed(molecule.run("grafana", "test", timeout=1200, env=standin_images))
