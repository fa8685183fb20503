"""The docker role, checked inside its Molecule instance (testinfra).

The instance boots systemd; the role's dockerd runs inside it (Docker-in-Docker). A tiny
image is made from the instance's own `sleep` binary and its libraries (no registry), and a
container from it proves where published ports bind and that containers survive a restart of
dockerd (live-restore).
"""

from __future__ import annotations

import json
import time

import pytest
import testinfra.host

TINY_IMAGE = "homewatt-test/tiny:1"


@pytest.fixture(scope="module")
def tiny_container(host: testinfra.host.Host):
    """A container from a two-megabyte image with port 18080 published without an address."""
    libs = host.check_output(
        "ldd /usr/bin/sleep | grep -o '/[^ ]*' | sort -u | sed 's|^/||' | tr '\\n' ' '"
    )
    host.check_output(f"tar -C / -chf - usr/bin/sleep {libs} | docker import - {TINY_IMAGE}")
    host.run("docker rm -f hw-tiny")
    host.check_output(f"docker run -d --name hw-tiny -p 18080:80 {TINY_IMAGE} /usr/bin/sleep 3600")
    yield "hw-tiny"
    host.run("docker rm -f hw-tiny")


def test_docker_engine_runs_and_starts_at_boot(host: testinfra.host.Host) -> None:
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled
    assert host.package("docker.io").is_installed
    assert host.package("python3-docker").is_installed


def test_daemon_json_rotates_logs_and_keeps_containers_over_restarts(
    host: testinfra.host.Host,
) -> None:
    daemon_json = host.file("/etc/docker/daemon.json")
    assert daemon_json.user == "root"
    assert daemon_json.mode == 0o644
    config = json.loads(daemon_json.content_string)
    assert config["log-driver"] == "local"
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert config["live-restore"] is True
    assert config["ip"] == "127.0.0.1"
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "local"
    assert info["LiveRestoreEnabled"] is True


def test_a_port_published_without_an_address_listens_on_localhost_only(
    host: testinfra.host.Host, tiny_container: str
) -> None:
    bindings = json.loads(
        host.check_output(
            f"docker inspect -f '{{{{json .NetworkSettings.Ports}}}}' {tiny_container}"
        )
    )
    assert {b["HostIp"] for b in bindings["80/tcp"]} == {"127.0.0.1"}
    assert host.socket("tcp://127.0.0.1:18080").is_listening
    assert not host.socket("tcp://0.0.0.0:18080").is_listening


def test_containers_keep_running_while_dockerd_restarts(
    host: testinfra.host.Host, tiny_container: str
) -> None:
    started = host.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}}' {tiny_container}")
    host.check_output("systemctl restart docker")
    for _ in range(60):
        if host.run("docker info").rc == 0:
            break
        time.sleep(0.5)
    assert (
        host.check_output(f"docker inspect -f '{{{{.State.Running}}}}' {tiny_container}") == "true"
    )
    assert (
        host.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}}' {tiny_container}")
        == started
    )
