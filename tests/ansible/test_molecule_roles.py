"""Each role's Molecule scenario, run whole (`molecule test`): create a systemd container,
converge, converge again changing nothing (idempotence), testinfra verifiers, destroy.

The docker, influxdb and grafana scenarios run Docker-in-Docker inside the instance. The
official InfluxDB 2 and Grafana images are not run here (no registry can be reached): their
scenarios use locally built stand-in images, and say so in their names.

The four scenarios are independent (own instance, own Molecule state, own nested dockerd), and
much of a run is waiting on `docker exec` round trips, image loads and container starts rather
than computing, so they run PARALLEL scenarios at a time, the longest first; each test waits for
its own scenario's result and reports it. Each test's timeout covers the session's one-off
setup too (the private dockerd, images built by debootstrap on a clean machine) and the
scenario queued before its own; Molecule itself gets 2400 s, a guard against a hang: on the
shared 2-core VM the influxdb and grafana scenarios took 570-700 s at a load average of 10-13
and 1180-1310 s at 15-21, and at a load of 24-28 docker took 858 s and base passed the old
1200 s limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import pytest

from tests.ansible import images
from tests.ansible.conftest import Molecule, MoleculeRun
from tests.support.systemd_rig import SystemdRig

# Longest first, so that the two queues end together.
SCENARIOS = ("influxdb", "grafana", "base", "docker")
WITH_STANDINS = {"influxdb", "grafana"}
# Two at a time on the 2-core machines.
PARALLEL = 2
F = TypeVar("F", bound=Callable[..., None])


def scenario(name: str) -> Callable[[F], F]:
    """Marks the test that reports `name`'s run (only the selected tests' scenarios run)."""

    def mark(test: F) -> F:
        test.scenario = name  # type: ignore[attr-defined]
        return test

    return mark


@pytest.fixture(scope="module")
def role_runs(
    request: pytest.FixtureRequest, systemd_rig: SystemdRig
) -> Iterator[dict[str, Future[MoleculeRun]]]:
    """`molecule test` of the selected tests' scenarios, started at once in the background.

    The session's one-off images are built side by side first: the stand-ins (when a selected
    scenario needs them) in a thread while the `molecule` fixture builds the instance image
    (both mostly wait on apt's downloads and dpkg); later users of the `standin_images`
    fixture find them built and saved."""
    selected = {
        getattr(item.function, "scenario", None)
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is request.module
    }
    systemd_rig.image("bookworm")  # imported once, before two threads build FROM it
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="standins") as builder:
        building = (
            builder.submit(images.standin_archives, systemd_rig)
            if selected & WITH_STANDINS
            else None
        )
        molecule: Molecule = request.getfixturevalue("molecule")
        standins = building.result() if building else {}
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="molecule") as pool:
        runs = {
            name: pool.submit(
                molecule.run,
                name,
                "test",
                timeout=2400,
                env=standins if name in WITH_STANDINS else None,
            )
            for name in SCENARIOS
            if name in selected
        }
        try:
            yield runs
        finally:
            for run_ in runs.values():
                run_.cancel()


def assert_passed(run_: MoleculeRun) -> None:
    assert run_.returncode == 0, f"molecule test -s {run_.scenario} failed:\n{run_.output[-6000:]}"


@pytest.mark.timeout(5400)
@scenario("docker")
def test_docker_role_converges_idempotently_and_passes_its_verifier(
    role_runs: dict[str, Future[MoleculeRun]],
) -> None:
    assert_passed(role_runs["docker"].result())


@pytest.mark.timeout(5400)
@scenario("base")
def test_base_role_converges_idempotently_and_passes_its_verifier(
    role_runs: dict[str, Future[MoleculeRun]],
) -> None:
    assert_passed(role_runs["base"].result())


@pytest.mark.timeout(5400)
@scenario("influxdb")
def test_influxdb_role_against_the_standin_not_a_real_influxdb2(
    role_runs: dict[str, Future[MoleculeRun]],
) -> None:
    assert_passed(role_runs["influxdb"].result())


@pytest.mark.timeout(5400)
@scenario("grafana")
def test_grafana_role_against_the_standin_not_a_real_grafana(
    role_runs: dict[str, Future[MoleculeRun]],
) -> None:
    assert_passed(role_runs["grafana"].result())
