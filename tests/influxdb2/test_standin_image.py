"""The stand-in image `homewatt-test/influxdb-standin`, run the way the influxdb role runs the
official influxdb:2.7 image: volumes on /var/lib/influxdb2 and /etc/influxdb2, the
DOCKER_INFLUXDB_INIT_* setup, INFLUXD_* settings, port 8086 published on 127.0.0.1, a curl
health check on /health. The official image is NOT run here (no registry is reachable);
this proves the stand-in has the real image's uid, paths, environment names and tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.influxdb2.conftest import BUCKET, ORG, Api, ImageUnderTest
from tests.support.dockerd import DockerResult
from tests.support.influxdb2.image import HEALTHCHECK, UID
from tests.support.processes import free_port

pytestmark = pytest.mark.integration
OPERATOR = "image-operator-token"
INIT = {
    "DOCKER_INFLUXDB_INIT_MODE": "setup",
    "DOCKER_INFLUXDB_INIT_USERNAME": "admin",
    "DOCKER_INFLUXDB_INIT_PASSWORD": "a long password",
    "DOCKER_INFLUXDB_INIT_ORG": ORG,
    "DOCKER_INFLUXDB_INIT_BUCKET": BUCKET,
    "DOCKER_INFLUXDB_INIT_RETENTION": "30d",
    "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": OPERATOR,
    # the influxdb role's settings for a 1 GB Pi: accepted because influxd accepts them
    "INFLUXD_STORAGE_CACHE_MAX_MEMORY_SIZE": "128MiB",
    "INFLUXD_STORAGE_CACHE_SNAPSHOT_MEMORY_SIZE": "16MiB",
    "INFLUXD_STORAGE_MAX_CONCURRENT_COMPACTIONS": "1",
    "INFLUXD_STORAGE_WAL_FSYNC_DELAY": "1s",
    "INFLUXD_QUERY_CONCURRENCY": "4",
    "INFLUXD_QUERY_MEMORY_BYTES": "67108864",
    "INFLUXD_REPORTING_DISABLED": "true",
}


@dataclass
class Deployment:
    """Containers of one test on named volumes, removed (with the volumes) afterwards."""

    image: ImageUnderTest
    key: str = field(default_factory=lambda: f"standin-{time.monotonic_ns()}")
    port: int = field(default_factory=free_port)
    containers: list[str] = field(default_factory=list)

    def docker(self, *args: str, check: bool = True) -> str:
        return str(self.image.docker.docker(*args, check=check).stdout)

    def run(self, name: str, env: dict[str, str]) -> str:
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        container = f"{self.key}-{name}"
        self.docker(
            "run",
            "-d",
            "--name",
            container,
            "-p",
            f"127.0.0.1:{self.port}:8086",
            "-v",
            f"{self.key}-data:/var/lib/influxdb2",
            "-v",
            f"{self.key}-config:/etc/influxdb2",
            *env_args,
            self.image.tag,
        )
        self.containers.append(container)
        return container

    def healthy(self, container: str, timeout: float = 60) -> None:
        """Wait until the image's health check command (the one the influxdb role gives Docker)
        passes inside `container`'s network namespace."""
        started = time.monotonic()
        deadline = started + timeout
        attempts = 0
        while time.monotonic() < deadline:
            check = self.sidecar(container, *HEALTHCHECK[1:], check=False)
            attempts += 1
            if check.exit_code == 0:
                return
            state = json.loads(self.docker("inspect", "--format", "{{json .State}}", container))
            if not state["Running"]:
                break
            time.sleep(0.5)
        logs = self.image.docker.docker("logs", container, check=False)
        raise AssertionError(
            f"{container} not healthy after {time.monotonic() - started:.0f} s and {attempts}"
            f" health checks; the last exited {check.exit_code}:"
            f" {(check.stderr or check.stdout).strip()[-500:]}\n"
            f"container log:\n{logs.stdout}{logs.stderr}"
        )

    def sidecar(self, container: str, *command: str, check: bool = True) -> DockerResult:
        """Run `command` in a new container of the image on `container`'s volumes and network.

        Not `docker exec` (nor Docker's own health checks, which use it): entering a container
        whose processes run as uid 1000 needs CAP_SYS_PTRACE (the kernel's ptrace access
        check on /proc/PID/ns), which a CI host without it cannot grant; sharing volumes and
        the network namespace needs nothing of the kind."""
        return self.image.docker.docker(
            "run",
            "--rm",
            "--volumes-from",
            container,
            "--network",
            f"container:{container}",
            "--entrypoint",
            command[0],
            self.image.tag,
            *command[1:],
            check=check,
        )

    def beside(self, container: str, *command: str) -> str:
        """`sidecar`'s standard output."""
        return str(self.sidecar(container, *command).stdout)

    def processes(self, container: str) -> list[list[str]]:
        """`docker top`: the host's view of the container's processes (uid, command name)."""
        table = self.docker("top", container, "-o", "pid,uid,comm").splitlines()
        return [line.split()[1:] for line in table[1:]]

    def remove(self) -> None:
        for container in self.containers:
            self.docker("rm", "-f", container, check=False)
        self.docker("volume", "rm", "-f", f"{self.key}-data", f"{self.key}-config", check=False)


@pytest.fixture
def deployment(standin_image: ImageUnderTest) -> Iterator[Deployment]:
    deployed = Deployment(standin_image)
    try:
        yield deployed
    finally:
        deployed.remove()


def test_standin_image_runs_as_uid_1000_with_the_real_images_paths_and_tools_not_the_real_influxdb(
    deployment: Deployment,
) -> None:
    container = deployment.run("first", INIT)
    deployment.healthy(container)  # the curl health check the real image supports too
    config = json.loads(
        deployment.docker("inspect", "--format", "{{json .Config}}", deployment.image.tag)
    )
    assert config["Entrypoint"] == ["/entrypoint.sh"] and config["Cmd"] == ["influxd"]
    assert set(config["Volumes"]) == {"/var/lib/influxdb2", "/etc/influxdb2"}
    assert "8086/tcp" in config["ExposedPorts"] and config.get("Healthcheck") is None
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["INFLUX_CONFIGS_PATH"] == "/etc/influxdb2/influx-configs"
    assert env["DOCKER_INFLUXDB_INIT_CLI_CONFIG_NAME"] == "default"
    assert deployment.processes(container) == [[str(UID), "influxd"]]
    assert deployment.beside(container, "id", "influxdb").startswith(
        "uid=1000(influxdb) gid=1000(influxdb)"
    )
    tools = deployment.beside(
        container,
        "bash",
        "-c",
        "for t in curl gosu bash python3 python3.11 sudo systemctl ps ip; do "
        "command -v $t >/dev/null && echo $t=yes || echo $t=no; done",
    ).split()
    assert tools == [
        "curl=yes",
        "gosu=yes",
        "bash=yes",
        "python3=no",
        "python3.11=no",
        "sudo=no",
        "systemctl=no",
        "ps=no",
        "ip=no",
    ]
    listing = deployment.beside(
        container,
        "stat",
        "-c",
        "%U %a %n",
        "/var/lib/influxdb2",
        "/etc/influxdb2",
        "/etc/influxdb2/influx-configs",
        "/var/lib/influxdb2/standin.sqlite",
    )
    assert listing.splitlines() == [
        "influxdb 700 /var/lib/influxdb2",
        "influxdb 775 /etc/influxdb2",
        "influxdb 600 /etc/influxdb2/influx-configs",
        "influxdb 600 /var/lib/influxdb2/standin.sqlite",
    ]
    url = f"http://127.0.0.1:{deployment.port}"
    assert requests.get(f"{url}/health", timeout=5).json()["status"] == "pass"
    operator = Api(url, OPERATOR)
    org_id = operator("GET", "/api/v2/orgs").json()["orgs"][0]["id"]
    bucket_id = operator("GET", "/api/v2/buckets", params={"name": BUCKET}).json()["buckets"][0][
        "id"
    ]
    read_only = operator(
        "POST",
        "/api/v2/authorizations",
        json={
            "orgID": org_id,
            "permissions": [
                {
                    "action": "read",
                    "resource": {"type": "buckets", "id": bucket_id, "orgID": org_id},
                }
            ],
        },
    ).json()["token"]
    assert Api(url, read_only).write("m f=1 1795435200").status_code == 403  # a read token
    assert operator.write("m f=1 1795435200").status_code == 204
    started = time.monotonic()
    deployment.docker("stop", container)
    assert time.monotonic() - started < 10  # SIGTERM reaches the server: no 10 s kill
    assert deployment.docker("inspect", "--format", "{{.State.ExitCode}}", container).strip() == "0"


def test_standin_image_keeps_its_state_when_recreated_on_the_same_volumes_not_the_real_influxdb(
    deployment: Deployment,
) -> None:
    first = deployment.run("first", INIT)
    deployment.healthy(first)
    url = f"http://127.0.0.1:{deployment.port}"
    assert Api(url, OPERATOR).write("electricity power_w=230.5 1795435200").status_code == 204
    deployment.docker("rm", "-f", first)
    second = deployment.run("second", {**INIT, "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": "another-token"})
    deployment.healthy(second)
    assert "skipping setup wrapper" in deployment.image.docker.docker("logs", second).stderr
    assert requests.get(f"{url}/api/v2/setup", timeout=5).json() == {"allowed": False}
    assert Api(url, "another-token")("GET", "/api/v2/buckets").status_code == 401
    rows = (
        Api(url, OPERATOR).flux(f'from(bucket: "{BUCKET}") |> range(start: 0)', annotations=[]).text
    )
    assert ",230.5,power_w,electricity" in rows


def test_standin_image_refuses_to_start_with_a_setting_influxd_refuses_not_the_real_influxdb(
    deployment: Deployment,
) -> None:
    container = deployment.run("bad", {**INIT, "INFLUXD_STORAGE_CACHE_MAX_MEMORY_SIZE": "lots"})
    deadline = time.monotonic() + 30
    while (
        deployment.docker("inspect", "--format", "{{.State.Running}}", container).strip() == "true"
    ):
        assert time.monotonic() < deadline, "the container kept running with a bad setting"
        time.sleep(0.2)
    assert deployment.docker("inspect", "--format", "{{.State.ExitCode}}", container).strip() == "1"
    logs = deployment.image.docker.docker("logs", container).stderr
    assert 'invalid value "lots" for INFLUXD_STORAGE_CACHE_MAX_MEMORY_SIZE' in logs


def test_molecule_gets_the_standin_image_tag_from_the_command_line_not_the_real_influxdb(
    standin_image: ImageUnderTest,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.influxdb2.image", "env"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **standin_image.env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"export HOMEWATT_TEST_IMAGE_INFLUXDB_STANDIN={standin_image.tag}\n"
