"""The stand-in as a container image, `homewatt-test/influxdb-standin:<hash>`, built from the
rig's Debian bookworm image through the slim stand-in base (tests/support/standin_base.py; no
registry is reachable; no InfluxDB image can be pulled).

Laid out like the official influxdb:2.7 image (influxdata-docker influxdb/2.7/Dockerfile and
entrypoint.sh): user and group `influxdb` with uid/gid 1000 and home /home/influxdb, volumes
/var/lib/influxdb2 and /etc/influxdb2, /docker-entrypoint-initdb.d, ENTRYPOINT
/entrypoint.sh, CMD influxd, port 8086, the ENV names INFLUX_CONFIGS_PATH,
INFLUXD_INIT_PORT, INFLUXD_INIT_PING_ATTEMPTS, DOCKER_INFLUXDB_INIT_CLI_CONFIG_NAME,
INFLUXDB_VERSION, INFLUX_CLI_VERSION and GOSU_VER, STOPSIGNAL SIGTERM (the real image sets
none), and no HEALTHCHECK (the real image has none: the influxdb role sets one). Tools: curl
and gosu, as the real image has them (`curl -fsS http://127.0.0.1:8086/health` is a health
check that works in both); the systemd image's extras that the real image lacks (systemd,
sudo, dbus, procps, iproute2) are not in the slim base, and its Python interpreter is moved
off PATH to /opt/influxdb-standin/bin, where only the stand-in's `influxd` uses it. What the
real image has and this one does not: the `influx` CLI, `dasel`, gnupg, and InfluxDB itself.
The slim base is squashed onto scratch, so nothing of the rig image's config is inherited
(its STOPSIGNAL, `container` and CA trust variables). Its `docker save` tar is about 150 MB
(400 MB when it was built FROM the systemd image itself).

`build_image(docker, base)` builds it once per content hash; `docker` is anything with the
rig's `PrivateDockerd.docker(*args, check=...)` method. `save_image` writes the tar a role
loads through its image-archive variable (`docker save`, as for the real image offline).

For Molecule and other shells, after `eval "$(python -m tests.support.systemd_rig env)"`:
    python -m tests.support.influxdb2.image env            # build; print the export line
    python -m tests.support.influxdb2.image save FILE.tar  # build; docker save into FILE.tar
(it uses DOCKER_HOST and HOMEWATT_TEST_IMAGE_BOOKWORM from that environment and prints
`export HOMEWATT_TEST_IMAGE_INFLUXDB_STANDIN=<tag>`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.support import standin_base

from .server import VERSION

HERE = Path(__file__).resolve().parent
IMAGE = "homewatt-test/influxdb-standin"
UID = GID = 1000
PORT = 8086
HEALTHCHECK = ["CMD", "curl", "-fsS", "http://127.0.0.1:8086/health"]


class Docker(Protocol):
    """What the image needs of a Docker daemon (the rig's PrivateDockerd has it)."""

    def docker(
        self, *args: str, input: bytes | None = ..., check: bool = ..., timeout: float = ...
    ) -> standin_base.DockerResult: ...


def dockerfile(base: str) -> str:
    """The Dockerfile FROM `base`, the slim stand-in base (tests/support/standin_base.py)."""
    version = VERSION.lstrip("v")
    lines = [
        "# The homewatt InfluxDB 2 stand-in (NOT InfluxDB): tests/support/influxdb2/image.py",
        f"# says what it copies from the official influxdb:{version} image and what differs.",
        f"FROM {base}",
        f"RUN groupadd -r influxdb --gid={GID} \\",
        f" && useradd -r -g influxdb --uid={UID} --create-home --home-dir=/home/influxdb \\",
        "      --shell=/bin/bash influxdb",
        "COPY influxdb2/ /opt/influxdb-standin/lib/influxdb2/",
        "COPY influxd /usr/local/bin/influxd",
        "COPY entrypoint.sh /entrypoint.sh",
        "RUN set -eu \\",
        " && mkdir -p /opt/influxdb-standin/bin \\",
        " && mv /usr/bin/python3.11 /opt/influxdb-standin/bin/python3 \\",
        " && rm -f /usr/bin/python3 /usr/bin/pydoc3* /usr/bin/pygettext3* /usr/bin/py3compile \\",
        "      /usr/bin/py3clean \\",
        " && chmod 0755 /usr/local/bin/influxd /entrypoint.sh \\",
        " && mkdir /docker-entrypoint-initdb.d \\",
        " && mkdir -p /var/lib/influxdb2 /etc/influxdb2 \\",
        " && chown -R influxdb:influxdb /var/lib/influxdb2 /etc/influxdb2 \\",
        " && /usr/local/bin/influxd version",
        "VOLUME /var/lib/influxdb2 /etc/influxdb2",
        'ENTRYPOINT ["/entrypoint.sh"]',
        'CMD ["influxd"]',
        f"EXPOSE {PORT}",
        "STOPSIGNAL SIGTERM",
        "ENV INFLUX_CONFIGS_PATH=/etc/influxdb2/influx-configs \\",
        "    INFLUXD_INIT_PORT=9999 \\",
        "    INFLUXD_INIT_PING_ATTEMPTS=600 \\",
        "    DOCKER_INFLUXDB_INIT_CLI_CONFIG_NAME=default \\",
        f"    INFLUXDB_VERSION={version} \\",
        "    INFLUX_CLI_VERSION=2.7.5 \\",
        "    GOSU_VER=1.16",
        'LABEL org.opencontainers.image.title="homewatt InfluxDB 2 stand-in (not InfluxDB)"',
    ]
    return "\n".join(lines) + "\n"


def _sources() -> list[Path]:
    return [*sorted(HERE.glob("*.py")), HERE / "entrypoint.sh", HERE / "influxd"]


def content_hash(base: str) -> str:
    """The hash of the Dockerfile FROM `base` (the slim base's tag) and the stand-in's files."""
    digest = hashlib.sha256(dockerfile(base).encode())
    for path in _sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def tag_for(base: str) -> str:
    """The image's tag when built from the rig's bookworm image `base`."""
    return f"{IMAGE}:{content_hash(standin_base.tag_for(base))}"


def build_context(directory: Path, base: str) -> None:
    """Write the build context: the Dockerfile, the scripts and the stand-in's package."""
    (directory / "Dockerfile").write_text(dockerfile(base))
    package = directory / "influxdb2"
    package.mkdir()
    for path in _sources():
        target = directory / path.name if path.suffix != ".py" else package / path.name
        shutil.copy2(path, target)


def build_image(docker: Docker, base: str, *, extra_tags: Sequence[str] = ()) -> str:
    """Build (or find) the image from the rig's bookworm image `base` (through the slim
    stand-in base, tests/support/standin_base.py); return its content-hash tag."""
    slim = standin_base.build_image(docker, base)
    tag = standin_base.build_once(
        docker, f"{IMAGE}:{content_hash(slim)}", lambda context: build_context(context, slim)
    )
    for extra in extra_tags:
        docker.docker("tag", tag, extra)
    return tag


def save_image(docker: Docker, tag: str, path: Path) -> Path:
    """`docker save` into `path` (the archive a role's influxdb_image_archive loads)."""
    docker.docker("save", "-o", str(path), tag)
    return path


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


class CliDocker:
    """The docker CLI against DOCKER_HOST (the rig's daemon, from its `env` output)."""

    def docker(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 600
    ) -> CliResult:
        done = subprocess.run(
            ["docker", *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
        result = CliResult(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
        return result


def main(argv: list[str]) -> int:
    """`env`: build, print the export line; `save FILE`: build, docker save into FILE."""
    base = os.environ.get("HOMEWATT_TEST_IMAGE_BOOKWORM", "")
    if not base or not os.environ.get("DOCKER_HOST"):
        print(
            "set DOCKER_HOST and HOMEWATT_TEST_IMAGE_BOOKWORM first: "
            'eval "$(python -m tests.support.systemd_rig env)"',
            file=sys.stderr,
        )
        return 1
    if argv[:1] not in (["env"], ["save"]) or (argv[0] == "save" and len(argv) != 2):
        print("usage: python -m tests.support.influxdb2.image env | save FILE", file=sys.stderr)
        return 2
    docker = CliDocker()
    try:
        tag = build_image(docker, base)
        if argv[0] == "save":
            save_image(docker, tag, Path(argv[1]))
    except (RuntimeError, OSError) as exc:
        print(f"influxdb stand-in image: {exc}", file=sys.stderr)
        return 1
    print(f"export HOMEWATT_TEST_IMAGE_INFLUXDB_STANDIN={tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
