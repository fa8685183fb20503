"""A private docker daemon and the Debian systemd images the Molecule scenarios run in.

Until the shared systemd test rig lands, the Ansible tests keep their own, unique to this
suite (nothing system-wide is shared with other helpers' checkouts):

- `PrivateDocker`: a dockerd on its own socket, bridge, subnet and data root, started when not
  already running and stopped by its pid at the end of the session (its iptables rules for
  the bridge are removed). Images persist in its data root between sessions.
- `systemd_image(docker, release)`: a Debian `release` (bookworm, trixie) root file system made
  by debootstrap from Debian's mirror and imported with systemd as PID 1, tagged by the hash of
  what built it, so it is built once per machine.
- `prepared_image(docker, release)`: that image plus the packages the roles install, so role
  scenarios do not download them every run (the `site` scenario's trixie instance starts from
  the bare image, so the roles' apt installs run for real there).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SOCKET = Path("/run/hw-ansible-docker.sock")
PIDFILE = Path("/run/hw-ansible-docker.pid")
DATA_ROOT = Path("/var/lib/hw-ansible-docker")
EXEC_ROOT = Path("/run/hw-ansible-docker")
BRIDGE, BRIDGE_CIDR = "hwan0", "172.30.97.1/24"
LOG = Path("/var/log/hw-ansible-dockerd.log")
MIRROR = "http://deb.debian.org/debian"
SYSTEMD_PACKAGES = (
    "python3,python3-apt,systemd,systemd-sysv,dbus,sudo,procps,iproute2,ca-certificates"
)
# What the roles install (base, docker): preinstalled in the prepared image.
ROLE_PACKAGES = (
    "docker.io python3-docker tzdata systemd-timesyncd curl ca-certificates "
    "unattended-upgrades apt-listchanges"
)
# Per release: trixie's docker client is a package of its own (the docker role installs it).
RELEASE_PACKAGES = {"trixie": "docker-cli"}


def _run(*argv: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class PrivateDocker:
    """The suite's own docker daemon; `env` points docker clients (and Molecule) at it."""

    started_here: bool = False

    @property
    def host(self) -> str:
        return f"unix://{SOCKET}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, timeout: float = 900) -> str:
        return _run("docker", *args, env=self.env, timeout=timeout)

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["docker", "version"], env=self.env, capture_output=True, check=False, timeout=30
            ).returncode
            == 0
        )

    def start(self) -> PrivateDocker:
        if self.alive():
            return self
        if subprocess.run(
            ["ip", "link", "show", BRIDGE], capture_output=True, check=False
        ).returncode:
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
            _run("ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE)
            _run("ip", "link", "set", BRIDGE, "up")
        for path in (DATA_ROOT, EXEC_ROOT):
            path.mkdir(parents=True, exist_ok=True)
        with LOG.open("ab") as log:
            subprocess.Popen(
                [
                    "dockerd", "-H", self.host, "--data-root", str(DATA_ROOT),
                    "--exec-root", str(EXEC_ROOT), "--pidfile", str(PIDFILE),
                    "--bridge", BRIDGE, "--iptables=true", "--ip-masq=true",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start: see {LOG}")
            time.sleep(0.5)
        self.started_here = True
        return self

    def stop(self) -> None:
        """Stop the daemon this session started (by its pid) and remove its bridge's rules."""
        if not self.started_here or not PIDFILE.exists():
            return
        pid = int(PIDFILE.read_text().strip())
        os.kill(pid, 15)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        rules = _run("iptables-save")
        for line in rules.splitlines():
            if line.startswith("-A") and (BRIDGE in line or BRIDGE_CIDR.rsplit(".", 1)[0] in line):
                spec = line.split()[1:]
                for table in ("nat", "filter"):
                    if not subprocess.run(
                        ["iptables", "-t", table, "-D", *spec], capture_output=True, check=False
                    ).returncode:
                        break
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)

    def has_image(self, ref: str) -> bool:
        return (
            subprocess.run(
                ["docker", "image", "inspect", ref], env=self.env, capture_output=True,
                check=False, timeout=60,
            ).returncode
            == 0
        )  # fmt: skip


def _tag(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def systemd_image(docker: PrivateDocker, release: str) -> str:
    """The bare Debian `release` image with systemd as PID 1 (built once, by debootstrap)."""
    ref = f"homewatt-test/{release}:{_tag(release, SYSTEMD_PACKAGES, MIRROR)}"
    if docker.has_image(ref):
        return ref
    with tempfile.TemporaryDirectory(
        prefix=f"hw-ansible-{release}-", dir="/var/tmp", ignore_cleanup_errors=True
    ) as tmp:
        rootfs = Path(tmp) / "rootfs"
        try:
            _run(
                "debootstrap", "--variant=minbase", f"--include={SYSTEMD_PACKAGES}",
                release, str(rootfs), MIRROR, timeout=1200,
            )  # fmt: skip
        except BaseException:
            # An interrupted debootstrap leaves /proc and /sys mounted in the root file system.
            for mount in ("proc", "sys"):
                subprocess.run(
                    ["umount", "-R", str(rootfs / mount)], capture_output=True, check=False
                )
            raise
        (rootfs / "etc/machine-id").write_text("")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "--change", 'CMD ["/lib/systemd/systemd"]', "-", ref],
            stdin=tar.stdout, env=docker.env, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        tar.wait()
    return ref


def prepared_image(docker: PrivateDocker, release: str) -> str:
    """`systemd_image` plus the packages the base and docker roles install."""
    base = systemd_image(docker, release)
    packages = f"{ROLE_PACKAGES} {RELEASE_PACKAGES.get(release, '')}".strip()
    ref = f"homewatt-test/molecule-{release}:{_tag(base, packages)}"
    if docker.has_image(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="hw-ansible-prep-") as tmp:
        dockerfile = Path(tmp) / "Dockerfile"
        dockerfile.write_text(
            f"FROM {base}\n"
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
            f"--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*\n"
            'CMD ["/lib/systemd/systemd"]\n'
        )
        docker.docker("build", "-q", "-t", ref, tmp, timeout=1200)
    return ref


CAP_SYS_PTRACE = 19  # linux/capability.h


def can_grant_sys_ptrace() -> bool:
    """Whether this process may give containers CAP_SYS_PTRACE (it is in our bounding set): a
    Docker-in-Docker test container, like fresh-run's, may lack it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    return False


def tools_bin() -> Path:
    """The bin folder of .tools/ansible (scripts/bootstrap builds it)."""
    return Path(__file__).resolve().parents[2] / ".tools" / "ansible" / "bin"


def require_docker_tools() -> None:
    for tool in ("dockerd", "docker", "debootstrap", "iptables-save"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: run scripts/bootstrap")


@dataclass(frozen=True)
class DockerResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class ResultDocker:
    """`PrivateDocker` with the result-returning `docker()` the stand-in's image builder uses."""

    daemon: PrivateDocker

    def docker(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 900
    ) -> DockerResult:
        done = subprocess.run(
            ["docker", *args], input=input, capture_output=True, env=self.daemon.env,
            timeout=timeout, check=False,
        )  # fmt: skip
        result = DockerResult(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} failed: {result.stderr}")
        return result
