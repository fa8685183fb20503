"""Shared by the testinfra verifiers of every scenario (molecule/pytest.ini makes this folder
their rootdir)."""

from __future__ import annotations

import os

import pytest

NO_PTRACE = (
    "the instance has no CAP_SYS_PTRACE (the tests run in a container without it, like "
    "fresh-run's, and cannot grant it): its runc cannot open /proc/<pid>/ns/* of a nested "
    "container whose process runs as another uid (the kernel's ptrace access check), so "
    "`docker exec` and Docker's health checks fail there ('setns process: exit status 1'); "
    "a Pi's root has the capability"
)


@pytest.fixture
def nested_docker_exec() -> None:
    """Skips a test that needs `docker exec` (or a Docker health check) in a nested container
    whose process is not root, where the instance lacks CAP_SYS_PTRACE
    (HOMEWATT_MOLECULE_PTRACE_CAP, set by tests/ansible/conftest.py)."""
    if os.environ.get("HOMEWATT_MOLECULE_PTRACE_CAP", "SYS_PTRACE") != "SYS_PTRACE":
        pytest.skip(NO_PTRACE)
