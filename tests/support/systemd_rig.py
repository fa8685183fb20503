"""The systemd test rig in one object: this checkout's private dockerd plus its systemd images.

    rig = SystemdRig().acquire()              # start (or adopt) the daemon: about 2 s
    image = rig.image("trixie")               # build/import once: 0 s cached, ~100 s cold
    box = rig.boot("bookworm", purpose="collector")   # about 3 s to `running`
    box.write_file("/etc/homewatt/x.yaml", text); box.run("systemctl start x")
    box.stop(); rig.release()

The pytest fixtures (tests/conftest.py: `systemd_rig`, `systemd_container`,
`boot_systemd_container`) wrap exactly this. A server on the host that containers must reach
listens on the bridge's address, `rig.daemon.network.ip` (e.g. `VictoriaMetrics(dir, host=...)`).

Molecule and other docker clients use the same daemon and images through the environment that
`env()` returns (and that `python -m tests.support.systemd_rig env` prints as shell exports):
DOCKER_HOST, and HOMEWATT_TEST_IMAGE_BOOKWORM / HOMEWATT_TEST_IMAGE_TRIXIE naming the images.
A molecule.yml platform then reads (Molecule expands environment variables in it):

    image: ${HOMEWATT_TEST_IMAGE_BOOKWORM}
    pre_build_image: true        # never build or pull: no registry is reachable
    command: /lib/systemd/systemd
    cgroupns_mode: host
    capabilities: [SYS_ADMIN]    # + NET_ADMIN for Docker inside
    security_opts: [seccomp=unconfined]
    tmpfs: ["/run:rw,nosuid,nodev,mode=755,shared", "/run/lock", "/tmp:exec,size=2g"]
    volumes: ["/sys/fs/cgroup:/sys/fs/cgroup:rw"]   # + "/var/lib/docker" for Docker inside

(the same flags as systemd_container.SYSTEMD_RUN_OPTIONS; the image already carries
STOPSIGNAL SIGRTMIN+3; Molecule's docker driver must stop containers gracefully,
`force_kill: false`).

Command line (root):
    python -m tests.support.systemd_rig env      # start or adopt; print export lines; keep it
    python -m tests.support.systemd_rig stop     # stop this checkout's daemon, clean up
"""

from __future__ import annotations

import sys

from tests.support.dockerd import PrivateDockerd, RigUnavailable
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_image import SUITES, ensure_image, systemd_recipe


class SystemdRig:
    """This checkout's daemon and images; `boot()` gives a booted systemd container."""

    def __init__(self, daemon: PrivateDockerd | None = None) -> None:
        self.daemon = daemon or PrivateDockerd()
        self._images: dict[str, str] = {}

    def acquire(self) -> SystemdRig:
        """Start or adopt the daemon (PrivateDockerd.acquire); RigUnavailable says why not."""
        self.daemon.acquire()
        return self

    def release(self) -> None:
        """Drop this session's lease on the daemon (stops it when it was the last one)."""
        self.daemon.release()

    def image(self, suite: str = "bookworm") -> str:
        """The tag of the systemd image of `suite` (bookworm, trixie), made once per recipe."""
        if suite not in self._images:
            self._images[suite] = ensure_image(self.daemon, systemd_recipe(suite))
        return self._images[suite]

    def boot(
        self, suite: str = "bookworm", *, purpose: str = "test", docker_in_docker: bool = False
    ) -> SystemdContainer:
        """A booted container of `suite`'s image (see SystemdContainer.boot); stop() it after."""
        return SystemdContainer.boot(
            self.daemon, self.image(suite), purpose=purpose, docker_in_docker=docker_in_docker
        )

    def env(self, suites: tuple[str, ...] = SUITES) -> dict[str, str]:
        """DOCKER_HOST and HOMEWATT_TEST_IMAGE_<SUITE> for Molecule or a docker client."""
        env = {"DOCKER_HOST": self.daemon.host}
        for suite in suites:
            env[f"HOMEWATT_TEST_IMAGE_{suite.upper()}"] = self.image(suite)
        return env


def main(argv: list[str]) -> int:
    """`env`: start/adopt the daemon, build the images, print exports, leave it running;
    `stop`: stop this checkout's daemon and remove its bridge and iptables rules."""
    command = argv[0] if argv else ""
    rig = SystemdRig()
    try:
        if command == "env":
            rig.acquire()
            for key, value in rig.env().items():
                print(f"export {key}={value}")
            return 0
        if command == "stop":
            rig.daemon.stop()
            return 0
    except RigUnavailable as error:
        print(f"systemd rig: {error}", file=sys.stderr)
        return 1
    print("usage: python -m tests.support.systemd_rig env|stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
