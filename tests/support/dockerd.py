"""A private Docker daemon per checkout, for the tests that need a real systemd (the rig).

It never touches a Docker the user runs: no /run/docker.sock, no /var/lib/docker, and not even
the system's containerd (dockerd 20.10 silently adopts /run/containerd/containerd.sock when that
file exists, so the rig starts a containerd of its own and points dockerd at it). Per checkout,
keyed by the first 10 hex digits of sha256(the checkout's real path):

- bridge `hwt<key[:8]>` with the first free /20 block of 10.208.0.0/12 (the bridge takes its
  first /24, containers reach the Debian mirror through NAT; the block's upper /21 is dockerd's
  `--default-address-pool` for networks a test creates, e.g. Molecule's),
- containerd: config, socket and state under /run/homewatt-test/<key>/containerd,
- dockerd: socket /run/homewatt-test/<key>/docker.sock, exec-root /run/homewatt-test/<key>/exec,
  pidfile /run/homewatt-test/<key>/docker.pid, data-root /var/lib/homewatt-test/<key>/docker
  (images survive between sessions; on an overlayfs, as inside a container, a tmpfs is mounted
  there first, because overlay2 cannot stack on overlayfs and dockerd would fall back to the
  slow vfs driver), logs in /var/lib/homewatt-test/<key>/logs.

Sharing: every session that uses the daemon holds a shared flock on `users` in the state dir
for its lifetime; `release()` stops the daemon only when no other session holds one (so two
pytest runs in one checkout share a daemon safely; several checkouts each have their own).
A daemon left running by a killed session is adopted by the next one (after its health check)
and stopped at that one's end; HOMEWATT_TEST_KEEP_DOCKERD=1 keeps it running for the next
session (`python -m tests.support.systemd_rig stop` stops it).

Stopping: dockerd by its pid (SIGTERM: it stops its containers, then itself), then containerd
by its pid, then every iptables rule naming the bridge is deleted (dockerd leaves them behind)
and the bridge is removed. Only rules naming our bridge: a rule naming just a subnet may be
another rig's.

Other rigs on the machine (found in CI, 2026-11-30): dockerd 20.10 keeps its default bridge
network in data-root/network/files/local-kv.db and, at its next start, puts the bridge's
address back to the stored one ("even if a bridge exists try to setup IPv4"), whatever address
the rig gave the bridge. A checkout whose old block another rig had taken meanwhile then shared
that rig's subnet, and its stop deleted the other rig's MASQUERADE rule (which names the
subnet). So the store is deleted before dockerd starts (it holds nothing a session needs:
leftover containers are removed anyway) and a start that still ends with another address
fails. And every session checks the bridge's NAT and FORWARD rules (`ensure_network_rules`)
when it starts or adopts the daemon and before each `docker build` and `docker run`, and puts
back a missing one, logged (warning, and in logs/network.log): a rule lost to anything else
on the machine costs a log line, not a failed apt inside a container.

Checkouts that are gone (a CI clone deleted after its run, a removed worktree) leave their
data root behind: 1.5-2 GB of images each, which filled this machine's disk on 2026-11-30. So
each rig records its checkout's path in its data dir (`checkout`), and every start prunes the
data dirs whose recorded checkout no longer exists and whose daemon is not running (their
lock free, no live dockerd or containerd), logged (`prune_gone_checkouts`). A data dir without
that record (made before it existed) is left alone.

Cost (measured on the 2-core dev VM): start about 2 s, stop about 3 s without containers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
STATE_ROOT = Path("/run/homewatt-test")
DATA_ROOT = Path("/var/lib/homewatt-test")
NETWORK_SPACE = ipaddress.IPv4Network("10.208.0.0/12")
BLOCK_PREFIX = 20
RIG_LABEL = "homewatt-test.rig"  # on every container the rig starts
KEEP_ENV = "HOMEWATT_TEST_KEEP_DOCKERD"
REQUIRED_TOOLS = ("dockerd", "containerd", "iptables", "iptables-save", "ip", "debootstrap")
# Subcommands after which containers reach the Debian mirror through the bridge's NAT.
NETWORK_COMMANDS = ("build", "run")

log = logging.getLogger(__name__)


class RigUnavailable(RuntimeError):
    """The rig cannot run on this machine; the message is one line saying why and what to do."""


def checkout_key(checkout: Path) -> str:
    """10 hex digits naming a checkout: the same path gives the same daemon, bridge and dirs."""
    return hashlib.sha256(str(checkout.resolve()).encode()).hexdigest()[:10]


def docker_cli() -> str:
    """The docker client of Debian's docker.io (its version matches the daemon's), else PATH's."""
    debian = Path("/usr/bin/docker")
    found = str(debian) if debian.exists() else shutil.which("docker")
    if found is None:
        raise RigUnavailable("the docker client is not installed: run scripts/bootstrap")
    return found


@dataclass(frozen=True)
class DockerResult:
    """What one docker CLI call did: exit code and its output, decoded as UTF-8."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def check(self) -> DockerResult:
        """Raise AssertionError naming the command and its stderr unless it exited 0."""
        if self.exit_code != 0:
            raise AssertionError(
                f"`{shlex.join(self.argv)}` exited {self.exit_code}:\n{self.stderr or self.stdout}"
            )
        return self


def _pid_alive(pid: int) -> bool:
    """True for a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM `pid`, SIGKILL it after `timeout` seconds; return once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _ping(sock: Path, timeout: float = 2.0) -> bool:
    """True when a Docker Engine answers `GET /_ping` with OK on the unix socket `sock`."""

    class _UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(sock))

    connection = _UnixConnection("localhost", timeout=timeout)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().read() == b"OK"
    except OSError:
        return False
    finally:
        connection.close()


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=60)


def _fs_type(path: Path) -> str:
    """The file system type of the mount holding `path` (`stat -f`), e.g. ext2/ext3, overlayfs."""
    return _run(["stat", "-f", "-c", "%T", str(path)]).stdout.strip()


def _used_ipv4_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine routes or has an address in (all routing tables)."""
    used = []
    routes = json.loads(_run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(dst, strict=False))
    for link in json.loads(_run(["ip", "-j", "-4", "addr"]).stdout or "[]"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return used


@contextlib.contextmanager
def _flock(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[IO[bytes]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        fcntl.flock(handle, mode)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prune_gone_checkouts(data_root: Path | None = None) -> list[Path]:
    """Delete the data dirs (under `data_root`, default DATA_ROOT) of rigs whose checkout is
    gone: the path recorded in `<dir>/checkout` does not exist, no session holds the rig's lock
    and neither its dockerd nor its containerd runs. Its bridge and the iptables rules naming it
    go too (`_teardown`). Returns the dirs deleted; a dir without a record is never touched."""
    root = DATA_ROOT if data_root is None else data_root
    pruned: list[Path] = []
    for record in sorted(root.glob("*/checkout")):
        checkout = Path(record.read_text().strip())
        if not checkout.is_absolute() or checkout.exists():
            continue
        rig = PrivateDockerd(checkout)
        if rig.data_dir != record.parent:
            continue  # a record that does not name its own dir: not ours to judge
        lock_path = rig.state_dir / "lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a session of it is starting or stopping it
            if any(_pid_alive(pid) for pid in rig.daemon_pids()):
                continue
            rig._teardown()
            if os.path.ismount(rig.data_root):
                _run(["umount", "-l", str(rig.data_root)], check=False)
            _run(["rm", "-rf", "--one-file-system", str(rig.data_dir)], check=False)
        if rig.data_dir.exists():
            log.warning("could not prune the test rig of a gone checkout: %s", rig.data_dir)
            continue
        shutil.rmtree(rig.state_dir, ignore_errors=True)
        log.warning(
            "pruned the test rig of a checkout that is gone: %s (%s)", checkout, rig.data_dir
        )
        pruned.append(rig.data_dir)
    return pruned


class PrivateDockerd:
    """containerd + dockerd + a bridge of this checkout's own. See the module docstring.

    `acquire()` starts them (or adopts the running ones) and holds a user lease; `release()`
    drops it and stops everything when it was the last lease. `host` is the DOCKER_HOST value,
    `env()` the environment for a docker client or Molecule, `docker(...)` runs the CLI here.
    """

    def __init__(self, checkout: Path = REPO) -> None:
        self.checkout = checkout.resolve()
        self.key = checkout_key(self.checkout)
        self.state_dir = STATE_ROOT / self.key
        self.data_dir = DATA_ROOT / self.key
        self.socket = self.state_dir / "docker.sock"
        self.pidfile = self.state_dir / "docker.pid"
        self.exec_root = self.state_dir / "exec"
        self.data_root = self.data_dir / "docker"
        self.containerd_dir = self.state_dir / "containerd"
        self.containerd_socket = self.containerd_dir / "containerd.sock"
        self.containerd_pidfile = self.state_dir / "containerd.pid"
        self.log_dir = self.data_dir / "logs"
        self.bridge = f"hwt{self.key[:8]}"
        self._lease: IO[bytes] | None = None
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # what this process started

    # -- what clients need --------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The DOCKER_HOST value of this daemon, e.g. unix:///run/homewatt-test/<key>/docker.sock."""
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """os.environ plus DOCKER_HOST (and a private DOCKER_CONFIG) for subprocesses."""
        return {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.state_dir / "cli"),
            "DOCKER_BUILDKIT": "0",  # Debian's 20.10 has no buildx; the classic builder is offline
        }

    @property
    def network(self) -> ipaddress.IPv4Interface:
        """The bridge's address: containers reach a server on the host bound to its `.ip`."""
        links = json.loads(_run(["ip", "-j", "-4", "addr", "show", "dev", self.bridge]).stdout)
        info = links[0]["addr_info"][0]
        return ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")

    def docker(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 600
    ) -> DockerResult:
        """Run `docker ARGS` against this daemon; AssertionError on a non-zero exit if `check`.

        Before `build` and `run` the bridge's NAT and FORWARD rules are checked (and restored).
        """
        if args and args[0] in NETWORK_COMMANDS:
            self.ensure_network_rules()
        argv = (docker_cli(), *args)
        done = subprocess.run(
            argv, input=input, capture_output=True, env=self.env(), timeout=timeout, check=False
        )
        result = DockerResult(
            argv,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        return result.check() if check else result

    def healthy(self) -> bool:
        """True when this checkout's dockerd runs (pid and command line match) and answers."""
        pid = _read_pid(self.pidfile)
        return (
            pid is not None
            and _pid_alive(pid)
            and f"unix://{self.socket}" in _cmdline(pid)
            and _ping(self.socket)
        )

    def network_rules(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(table, chain, rule) of every rule dockerd 20.10 makes for this bridge (`--ip-masq`,
        inter-container traffic allowed), as `iptables -S` prints them; [] without a bridge.

        The MASQUERADE rule lets containers reach the Debian mirror, PyPI and npm; the FORWARD
        rules let their packets (and the answers) through the FORWARD chain's DROP policy.
        """
        found = _run(["ip", "-j", "-4", "addr", "show", "dev", self.bridge], check=False)
        if found.returncode != 0 or not json.loads(found.stdout or "[]"):
            return []
        bridge, subnet = self.bridge, str(self.network.network)
        established = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
        return [
            ("nat", "POSTROUTING", ("-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE")),
            ("filter", "FORWARD", ("-o", bridge, *established)),
            ("filter", "FORWARD", ("-o", bridge, "-j", "DOCKER")),
            ("filter", "FORWARD", ("-i", bridge, "!", "-o", bridge, "-j", "ACCEPT")),
            ("filter", "FORWARD", ("-i", bridge, "-o", bridge, "-j", "ACCEPT")),
        ]

    def ensure_network_rules(self) -> list[str]:
        """Put back any of `network_rules()` that is missing (appended to its chain); return
        them as `iptables -t TABLE -A CHAIN ...` lines, each logged as a warning and in
        logs/network.log. Touches no other rule. Cost: about 10 ms a rule to check.
        RigUnavailable when a rule cannot be put back (iptables' message in the line)."""
        restored = []
        with _flock(self.state_dir / "rules.lock"):
            for table, chain, rule in self.network_rules():
                check = ["iptables", "-w", "-t", table, "-C", chain, *rule]
                if _run(check, check=False).returncode == 0:
                    continue
                line = shlex.join(["iptables", "-t", table, "-A", chain, *rule])
                added = _run(["iptables", "-w", "-t", table, "-A", chain, *rule], check=False)
                if added.returncode != 0:
                    raise RigUnavailable(
                        f"rig {self.bridge}: `{line}` failed: {added.stderr.strip()}"
                    )
                restored.append(line)
        for line in restored:
            message = f"rig {self.bridge}: a rule of its bridge was missing, restored: {line}"
            log.warning("%s", message)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / "network.log").open("a") as out:
                out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}\n")
        return restored

    # -- lifetime -----------------------------------------------------------------------------

    def daemon_pids(self) -> list[int]:
        """The pids in this rig's dockerd and containerd pidfiles (alive or not)."""
        pids = (_read_pid(self.pidfile), _read_pid(self.containerd_pidfile))
        return [pid for pid in pids if pid is not None]

    def acquire(self) -> PrivateDockerd:
        """Start the daemon, or adopt a healthy one of this checkout, and hold a user lease.

        Raises RigUnavailable (one line) when it cannot: not root, a tool missing, no free
        network block, or dockerd failing to start (the line names its log).
        """
        if os.geteuid() != 0:
            raise RigUnavailable(
                "the systemd test rig needs root (it starts its own dockerd and bridge):"
                " run the tests as root"
            )
        missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
        if missing:
            raise RigUnavailable(
                f"the systemd test rig needs {', '.join(missing)}: run scripts/bootstrap"
            )
        with _flock(self.state_dir / "lock"):
            if not self.healthy():
                self._teardown()
                self._start()
            lease = (self.state_dir / "users").open("ab")
            try:
                fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
                first_user = True
            except BlockingIOError:
                first_user = False
            fcntl.flock(lease, fcntl.LOCK_SH)
            self._lease = lease
            if first_user:
                self._remove_leftover_containers()
        self.ensure_network_rules()
        return self

    def release(self) -> None:
        """Drop this session's lease; stop the daemon when no other session holds one."""
        if self._lease is None:
            return
        with _flock(self.state_dir / "lock"):
            try:
                fcntl.flock(self._lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last_user = True
            except BlockingIOError:
                last_user = False
            self._lease.close()
            self._lease = None
            if last_user and os.environ.get(KEEP_ENV) != "1":
                self._teardown()

    def stop(self) -> None:
        """Stop this checkout's daemon now, whoever started it (`systemd_rig stop`)."""
        with _flock(self.state_dir / "lock"):
            self._teardown()

    # -- internals ----------------------------------------------------------------------------

    def _start(self) -> None:
        for path in (self.state_dir, self.exec_root, self.containerd_dir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "checkout").write_text(f"{self.checkout}\n")
        prune_gone_checkouts()
        if _fs_type(self.data_root) == "overlayfs" and not os.path.ismount(self.data_root):
            # Inside a container (fresh-run): overlay2 cannot use an overlayfs as its backing.
            _run(["mount", "-t", "tmpfs", "-o", "mode=0710", "homewatt-test", str(self.data_root)])
        block = self._ensure_bridge()
        address = self.network
        pool = list(block.subnets(new_prefix=21))[1]
        # dockerd would give the bridge the address of its last run back (see the module doc)
        (self.data_root / "network" / "files" / "local-kv.db").unlink(missing_ok=True)
        containerd_config = self.containerd_dir / "config.toml"
        containerd_config.write_text(
            "version = 2\n"
            f'root = "{self.data_dir / "containerd"}"\n'
            f'state = "{self.containerd_dir / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.containerd_socket}"\n'
            "[debug]\n"
            '  address = ""\n'
        )
        containerd = self._spawn(
            ["containerd", "--config", str(containerd_config)], self.log_dir / "containerd.log"
        )
        self.containerd_pidfile.write_text(f"{containerd}\n")
        self._wait(self.containerd_socket.is_socket, "containerd", containerd)
        dockerd = self._spawn(
            [
                "dockerd",
                "--host",
                self.host,
                "--containerd",
                str(self.containerd_socket),
                "--data-root",
                str(self.data_root),
                "--exec-root",
                str(self.exec_root),
                "--pidfile",
                str(self.pidfile),
                "--bridge",
                self.bridge,
                "--iptables=true",
                "--ip-masq=true",
                "--default-address-pool",
                f"base={pool},size=24",
                # overlay2 or nothing: a silent fallback to vfs copies every layer per container.
                "--storage-driver",
                "overlay2",
                "--log-level",
                "warn",
            ],
            self.log_dir / "dockerd.log",
        )
        self._wait(lambda: _ping(self.socket, 0.5), "dockerd", dockerd)
        if self.network != address:
            moved = self.network
            self._teardown()
            raise RigUnavailable(
                f"dockerd moved bridge {self.bridge} from {address} to {moved}:"
                f" see {self.log_dir / 'dockerd.log'}"
            )

    def _spawn(self, argv: list[str], log: Path) -> int:
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in pytest's process group: ^C reaches only pytest
                cwd="/",
            )
        self._children[process.pid] = process
        return process.pid

    def _wait(self, ready: Callable[[], bool], name: str, pid: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not _pid_alive(pid):
                break
            time.sleep(0.1)
        log = self.log_dir / f"{name}.log"
        self._teardown()
        raise RigUnavailable(f"{name} did not start within {timeout:.0f} s: see {log}")

    def _ensure_bridge(self) -> ipaddress.IPv4Network:
        """The bridge's /20 block; creates the bridge in the first free block if it is missing."""
        existing = _run(["ip", "-j", "-4", "addr", "show", "dev", self.bridge], check=False)
        if existing.returncode == 0:
            address = self.network
            return ipaddress.IPv4Network(f"{address.ip}/{BLOCK_PREFIX}", strict=False)
        with _flock(STATE_ROOT / "networks.lock"):  # one allocation at a time, machine-wide
            used = _used_ipv4_networks()
            blocks = list(NETWORK_SPACE.subnets(new_prefix=BLOCK_PREFIX))
            start = int(self.key, 16) % len(blocks)
            for block in blocks[start:] + blocks[:start]:
                if not any(block.overlaps(net) for net in used):
                    break
            else:
                raise RigUnavailable(f"no free /{BLOCK_PREFIX} block left in {NETWORK_SPACE}")
            gateway = next(block.hosts())
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{gateway}/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
        return block

    def _teardown(self) -> None:
        """Stop our dockerd and containerd (by pid, verified by command line), then clean up."""
        pid = _read_pid(self.pidfile)
        if pid is not None and _pid_alive(pid) and f"unix://{self.socket}" in _cmdline(pid):
            _stop_pid(pid, timeout=60)
        pid = _read_pid(self.containerd_pidfile)
        if (
            pid is not None
            and _pid_alive(pid)
            and str(self.containerd_dir) in " ".join(_cmdline(pid))
        ):
            _stop_pid(pid, timeout=20)
        for child in reversed(list(self._children.values())):  # one that never wrote its pidfile
            if child.poll() is None:
                _stop_pid(child.pid, timeout=20)
        self._remove_network()
        if os.path.ismount(self.data_root):
            _run(["umount", str(self.data_root)], check=False)
        for path in (self.pidfile, self.containerd_pidfile, self.socket, self.containerd_socket):
            path.unlink(missing_ok=True)
        for pid, child in list(self._children.items()):  # reap what this process started
            if child.poll() is not None:
                del self._children[pid]

    def _remove_network(self) -> None:
        """Delete every iptables rule naming our bridge, then the bridge itself (never a rule
        naming only a subnet: another rig's rule names its own bridge and maybe our subnet)."""
        for table in ("filter", "nat"):
            saved = _run(["iptables-save", "-t", table], check=False).stdout
            for line in saved.splitlines():
                if not line.startswith("-A "):
                    continue
                words = shlex.split(line)
                if self.bridge in words:
                    _run(["iptables", "-w", "-t", table, "-D", *words[1:]], check=False)
        if _run(["ip", "link", "show", "dev", self.bridge], check=False).returncode == 0:
            _run(["ip", "link", "del", self.bridge], check=False)

    def _remove_leftover_containers(self) -> None:
        """Containers a killed session left behind: stop them gracefully, then remove them."""
        listed = self.docker("ps", "-aq", "--filter", f"label={RIG_LABEL}", check=False)
        ids = listed.stdout.split()
        if ids:
            self.docker("stop", "-t", "60", *ids, check=False)
            self.docker("rm", "-f", "-v", *ids, check=False)
