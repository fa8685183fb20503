"""The `site` scenario: site.yml (base, docker, influxdb, grafana) on a fresh bookworm and a
fresh trixie instance from the example inventory's group_vars; a second run changes nothing;
then secrets are rotated with `-e homewatt_rotate_secrets=[...]`, and the whole Molecule output
is searched for every secret the run generated.

The official InfluxDB 2 and Grafana images are not run here: the stand-ins are (see
test_molecule_roles.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess

import pytest

from tests.ansible import rig
from tests.ansible.conftest import Molecule, MoleculeRun

HOSTS = ["hw-site-bookworm", "hw-site-trixie"]
CREDENTIALS = "/etc/homewatt/credentials"
GENERATED = [
    "influxdb-admin-password",
    "influxdb-operator-token",
    "influxdb-write-token",
    "influxdb-grafana-token",
    "grafana-admin-password",
]
ROTATED = [
    "influxdb-operator-token",
    "influxdb-write-token",
    "influxdb-grafana-token",
    "grafana-admin-password",
]


def read(docker: rig.PrivateDocker, host: str, path: str) -> str:
    return docker.docker("exec", host, "cat", path).strip()


def secrets(docker: rig.PrivateDocker) -> dict[str, dict[str, str]]:
    return {h: {n: read(docker, h, f"{CREDENTIALS}/{n}") for n in GENERATED} for h in HOSTS}


def http_status(docker: rig.PrivateDocker, host: str, token: str, path: str) -> int:
    """InfluxDB's answer to GET path with `token`, which reaches curl on stdin (never argv)."""
    done = subprocess.run(
        ["docker", "exec", "-i", host, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
         "-H", "@-", f"http://127.0.0.1:8086{path}"],
        input=f"Authorization: Token {token}\n", capture_output=True, text=True,
        env=docker.env, timeout=60, check=False,
    )  # fmt: skip
    return int(done.stdout or 0)


@pytest.fixture(scope="module")
def site_env(private_docker: rig.PrivateDocker, standin_images: dict[str, str]) -> dict[str, str]:
    return {
        **standin_images,
        "HOMEWATT_MOLECULE_IMAGE_TRIXIE": rig.prepared_image(private_docker, "trixie"),
    }


@pytest.mark.timeout(3000)
def test_site_converges_on_bookworm_and_trixie_rotates_secrets_and_never_prints_one(
    molecule: Molecule, private_docker: rig.PrivateDocker, site_env: dict[str, str]
) -> None:
    runs: list[MoleculeRun] = []

    def step(*args: str) -> MoleculeRun:
        done = molecule.run("site", *args, timeout=900, env=site_env)
        runs.append(done)
        assert done.returncode == 0, f"molecule {args[0]} -s site failed:\n{done.output[-6000:]}"
        return done

    seen: list[str] = []
    try:
        step("destroy")
        step("create")
        step("prepare")
        step("converge")
        step("idempotence")
        step("verify")
        before = secrets(private_docker)
        started = {
            h: private_docker.docker(
                "exec", h, "docker", "inspect", "-f", "{{.State.StartedAt}}", "homewatt-grafana"
            )
            for h in HOSTS
        }
        step("converge", "--", "-e", json.dumps({"homewatt_rotate_secrets": ROTATED}))
        after = secrets(private_docker)
        seen = [v for host in (before, after) for values in host.values() for v in values.values()]
        for host in HOSTS:
            for name in GENERATED:
                changed = after[host][name] != before[host][name]
                assert changed == (name in ROTATED), f"{host}: {name} changed={changed}"
            for name in (
                "influxdb-write-token",
                "influxdb-grafana-token",
                "influxdb-operator-token",
            ):
                assert (
                    http_status(private_docker, host, before[host][name], "/api/v2/buckets") == 401
                ), name
            assert (
                http_status(
                    private_docker, host, after[host]["influxdb-operator-token"], "/api/v2/buckets"
                )
                == 200
            )
            assert (
                http_status(
                    private_docker,
                    host,
                    after[host]["influxdb-grafana-token"],
                    "/query?db=homewatt&q=SHOW+MEASUREMENTS",
                )
                == 200
            )
            copy = read(
                private_docker, host, "/etc/homewatt/grafana/secrets/influxdb-grafana-token"
            )
            assert copy == after[host]["influxdb-grafana-token"], "Grafana kept the old token"
            restarted = private_docker.docker(
                "exec", host, "docker", "inspect", "-f", "{{.State.StartedAt}}", "homewatt-grafana"
            )
            assert restarted != started[host], "Grafana was not restarted with its new token"
            stored = private_docker.docker(
                "exec", host, "cat", "/var/lib/homewatt/grafana/standin-admin-password.sha256"
            ).strip()
            assert (
                stored == hashlib.sha256(after[host]["grafana-admin-password"].encode()).hexdigest()
            )
        step("idempotence")
    finally:
        with contextlib.suppress(RuntimeError):
            seen = seen or [v for host in secrets(private_docker).values() for v in host.values()]
        molecule.run("site", "destroy", timeout=600, env=site_env)
    output = "\n".join(r.output for r in runs)
    leaked = [s for s in set(seen) if len(s) >= 8 and s in output]
    assert not leaked, f"{len(leaked)} secret(s) appear in Molecule's output"
