"""Run shell commands as a user would on a fresh Pi, without changing this machine.

Each `Sandbox.run(script)` runs bash, as root, in a private mount namespace (`unshare
--mount`) in which /etc, /opt, /usr/local and /var/lib are overlays: reads see this machine's
files, writes land in the sandbox's own upper directories, which persist from one run to the
next (so commands build on each other, as a user's do) and vanish with the sandbox. Nothing
else is hidden or faked: the commands are real, the files they write are real, only where they
land differs. `sudo` is a shim that runs its command as root (the sandbox is root already),
keeping the environment as `sudo -E` would; PATH is sudo's secure_path, so a command is found
where an installation put it, not in the test's own venv. systemd is not PID 1 here: commands
that need it are not run (tests/test_readme.py: ```sh no-test blocks).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

OVERLAID = ("/etc", "/opt", "/usr/local", "/var/lib")
SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Kept from the test's environment: how this machine reaches package registries.
KEPT_ENV = ("PIP_", "SSL_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")

SUDO = """#!/bin/sh
# sudo for the sandbox: it runs as root already; like sudo it takes VAR=value before the command
while [ $# -gt 0 ]; do
  case "$1" in
    -E|-H) shift ;;
    --) shift; break ;;
    -*) echo "sudo (sandbox): option $1 is not supported" >&2; exit 2 ;;
    *) break ;;
  esac
done
exec env "$@"
"""


def require_sandbox() -> None:
    """Skip (with the reason) where a sandbox cannot be made: it needs root for mounts."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the sandbox mounts overlays in a private mount namespace")
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing")


@dataclass
class Sandbox:
    root: Path  # the sandbox's own directory: upper/work dirs, the user's home, the shims
    overlaid: tuple[str, ...] = OVERLAID

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.bin.mkdir(parents=True, exist_ok=True)
        sudo = self.bin / "sudo"
        sudo.write_text(SUDO)
        sudo.chmod(0o755)
        self.cwd_file.write_text(str(self.home))
        for directory in self.overlaid:
            name = directory.strip("/").replace("/", "-")
            (self.root / "upper" / name).mkdir(parents=True, exist_ok=True)
            (self.root / "work" / name).mkdir(parents=True, exist_ok=True)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def cwd_file(self) -> Path:
        return self.root / "cwd"

    @property
    def cwd(self) -> Path:
        """Where the last command that finished left the shell (`cd` carries over)."""
        return Path(self.cwd_file.read_text().strip())

    def upper(self, directory: str) -> Path:
        """Where the sandbox's writes into `directory` (one of OVERLAID) land."""
        return self.root / "upper" / directory.strip("/").replace("/", "-")

    def _mounts(self) -> str:
        lines = []
        for directory in self.overlaid:
            name = directory.strip("/").replace("/", "-")
            lines.append(
                f"mount -t overlay overlay -o lowerdir={directory},"
                f"upperdir={self.root}/upper/{name},workdir={self.root}/work/{name} {directory}"
            )
        return "\n".join(lines)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        kept = {k: v for k, v in os.environ.items() if k.startswith(KEPT_ENV)}
        return {
            **kept,
            "HOME": str(self.home),
            "USER": "root",
            "LANG": "C.UTF-8",
            "PATH": f"{self.bin}:{SECURE_PATH}",
            "TERM": "dumb",
            **(extra or {}),
        }

    def start(
        self, script: str, stdin: str = "", env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start `script` (bash, -e -u -o pipefail) in the sandbox, in the current directory;
        its last directory is kept for the next one when it succeeds."""
        body = self.root / f"script-{time.monotonic_ns()}.sh"
        body.write_text(f"{script}\npwd > {self.cwd_file}\n")
        outer = textwrap.dedent(
            f"""\
            set -e
            {self._mounts()}
            cd "$(cat {self.cwd_file})"
            exec bash -euo pipefail {body}
            """
        )
        typed = body.with_suffix(".stdin")
        typed.write_text(stdin)  # what the user types or pastes
        with typed.open() as keyboard:
            return subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "bash", "-c", outer],
                stdin=keyboard,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env(env),
                start_new_session=True,  # its own process group: Ctrl-C reaches every process
            )

    def run(
        self, script: str, stdin: str = "", timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        process = self.start(script, stdin, env)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            raise AssertionError(f"timed out after {timeout:.0f} s:\n{out}\n{err}") from None
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def interrupt_after(
        self, script: str, seconds: float, stdin: str = "", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `script`, then press Ctrl-C (SIGINT to its process group) after `seconds`."""
        process = self.start(script, stdin, env)
        try:
            out, err = process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)
            try:
                out, err = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                out, err = process.communicate()
                raise AssertionError(f"did not stop on Ctrl-C:\n{out}\n{err}") from None
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)
