"""The slim Debian bookworm that the stand-in server images (InfluxDB 2: tests/support/influxdb2;
Grafana: tests/ansible/grafana_standin) are built FROM: `homewatt-test/standin-base:<hash>`.

Why not FROM the rig's systemd image directly: that image is a 300 MB debootstrap with systemd,
apt's lists and caches, docs and locales, and every layer of it ends up in the `docker save`
tar that a role loads into the Docker inside its Molecule instance (`*_image_archive`). Built
that way each stand-in's tar was about 400 MB and its `docker load` in a nested dockerd took
11-12 s at a load of 1 and much longer on a busy machine, once per scenario and twice in the
site scenario. This base is about a third of that and is one layer that both stand-ins share
(the site scenario and install.sh load it once).

What it is: the rig's bookworm image (tests/support/systemd_image.py, the same Debian packages)
with `curl` and `gosu` added (the official influxdb:2.x image has both; the Grafana stand-in
removes gosu again), without what an official server image lacks (systemd, dbus, sudo, procps,
iproute2, python3-apt) and slimmed as Debian's `-slim` images are (debuerreotype's slimify: no
docs but copyright files, no man or info pages, no locales but locale.alias), with no apt lists
or caches. Then squashed: `FROM scratch` + `COPY --from` the whole tree, so the removed files
are not kept in a lower layer. No image config is inherited (no STOPSIGNAL SIGRTMIN+3, no
`container` or CA variables): each stand-in sets its own, as its real image does.

Python 3.11 stays (both stand-ins are Python programs: the InfluxDB stand-in moves it off PATH).

Cost: one `docker build` of about 30-60 s (apt-get update and install in the build stage) once
per daemon and content hash; a cached image costs nothing.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

IMAGE = "homewatt-test/standin-base"
# What the official InfluxDB 2 and Grafana images lack and the rig's systemd image has.
REMOVED_PACKAGES = ("sudo", "procps", "iproute2", "dbus", "systemd-sysv", "systemd", "python3-apt")
ADDED_PACKAGES = ("curl", "gosu")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # as debian:bookworm-slim


class DockerResult(Protocol):
    @property
    def exit_code(self) -> int: ...

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...


class Docker(Protocol):
    """What the image needs of a Docker daemon (the rig's PrivateDockerd has it)."""

    def docker(self, *args: str, check: bool = ..., timeout: float = ...) -> DockerResult: ...


def dockerfile(base: str) -> str:
    """The two-stage Dockerfile: slim `base` in a build stage, then copy it onto scratch."""
    removed = " ".join(REMOVED_PACKAGES)
    added = " ".join(ADDED_PACKAGES)
    return f"""\
# homewatt-test/standin-base (tests/support/standin_base.py): the rig's bookworm, slimmed.
FROM {base} AS slim
RUN set -eu \\
 && apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {added} \\
 && SUDO_FORCE_REMOVE=yes DEBIAN_FRONTEND=noninteractive dpkg --purge --force-depends \\
      --force-remove-essential {removed} >/dev/null 2>&1 \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \\
      /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/lib/dbus /run/dbus /var/log/* \\
      /usr/share/man/* /usr/share/info/* /usr/share/groff/* /usr/share/lintian/* \\
 && find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete \\
 && find /usr/share/doc -mindepth 1 -type d -empty -delete \\
 && find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {{}} + \\
 && for tool in curl gosu bash python3.11; do command -v "$tool" >/dev/null; done
FROM scratch
COPY --from=slim / /
ENV PATH={PATH}
CMD ["bash"]
LABEL org.opencontainers.image.description="homewatt stand-in base: Debian bookworm, slim"
"""


def tag_for(base: str) -> str:
    return f"{IMAGE}:{hashlib.sha256(dockerfile(base).encode()).hexdigest()[:16]}"


def build_image(docker: Docker, base: str) -> str:
    """Build (or find) the slim base FROM `base` (the rig's bookworm tag); return its tag."""
    return build_once(
        docker,
        tag_for(base),
        lambda context: (context / "Dockerfile").write_text(dockerfile(base)),
    )


def build_once(docker: Docker, tag: str, write_context: Callable[[Path], object]) -> str:
    """`docker build -t tag` of the context `write_context(directory)` writes, unless the
    daemon has `tag` already (a content-hash tag: the same tag is the same image); return
    `tag`. RuntimeError with Docker's output when the build fails. Every stand-in image
    (this base, InfluxDB 2, Grafana) is built through here."""
    if docker.docker("image", "inspect", tag, check=False).exit_code != 0:
        name = tag.partition(":")[0].rpartition("/")[2]  # standin-base, influxdb-standin...
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
            write_context(Path(tmp))
            done = docker.docker("build", "-q", "-t", tag, tmp, check=False, timeout=900)
            if done.exit_code != 0:
                raise RuntimeError(f"building {tag} failed:\n{done.stderr or done.stdout}")
    return tag
