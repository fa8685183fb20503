"""Shared by the testinfra verifiers of every scenario (molecule/pytest.ini makes this folder
their rootdir): the capability check for `docker exec`, and the checks every container the
roles run in the instance's Docker must pass (`nested_container`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import testinfra.host

NO_PTRACE = (
    "the instance has no CAP_SYS_PTRACE (the tests run in a container without it, like "
    "fresh-run's, and cannot grant it): its runc cannot open /proc/<pid>/ns/* of a nested "
    "container whose process runs as another uid (the kernel's ptrace access check), so "
    "`docker exec` and Docker's health checks fail there ('setns process: exit status 1'); "
    "a Pi's root has the capability"
)


def can_docker_exec() -> bool:
    """Whether the instance has CAP_SYS_PTRACE (HOMEWATT_MOLECULE_PTRACE_CAP, set by
    tests/ansible/conftest.py), which `docker exec` and health checks need (NO_PTRACE)."""
    return os.environ.get("HOMEWATT_MOLECULE_PTRACE_CAP", "SYS_PTRACE") == "SYS_PTRACE"


@pytest.fixture
def nested_docker_exec() -> None:
    """Skips a test that needs `docker exec` (or a Docker health check) in a nested container
    whose process is not root, where the instance lacks CAP_SYS_PTRACE."""
    if not can_docker_exec():
        pytest.skip(NO_PTRACE)


@dataclass(frozen=True)
class NestedContainer:
    """A container a role runs in the instance's Docker, checked as the roles promise: a
    pinned image restarted unless stopped, a memory limit without swap, a `curl -fsS`
    health check that turns healthy, its port published where the inventory says."""

    host: testinfra.host.Host
    name: str

    def inspect(self) -> dict[str, Any]:
        """`docker inspect` of the container."""
        inspected: list[dict[str, Any]] = json.loads(
            self.host.check_output(f"docker inspect {self.name}")
        )
        return inspected[0]

    def env(self) -> dict[str, str]:
        """Its environment, as the role set it."""
        return dict(item.split("=", 1) for item in self.inspect()["Config"]["Env"])

    def assert_runs_pinned_and_restarts_unless_stopped(self, image: str, memory_mb: int) -> None:
        """Running `image` (a repository whose tag the test does not know: the stand-ins are
        tagged by content), restart policy unless-stopped, `memory_mb` MiB of RAM and no swap."""
        container = self.inspect()
        assert container["State"]["Running"], f"{self.name} is not running"
        assert container["Config"]["Image"].startswith(f"{image}:"), container["Config"]["Image"]
        host_config = container["HostConfig"]
        assert host_config["RestartPolicy"]["Name"] == "unless-stopped"
        assert host_config["Memory"] == memory_mb * 1024 * 1024
        assert host_config["MemorySwap"] == memory_mb * 1024 * 1024, "it may swap"

    def assert_health_check(self, url: str) -> None:
        """Its health check is `curl -fsS url` (an exec in the container), and the URL answers
        from the instance."""
        assert self.inspect()["Config"]["Healthcheck"]["Test"] == ["CMD", "curl", "-fsS", url]
        assert self.host.run(f"curl -fsS {url}").rc == 0, f"{url} does not answer"

    def wait_healthy(self, timeout_s: float = 120) -> None:
        """Until Docker's health check says healthy (needs CAP_SYS_PTRACE: nested_docker_exec)."""
        deadline = time.monotonic() + timeout_s
        while (status := self.inspect()["State"]["Health"]["Status"]) != "healthy":
            assert time.monotonic() < deadline, f"{self.name} never turned healthy: {status}"
            time.sleep(2)

    def assert_published_on(self, port: int, address: str) -> None:
        """`port` published on `address` only, and listening there and not on others."""
        bindings = self.inspect()["HostConfig"]["PortBindings"][f"{port}/tcp"]
        assert bindings == [{"HostIp": address, "HostPort": str(port)}]
        assert self.host.socket(f"tcp://{address}:{port}").is_listening
        if address != "0.0.0.0":  # noqa: S104 (compared, not bound)
            assert not self.host.socket(f"tcp://0.0.0.0:{port}").is_listening


@pytest.fixture
def nested_container(host: testinfra.host.Host) -> Callable[[str], NestedContainer]:
    """`nested_container(name)`: the role's container `name` in the instance's Docker."""
    return lambda name: NestedContainer(host, name)
