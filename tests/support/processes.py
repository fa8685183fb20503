"""Start real server processes for tests on free loopback ports, and stop them by pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_tool(name: str) -> str:
    """The path of a tool that scripts/bootstrap installs; fail (not skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap (the test command does)")
    return path


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll `predicate` until it is true; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback test URL)
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def unreachable_address(host: str = "127.0.0.1") -> Iterator[str]:
    """`host:port` where a TCP connect times out, as to a host that is down or unplugged or
    behind a firewall that drops: a listener with a backlog of 0 that never accepts, its
    accept queue filled, so Linux drops every further SYN. Checked: a connect with a 0.5 s
    timeout times out (else the test fails)."""
    listener = socket.socket()
    held: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(16):
            probe = socket.socket()
            probe.settimeout(0.5)
            try:
                probe.connect((host, port))
            except TimeoutError:
                probe.close()
                break
            held.append(probe)
        else:
            pytest.fail(f"{host}:{port} kept accepting connections: no SYN was dropped")
        yield f"{host}:{port}"
    finally:
        for sock in held:
            sock.close()
        listener.close()


@dataclass
class ServerProcess:
    """A server started by a test; `stop()` signals exactly this pid (its process group)."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ServerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.running():
                raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def signal(self, signum: int) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        if self.process is None:
            return
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def running(
    server: ServerProcess, ready: Callable[[], bool], timeout: float = 30
) -> Iterator[ServerProcess]:
    server.start()
    try:
        server.wait_ready(ready, timeout)
        yield server
    finally:
        server.stop()
