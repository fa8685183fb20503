"""A container that boots systemd, for starting our units with exactly the sandbox they ship.

The flags (SYSTEMD_RUN_OPTIONS; platform.md) and why each is there:
- `--cap-add SYS_ADMIN`: systemd mounts (namespaces for the units' sandboxing, credentials).
  `--privileged` fails on these machines ("unable to apply caps") and is never used.
- `--cgroupns host` and /sys/fs/cgroup mounted read-write: systemd manages its own cgroups.
- tmpfs on /run, /run/lock and /tmp, as on a booted system. /run is a *shared* mount: systemd
  puts each unit's credentials (`LoadCredential=`, `SetCredential=`) on a ramfs it mounts in a
  helper's mount namespace and moves to /run/credentials/<unit>; that move reaches PID 1's
  namespace only through shared propagation. Docker makes every mount private, and systemd
  does not make / shared inside a container (it leaves that to the container manager, see
  systemd's CONTAINER_INTERFACE and systemd issue #38103), so with a private /run the unit
  finds $CREDENTIALS_DIRECTORY missing or empty (systemd 252 and 257 alike, tested).
- `--security-opt seccomp=unconfined`: the units install their own seccomp filters.
- `--stop-signal SIGRTMIN+3`: systemd's "halt" signal; `docker stop` then shuts the units down
  in order and empty cgroups do not leak (also baked into the image for other clients).
- Docker inside (`docker_in_docker=True`): `--cap-add NET_ADMIN` for the inner daemon's
  bridge and iptables, and an anonymous volume on /var/lib/docker (overlay2 cannot stack on
  the container's overlayfs root; without it the inner daemon falls back to slow vfs).
  Images reach the inner daemon only by `docker save | docker load`.

Files go in through `tar` on the container's stdin (`docker cp` cannot write into tmpfs
mounts such as /tmp or /run; this can). Every container carries the label RIG_LABEL, so a
session that was killed leaves nothing the next one does not clean up.

Cost (2-core dev VM): boot to `running` about 3 s; `run()` about 0.1 s a call; `stop()` 1-2 s
(about 10 s with an inner dockerd whose containers ignore SIGTERM).
"""

from __future__ import annotations

import io
import os
import secrets
import shlex
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.dockerd import RIG_LABEL, DockerResult, PrivateDockerd

SYSTEMD_RUN_OPTIONS: tuple[str, ...] = (
    "--cap-add=SYS_ADMIN",
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run:rw,nosuid,nodev,mode=755,shared",
    "--tmpfs=/run/lock:rw,nosuid,nodev,noexec",
    "--tmpfs=/tmp:rw,nosuid,nodev,exec,size=2g",
    "--security-opt=seccomp=unconfined",
    "--stop-signal=SIGRTMIN+3",
)
DOCKER_IN_DOCKER_OPTIONS: tuple[str, ...] = ("--cap-add=NET_ADMIN", "--volume=/var/lib/docker")
BOOTED_STATES = ("running", "degraded")


@dataclass(frozen=True)
class StopReport:
    """How a container stopped: systemd's exit code (0 after a clean halt) and the time taken."""

    exit_code: int
    seconds: float


def leaked_cgroups(container_id: str) -> list[Path]:
    """cgroup directories still named after a removed container (cgroup v1 and v2 layouts)."""
    leaks = []
    for top, dirs, _files in os.walk("/sys/fs/cgroup"):
        depth = top.count("/") - 3
        for name in dirs:
            if container_id in name:
                leaks.append(Path(top) / name)
        dirs[:] = [d for d in dirs if container_id not in d] if depth < 3 else []
    return leaks


class SystemdContainer:
    """One booted systemd container in the rig's daemon. Create with `boot()`; end with `stop()`."""

    def __init__(self, daemon: PrivateDockerd, name: str, container_id: str) -> None:
        self.daemon = daemon
        self.name = name
        self.id = container_id
        self._stopped: StopReport | None = None

    @classmethod
    def boot(
        cls,
        daemon: PrivateDockerd,
        image: str,
        *,
        purpose: str = "test",
        docker_in_docker: bool = False,
        extra_options: Sequence[str] = (),
        timeout: float = 90,
    ) -> SystemdContainer:
        """Start a container of `image` with SYSTEMD_RUN_OPTIONS and wait until it has booted.

        `purpose` goes into the container's name (`hwt-<key6>-<purpose>-<random>`) and its
        hostname. Cost: about 3 s. Raises AssertionError (with the failed units and the
        journal) when systemd does not reach running/degraded within `timeout` seconds.
        """
        name = f"hwt-{daemon.key[:6]}-{purpose}-{secrets.token_hex(3)}"
        options = [*SYSTEMD_RUN_OPTIONS, *(DOCKER_IN_DOCKER_OPTIONS if docker_in_docker else ())]
        started = daemon.docker(
            "run",
            "--detach",
            f"--name={name}",
            f"--hostname={purpose}",
            f"--label={RIG_LABEL}=1",
            f"--label=homewatt-test.session={os.getpid()}",
            *options,
            *extra_options,
            image,
        )
        container = cls(daemon, name, started.stdout.strip())
        try:
            container.wait_until_booted(timeout)
        except BaseException:
            container.stop(timeout=30, strict=False)
            raise
        return container

    # -- commands -----------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str] | str,
        *,
        check: bool = True,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 600,
    ) -> DockerResult:
        """`docker exec` one command (a string runs through `sh -c`) as root unless `user`.

        Returns exit code, stdout and stderr; with `check` a non-zero exit raises
        AssertionError naming the command and its stderr. Cost: about 0.1 s plus the command.
        """
        command = ["sh", "-c", argv] if isinstance(argv, str) else list(argv)
        options = ["--interactive"] if input is not None else []
        if user is not None:
            options.append(f"--user={user}")
        for key, value in (env or {}).items():
            options.append(f"--env={key}={value}")
        return self.daemon.docker(
            "exec", *options, self.name, *command, input=input, check=check, timeout=timeout
        )

    def systemctl(self, *args: str, check: bool = True) -> DockerResult:
        """`systemctl ARGS` inside the container."""
        return self.run(["systemctl", *args], check=check)

    def journal(
        self, unit: str | None = None, lines: int | None = None, after_cursor: str | None = None
    ) -> str:
        """The journal of this boot (of one unit if given), oldest first, precise timestamps;
        only what came after `after_cursor` (journal_cursor()) if given."""
        argv = ["journalctl", "--boot", "--no-pager", "--output=short-precise"]
        if unit is not None:
            argv.append(f"--unit={unit}")
        if lines is not None:
            argv.append(f"--lines={lines}")
        if after_cursor is not None:
            argv.append(f"--after-cursor={after_cursor}")
        return self.run(argv).stdout

    def journal_cursor(self) -> str:
        """The cursor of the journal's last entry now: journal(after_cursor=...) then shows
        only what a test did after it, in a container other tests used before."""
        shown = self.run(["journalctl", "--boot", "--lines=1", "--show-cursor", "--no-pager"])
        for line in shown.stdout.splitlines():
            if line.startswith("-- cursor: "):
                return line.removeprefix("-- cursor: ")
        raise AssertionError(f"journalctl showed no cursor: {shown.stdout!r}")

    def unit_properties(self, unit: str, *names: str) -> dict[str, str]:
        """`systemctl show` values by name, e.g. ActiveState, SubState, NRestarts, Result."""
        shown = self.systemctl("show", unit, *(f"--property={n}" for n in names)).stdout
        return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)

    # -- files --------------------------------------------------------------------------------

    def write_file(
        self, path: str, content: bytes | str, *, mode: int = 0o644, owner: str = "root"
    ) -> None:
        """Create or replace `path` (parents made as needed) with `content`, `mode` and owner.

        `owner` is `user` or `user:group` (names resolved inside the container).
        """
        data = content.encode() if isinstance(content, str) else content
        user, _, group = owner.partition(":")
        info = tarfile.TarInfo(Path(path).name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        info.uname, info.gname = user, group or user
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.addfile(info, io.BytesIO(data))
        self._untar(str(Path(path).parent), buffer.getvalue())

    def copy_in(self, source: Path, destination: str) -> None:
        """Copy a host file or directory tree to the directory `destination`, owned by root.

        `source`'s base name is kept: copy_in(Path("wheels"), "/opt") makes /opt/wheels.
        """
        buffer = io.BytesIO()

        def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info

        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(source, arcname=source.name, filter=as_root)
        self._untar(destination, buffer.getvalue())

    def read_text(self, path: str) -> str:
        """The text of a file inside the container (AssertionError if it cannot be read)."""
        return self.run(["cat", "--", path]).stdout

    def _untar(self, directory: str, archive: bytes) -> None:
        self.run(
            f"mkdir -p {shlex.quote(directory)} && tar -x -C {shlex.quote(directory)} -f -",
            input=archive,
        )

    # -- life cycle ---------------------------------------------------------------------------

    def system_state(self) -> str:
        """`systemctl is-system-running`: initializing, starting, running, degraded, ..."""
        state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        return state or "unreachable"

    def wait_until_booted(self, timeout: float = 90) -> str:
        """Wait for running or degraded and return it; AssertionError with the reason if not."""
        started = time.monotonic()
        state = "unreachable"
        while time.monotonic() < started + timeout:
            state = self.system_state()
            if state in BOOTED_STATES:
                return state
            # "offline" (and no answer) also mean PID 1 is not listening yet; "maintenance"
            # is the emergency shell, "stopping" a shutdown: neither leads to a booted system.
            if state in ("maintenance", "stopping"):
                break
            time.sleep(0.2)
        failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
        journal = self.run(["journalctl", "--boot", "--no-pager", "--lines=40"], check=False)
        logs = self.daemon.docker("logs", "--tail=30", self.name, check=False)
        raise AssertionError(
            f"{self.name}: systemd is {state!r} after {time.monotonic() - started:.0f} s;"
            f" failed units:\n{failed}\njournal:\n{journal.stdout}{journal.stderr}"
            f"\ncontainer log:\n{logs.stdout}{logs.stderr}"
        )

    def stop(self, timeout: float = 60, *, strict: bool = True) -> StopReport:
        """Halt systemd (SIGRTMIN+3), wait up to `timeout` s, remove the container and volumes.

        With `strict`, raises AssertionError when systemd had to be killed or a cgroup of the
        container was left behind.
        """
        if self._stopped is not None:
            return self._stopped
        started = time.monotonic()
        self.daemon.docker("stop", f"--time={int(timeout)}", self.name, check=False)
        seconds = time.monotonic() - started
        inspected = self.daemon.docker(
            "inspect", "--format={{.State.ExitCode}}", self.name, check=False
        )
        exit_code = int(inspected.stdout.strip() or -1)
        self.daemon.docker("rm", "--force", "--volumes", self.name, check=False)
        leaks = leaked_cgroups(self.id)
        self._stopped = StopReport(exit_code, seconds)
        if strict and (exit_code != 0 or leaks):
            raise AssertionError(
                f"{self.name} did not halt cleanly: exit {exit_code} after {seconds:.1f} s,"
                f" cgroups left: {[str(p) for p in leaks]}"
            )
        return self._stopped
