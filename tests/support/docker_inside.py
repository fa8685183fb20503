"""Docker inside a rig container (what Molecule's docker, influxdb and grafana scenarios need).

The container must be booted with `docker_in_docker=True` (NET_ADMIN and a volume on
/var/lib/docker). Debian's docker.io comes from the Debian mirror through the rig's bridge;
images reach the inner daemon only as archives (`docker save` here, `docker load` there),
since no registry is reachable.

Cost (2-core dev VM): `install_docker` 15-40 s (apt), an archive of a few MB loads in < 1 s.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from tests.support.dockerd import PrivateDockerd
from tests.support.systemd_container import SystemdContainer


def install_docker(box: SystemdContainer) -> None:
    """apt-get install docker.io (and busybox-static) inside `box`; wait for its daemon.

    AssertionError when apt fails, the inner daemon does not answer within 30 s, or it runs
    on a storage driver other than overlay2 (vfs would mean the volume is missing).
    """
    box.run(
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends"
        " docker.io busybox-static >/dev/null",
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    box.run("for i in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1")
    driver = box.run(["docker", "info", "--format", "{{.Driver}}"]).stdout.strip()
    assert driver == "overlay2", f"the inner dockerd uses {driver}, not overlay2"


def busybox_archive(daemon: PrivateDockerd, box: SystemdContainer, workdir: Path) -> str:
    """A one-binary image (the busybox that `install_docker` put in `box`), built in the rig's
    daemon and saved as `workdir`/busybox.tar; returns its tag (removed from the daemon again).
    """
    rootfs = workdir / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    daemon.docker("cp", f"{box.name}:/bin/busybox", str(rootfs / "bin" / "busybox"))
    with tarfile.open(workdir / "rootfs.tar", "w") as tar:
        tar.add(rootfs, arcname=".")
    tag = f"homewatt-test/busybox:{box.name}"
    daemon.docker("import", str(workdir / "rootfs.tar"), tag)
    try:
        daemon.docker("save", "--output", str(workdir / "busybox.tar"), tag)
    finally:
        daemon.docker("rmi", tag)
    return tag


def load_image(box: SystemdContainer, archive: Path) -> None:
    """Copy an image archive into `box` and `docker load` it into the inner daemon."""
    box.copy_in(archive, "/root")
    loaded = box.run(["docker", "load", "--input", f"/root/{archive.name}"])
    assert "Loaded image" in loaded.stdout, loaded.stdout
