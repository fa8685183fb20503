"""The README is tested: its commands run as written, in order, as a new user runs them.

Every fenced block needs an info string. Each ```sh block runs, in the order of the README, in
a sandbox (tests/support/sandbox.py: a private mount namespace with /etc, /opt, /usr/local and
/var/lib overlaid, so the machine is not changed); the working directory carries over from
block to block, as in the user's shell. Markers after `sh`:
- `no-test`: not run here; its first line is `# not run by the tests: <reason>`, shown to the
  reader (a real serial adapter, systemd as PID 1, an Azure login...);
- `stop-with-ctrl-c`: a command that runs until Ctrl-C: pressed after a few seconds, it must
  then end cleanly;
- `systemd`: needs systemd as PID 1: not run in the sandbox, but with every other block of
  its section, in order, in a booted Debian container of the systemd test rig
  (test_the_quick_start_on_a_pi_runs_under_systemd).
Every other block must exit 0. Stdin of each block holds a few lines of what a user would paste
when a command waits for a secret (one line that is a valid token and a valid SAS at once).

The only differences from a user's machine, and why:
- `<URL of your homewatt copy>` is this checkout (its committed HEAD: commit to test changes);
- 127.0.0.1:8428 (VictoriaMetrics' default port) is a VictoriaMetrics the test starts on a free
  port, since a fixed port may be taken on a shared machine;
- pip installs from a local wheelhouse of exactly the pinned versions (scripts/bootstrap
  downloads it once, `.tools/wheels`) and does not byte-compile, so that this test does not
  take minutes waiting on PyPI; the packages are the same.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from homewatt_common.yamlfile import parse_yaml
from tests.support.sandbox import Sandbox, require_sandbox
from tests.support.systemd_container import SystemdContainer
from tests.support.victoria import VictoriaMetrics

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
WHEELHOUSE = REPO / ".tools" / "wheels"
MARKERS = {"no-test", "stop-with-ctrl-c", "systemd"}
QUICK_START = "Install by hand on a Raspberry Pi (what install.sh automates)"
NO_TEST_REASON = re.compile(r"^# not run by the tests: \S.*$")
CTRL_C_AFTER_S = 5
# What a user pastes when a command waits for a secret: printable ASCII without spaces (a
# token) that is also a SAS's query string, valid until 2099, with the permissions `rcwl`.
PASTED_SECRET = "sv=2026-10-06&sr=c&sp=rcwl&se=2099-01-01T00%3A00%3A00Z&sig=cmVhZG1lLXRlc3Q%3D"


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    language: str
    markers: frozenset[str]
    text: str
    section: str = ""

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section})"


@dataclass
class Fences:
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def fences(text: str) -> Fences:
    """Every fenced block of a Markdown text (indented ones in lists too)."""
    found = Fences()
    lines = text.splitlines()
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:]
        opening = re.match(r"^(\s*)```([^`]*)$", line)
        if opening is None:
            index += 1
            continue
        indent, info = opening.group(1), opening.group(2).split()
        start = index + 1  # 1-based line of the opening fence
        body = []
        index += 1
        while index < len(lines) and not re.match(r"^\s*```\s*$", lines[index]):
            body.append(lines[index].removeprefix(indent))
            index += 1
        if not info:
            found.problems.append(f"README.md:{start}: a fenced block without a language")
        else:
            unknown = set(info[1:]) - MARKERS
            if unknown:
                found.problems.append(f"README.md:{start}: unknown markers {sorted(unknown)}")
            found.blocks.append(
                Block(start, info[0], frozenset(info[1:]), "\n".join(body) + "\n", section)
            )
        index += 1
    return found


def test_every_fenced_block_says_what_it_is_and_why_it_is_not_run() -> None:
    found = fences(README.read_text())
    assert found.problems == []
    shell = [b for b in found.blocks if b.language == "sh"]
    assert len(shell) >= 10
    for block in shell:
        if "no-test" in block.markers:
            first = block.text.splitlines()[0]
            assert NO_TEST_REASON.match(first), f"{block}: the first line must say why: {first}"


def test_the_fence_reader_refuses_blocks_without_a_language_or_with_unknown_markers() -> None:
    found = fences("```\nls\n```\n\n```sh sometimes\nls\n```\n")
    assert found.problems == [
        "README.md:1: a fenced block without a language",
        "README.md:5: unknown markers ['sometimes']",
    ]


def test_every_yaml_block_is_valid_yaml_and_each_source_a_valid_collector_source() -> None:
    from pydantic import TypeAdapter  # noqa: PLC0415

    from homewatt_collector.config import SourceConfig  # noqa: PLC0415

    blocks = [b for b in fences(README.read_text()).blocks if b.language == "yaml"]
    assert blocks
    for block in blocks:
        data = parse_yaml(block.text, Path(str(block))).data
        if "source" in data:
            TypeAdapter(SourceConfig).validate_python(data["source"])


def substitute(block: Block, victoria_port: int) -> str:
    text = block.text.replace("<URL of your homewatt copy>", str(REPO))
    text = text.replace("127.0.0.1:8428", f"127.0.0.1:{victoria_port}")
    left = re.findall(r"<[A-Za-z][^<>\n]*>", text)
    assert not left, f"{block}: a placeholder the test cannot fill: {left}"
    return text


@pytest.mark.integration
def test_the_readmes_commands_work_as_written(tmp_path: Path) -> None:
    require_sandbox()
    assert WHEELHOUSE.is_dir(), "run scripts/bootstrap (the test command does)"
    sandbox = Sandbox(tmp_path / "sandbox")
    pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE), "PIP_NO_COMPILE": "1"}
    victoria = VictoriaMetrics(tmp_path / "victoria").start()
    port = victoria.port
    ran: list[tuple[Block, subprocess.CompletedProcess[str]]] = []
    try:
        for block in fences(README.read_text()).blocks:
            if block.language != "sh" or block.markers & {"no-test", "systemd"}:
                continue
            script = substitute(block, port)
            if "stop-with-ctrl-c" in block.markers:
                done = sandbox.interrupt_after(script, CTRL_C_AFTER_S, PASTED_SECRET, pip)
            else:
                done = sandbox.run(script, (PASTED_SECRET + "\n") * 4, env=pip)
            assert done.returncode == 0, f"{block} failed:\n{script}\n{done.stdout}\n{done.stderr}"
            ran.append((block, done))
    finally:
        victoria.stop()
    check_what_the_commands_left(sandbox, ran)
    shutil.rmtree(sandbox.root)  # two venvs and a clone: kept only when the test failed


def check_what_the_commands_left(
    sandbox: Sandbox, ran: list[tuple[Block, subprocess.CompletedProcess[str]]]
) -> None:
    """The README's promises about the result, checked on what its commands did."""
    # the demo delivered to VictoriaMetrics, and the export showed it
    export = next(done for block, done in ran if "api/v1/export" in block.text)
    assert '"__name__":"electricity_power_w"' in export.stdout, export.stdout
    # check-config of the Pi's config said ok, with the token, and what it assumed
    checks = [done for block, done in ran if "check-config --instance main" in block.text]
    assert checks
    assert all(done.stdout.splitlines()[-1] == "ok" for done in checks)
    assert "assumed outside systemd" in checks[0].stdout
    # the token file the README made is root-only, in the contract's place
    token = sandbox.upper("/etc") / "homewatt" / "credentials" / "influxdb-write-token"
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.read_text().strip() == PASTED_SECRET
    # each unit's Documentation= points at a file the install step put there
    units = sandbox.upper("/etc") / "systemd" / "system"
    for unit in (u for u in units.glob("homewatt-*") if u.is_file()):  # not the drop-in dirs
        for line in unit.read_text().splitlines():
            if line.startswith("Documentation=file://"):
                target = Path(line.removeprefix("Documentation=file://")).relative_to("/opt")
                assert (sandbox.upper("/opt") / target).is_file(), f"{unit.name}: {line}"
    # the backup's config, from the example, passed with the secrets the README wrote
    backup = yaml.safe_load((sandbox.upper("/etc") / "homewatt" / "backup.yaml").read_text())
    assert backup["influxdb"]["token_credential"] == "influxdb-operator-token"


@pytest.mark.integration
@pytest.mark.systemd_rig
@pytest.mark.timeout(900)
def test_the_quick_start_on_a_pi_runs_under_systemd(systemd_container: SystemdContainer) -> None:
    """Every block of the Pi's quick start that is not `no-test` (`systemd` ones included),
    in order, as root in a booted bookworm container, in a copy of this checkout's committed
    HEAD, pip from the wheelhouse; then the instance it set up runs under the shipped unit and
    its drop-ins: active, never restarted, nothing refused by its sandbox. (Its sink, an
    InfluxDB 2 on 127.0.0.1:8086, is not there: the samples wait in the outbox.)"""
    assert WHEELHOUSE.is_dir(), "run scripts/bootstrap (the test command does)"
    box = systemd_container
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    box.run("mkdir -p /root/homewatt && tar -x -C /root/homewatt -f -", input=archive)
    box.copy_in(WHEELHOUSE, "/root")
    pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/root/wheels", "PIP_NO_COMPILE": "1"}
    blocks = [
        b
        for b in fences(README.read_text()).blocks
        if b.section == QUICK_START and b.language == "sh" and "no-test" not in b.markers
    ]
    assert sum("systemd" in b.markers for b in blocks) >= 2
    for block in blocks:
        done = box.run(
            ["bash", "-e", "-c", f"cd /root/homewatt\n{block.text}"],
            env=pip,
            input=((PASTED_SECRET + "\n") * 4).encode(),
            check=False,
        )
        assert done.exit_code == 0, f"{block} failed:\n{block.text}\n{done.stdout}\n{done.stderr}"
    unit = "homewatt-collector@main.service"
    state = box.unit_properties(unit, "ActiveState", "NRestarts", "StatusText")
    assert (state["ActiveState"], state["NRestarts"]) == ("active", "0"), state
    assert state["StatusText"] in (
        "collecting every 1 s",
        "waiting for the system clock to be synchronised (NTP)",
    ), state
    journal = box.journal(unit)
    assert "status=31/SYS" not in journal and "Traceback" not in journal, journal
    assert "homewatt-collector: error" not in journal, journal  # e.g. its token not handed over
