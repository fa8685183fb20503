"""The images the Molecule scenarios run, all in the systemd test rig's daemon (one private
dockerd per checkout, tests/support/dockerd.py) and all built FROM the rig's debootstrap'd
images (tests/support/systemd_image.py, cached machine-wide by content hash):

- `role_image(rig, suite)`: the rig's systemd image of `suite` plus the packages the base and
  docker roles install, so a scenario's converge does not download them every run (the roles'
  apt tasks still run: they find the packages installed). Tagged by the hash of its
  Dockerfile, built once per daemon (about 60 s; the daemon's data root keeps it).
- `standin_archives(rig)`: the InfluxDB 2 stand-in (tests/support/influxdb2) and the Grafana
  stand-in (tests/ansible/grafana_standin), built from the bookworm image through one slim,
  squashed base layer they share (tests/support/standin_base.py: about 140 MB, where each
  tar was 400 MB when built FROM the systemd image) and `docker save`d into this checkout's
  rig data dir, which the instances mount read-only: the roles load them through
  `influxdb_image_archive` / `grafana_image_archive`, as an offline Pi would. Saved again
  only when a tag changes.

The official InfluxDB 2 and Grafana images are not run here: no registry can be reached.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.ansible import grafana_standin
from tests.support.influxdb2 import image as influxdb_standin
from tests.support.systemd_rig import SystemdRig

# What the base and docker roles install (their vars/main.yml), per suite: trixie's docker
# client is a package of its own.
ROLE_PACKAGES = (
    "apt-listchanges",
    "ca-certificates",
    "curl",
    "docker.io",
    "python3-docker",
    "systemd-timesyncd",
    "tzdata",
    "unattended-upgrades",
)
SUITE_PACKAGES = {"bookworm": (), "trixie": ("docker-cli",)}
# Where the instances find the saved stand-in images (molecule.yml mounts it there).
ARCHIVES_IN_INSTANCE = "/var/cache/homewatt-test-images"


def role_image(rig: SystemdRig, suite: str) -> str:
    """The tag of `suite`'s systemd image with ROLE_PACKAGES installed (built if missing)."""
    packages = " ".join((*ROLE_PACKAGES, *SUITE_PACKAGES[suite]))
    dockerfile = (
        f"FROM {rig.image(suite)}\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q"
        f" --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*\n"
        'LABEL org.opencontainers.image.description="homewatt Molecule instance:'
        f" Debian {suite} with systemd and the base and docker roles' packages\"\n"
    )
    tag = f"homewatt-test/molecule-{suite}:{hashlib.sha256(dockerfile.encode()).hexdigest()[:16]}"
    if rig.daemon.docker("image", "inspect", tag, check=False).exit_code != 0:
        rig.daemon.docker("build", "--tag", tag, "-", input=dockerfile.encode(), timeout=1200)
    return tag


def _save(rig: SystemdRig, tag: str, archive: Path) -> None:
    """`docker save` of `tag` as `archive`, redone only when the tag changed."""
    stamp = archive.with_suffix(".tag")
    if archive.exists() and stamp.exists() and stamp.read_text() == tag:
        return
    partial = archive.with_suffix(".part")
    rig.daemon.docker("save", "--output", str(partial), tag)
    partial.rename(archive)
    stamp.write_text(tag)


def standin_archives(rig: SystemdRig) -> dict[str, str]:
    """Build and save both stand-ins; Molecule's environment naming their tags and folder."""
    base = rig.image("bookworm")
    influxdb = influxdb_standin.build_image(rig.daemon, base)
    grafana = grafana_standin.build_image(rig.daemon, base)
    folder = rig.daemon.data_dir / "molecule-images"
    folder.mkdir(parents=True, exist_ok=True)
    _save(rig, influxdb, folder / "influxdb-standin.tar")
    _save(rig, grafana, folder / "grafana-standin.tar")
    return {
        "HOMEWATT_MOLECULE_IMAGES_DIR": str(folder),
        "HOMEWATT_INFLUXDB_STANDIN_IMAGE": influxdb,
        "HOMEWATT_GRAFANA_STANDIN_IMAGE": grafana,
    }
