"""Fixtures shared by every suite: real servers on free loopback ports, stopped by pid, and
the systemd test rig (containers that boot systemd, in a private dockerd)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.dockerd import RigUnavailable
from tests.support.faultproxy import FaultProxy
from tests.support.homewatt_install import build_wheels
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig
from tests.support.victoria import VictoriaMetrics


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A fresh VictoriaMetrics accepting the InfluxDB v2 write API."""
    vm = VictoriaMetrics(tmp_path / "victoria").start()
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture
def victoria_proxy(victoria: VictoriaMetrics) -> Iterator[FaultProxy]:
    """A fault proxy in front of `victoria`: the sink talks to the proxy's URL."""
    proxy = FaultProxy(victoria.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


# -- the systemd test rig (tests/support/systemd_rig.py): a private dockerd and systemd images --


@pytest.fixture(scope="session")
def homewatt_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheelhouse of homewatt-common, -collector, -backup and their pinned dependencies,
    built once per session (tests/support/homewatt_install.py); install with install_app."""
    return build_wheels(tmp_path_factory.mktemp("homewatt-wheels"))


@pytest.fixture(scope="session")
def systemd_rig() -> Iterator[SystemdRig]:
    """This checkout's private dockerd, started once per session (or adopted) and stopped at
    its end; images are built on first use. Fails (never skips) with one line when the rig
    cannot run here, e.g. without root."""
    rig = SystemdRig()
    try:
        rig.acquire()
    except RigUnavailable as error:
        pytest.fail(f"systemd rig: {error}", pytrace=False)
    try:
        yield rig
    finally:
        rig.release()


@pytest.fixture
def boot_systemd_container(
    systemd_rig: SystemdRig,
) -> Iterator[Callable[..., SystemdContainer]]:
    """`boot(suite="bookworm", purpose=..., docker_in_docker=False)`: booted containers,
    each halted gracefully (and checked for leaked cgroups) when the test ends."""
    booted: list[SystemdContainer] = []

    def boot(
        suite: str = "bookworm", *, purpose: str = "test", docker_in_docker: bool = False
    ) -> SystemdContainer:
        try:
            image = systemd_rig.image(suite)
        except RigUnavailable as error:
            pytest.fail(f"systemd rig: {error}", pytrace=False)
        container = SystemdContainer.boot(
            systemd_rig.daemon, image, purpose=purpose, docker_in_docker=docker_in_docker
        )
        booted.append(container)
        return container

    yield boot
    errors = []
    for container in booted:
        try:
            container.stop()
        except AssertionError as error:
            errors.append(str(error))
    assert not errors, "\n".join(errors)


@pytest.fixture
def systemd_container(
    boot_systemd_container: Callable[..., SystemdContainer],
) -> SystemdContainer:
    """A booted Debian bookworm container with systemd (the Pi's OS), halted after the test."""
    return boot_systemd_container()
