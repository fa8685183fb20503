"""Upgrading a Pi set up by hand with homewatt 0.1 (before contracts/secrets.json): check-config
recognises the old names and paths, prints the lines that fix them, the README's upgrade
section has those very lines, and after running them both apps' check-config passes.

Runs in the sandbox (tests/support/sandbox.py), so /etc/homewatt is the sandbox's, not this
machine's. The old layout is the contract's `old_layout`, written the way 0.1's README and
example configs had users write it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.contracts import REPO, secrets_contract
from tests.support.sandbox import Sandbox, require_sandbox

BIN = Path(sys.executable).parent
COLLECTOR = BIN / "homewatt-collector"
BACKUP = BIN / "homewatt-backup"
SAS = "sv=2026-10-06&sr=c&sp=rcwl&se=2099-01-01T00%3A00%3A00Z&sig=dXBncmFkZQ%3D%3D"


def old(path: str) -> str:
    """An old_layout path of the contract (so the test follows it, not a copy)."""
    moves = secrets_contract()["old_layout"]["moves"]
    (found,) = [m["old_path"] for m in moves if m["old_path"].endswith(path)]
    return str(found)


def readme_upgrade_lines() -> set[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("**From homewatt 0.1**")[1].split("```sh no-test")[1].split("```")[0]
    return {line.strip() for line in block.splitlines()[1:] if line.strip()}


def fixes(stderr: str) -> list[str]:
    """The lines check-config printed below its problems (indented)."""
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


def write(sandbox: Sandbox, files: dict[str, str]) -> None:
    script = []
    for path, content in files.items():
        script.append(f"install -d -m 0700 {Path(path).parent}")
        script.append(f"umask 077; cat > {path} <<'EOF'\n{content}\nEOF")
    sandbox.run("\n".join(script))


@pytest.mark.integration
def test_a_pi_set_up_with_homewatt_0_1_credentials_is_upgraded_with_the_printed_lines(
    tmp_path: Path,
) -> None:
    require_sandbox()
    sandbox = Sandbox(tmp_path / "sandbox")
    collector_example = (REPO / "collector" / "collector.example.yaml").read_text()
    backup_example = (REPO / "backup" / "backup.example.yaml").read_text()
    write(
        sandbox,
        {
            # 0.1's README: "in sinks use token_credential: influxdb-token"
            "/etc/homewatt/collector/main.yaml": collector_example.replace(
                "token_credential: influxdb-write-token", "token_credential: influxdb-token"
            ),
            "/etc/homewatt/credentials/influxdb-write-token": "write-t0ken",
            # 0.1's backup example and README: the operator token in credentials/influxdb-token
            "/etc/homewatt/backup.yaml": backup_example.replace(
                "token_credential: influxdb-operator-token", "token_credential: influxdb-token"
            ),
            old("credentials/influxdb-token"): "operator-t0ken",
            "/etc/homewatt/credentials/azure-sas": SAS,
        },
    )
    check = f"{COLLECTOR} check-config --instance main; {BACKUP} check-config"
    before = sandbox.run(f"set +e\n{check}\nexit 0")
    assert before.stdout.count("\nok\n") == 0, before.stdout
    printed = fixes(before.stderr)
    assert printed == [
        "sudo sed -i 's/token_credential: influxdb-token$/token_credential:"
        " influxdb-write-token/' /etc/homewatt/collector/main.yaml",
        "sudo sed -i 's/token_credential: influxdb-token$/token_credential:"
        " influxdb-operator-token/' /etc/homewatt/backup.yaml",
        f"sudo mv -n {old('credentials/influxdb-token')}"
        " /etc/homewatt/credentials/influxdb-operator-token",
    ], before.stderr
    assert set(printed) <= readme_upgrade_lines()

    sandbox.run("\n".join(printed))
    after = sandbox.run(f"{COLLECTOR} check-config --instance main && {BACKUP} check-config")
    assert after.returncode == 0, after.stderr
    assert after.stdout.count("\nok\n") == 2, after.stdout
    assert after.stderr == ""
    moved = sandbox.upper("/etc") / "homewatt" / "credentials" / "influxdb-operator-token"
    assert moved.read_text().strip() == "operator-t0ken"
    assert not (sandbox.upper("/etc") / "homewatt" / "credentials" / "influxdb-token").exists()


@pytest.mark.integration
def test_a_collector_set_up_from_the_0_1_example_moves_its_token_file_with_the_printed_lines(
    tmp_path: Path,
) -> None:
    require_sandbox()
    sandbox = Sandbox(tmp_path / "sandbox")
    example = (REPO / "collector" / "collector.example.yaml").read_text()
    # 0.1's example: token_file: /etc/homewatt/influxdb-write.token, no credentials directory
    write(
        sandbox,
        {
            "/etc/homewatt/collector/main.yaml": example.replace(
                "token_credential: influxdb-write-token", f"token_file: {old('write.token')}"
            ),
            old("write.token"): "write-t0ken",
        },
    )
    sandbox.run("chmod 0755 /etc/homewatt && rmdir /etc/homewatt/credentials 2>/dev/null || true")
    before = sandbox.run(f"{COLLECTOR} check-config --instance main")
    assert before.returncode == 0, before.stderr  # it still works: a warning, not an error
    assert before.stdout.splitlines()[-1] == "ok (1 warning)"
    printed = fixes(before.stderr)
    assert printed == [
        "sudo install -d -m 0700 /etc/homewatt/credentials",
        f"sudo mv -n {old('write.token')} /etc/homewatt/credentials/influxdb-write-token",
        f"sudo sed -i 's|token_file: {old('write.token')}$|token_credential:"
        " influxdb-write-token|' /etc/homewatt/collector/main.yaml",
    ], before.stderr
    assert set(printed) <= readme_upgrade_lines()

    sandbox.run("\n".join(printed))
    after = sandbox.run(f"{COLLECTOR} check-config --instance main")
    assert after.returncode == 0, after.stderr
    assert after.stderr == ""
    assert after.stdout.splitlines()[-1] == "ok"
    assert "    token from credential influxdb-write-token" in after.stdout.splitlines()
