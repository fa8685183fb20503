"""pyemvue (with boto3 and botocore under it) is the optional extra `homewatt-collector[emporia]`.

In a real venv installed without the extra (offline, from the test command's wheelhouse, as the
collector role installs a Pi without an emporia instance): the other kinds work, and an
emporia instance or `emporia import` ends with one line naming the extra and the command that
installs it; the role's own probe (its vars/main.yml) names the missing package, and the
role's pip command with `[emporia]` installs it, after which the probe is silent and the
command gets past the check. The installed size with and without the extra is printed (-s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.collector.conftest import write_config

REPO = Path(__file__).resolve().parents[3]
WHEELHOUSE = REPO / ".tools" / "wheels"
ROLE_VARS = REPO / "ansible" / "roles" / "collector" / "vars" / "main.yml"


def du_mb(path: Path) -> float:
    """Bytes on disk under `path`, in MB (du -s, 1 MB = 10^6 bytes)."""
    done = subprocess.run(
        ["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[0]) / 1e6


def pip(venv: Path, *args: str) -> None:
    """The test command's pip installing into `venv` (pip --python: the venv needs no pip of
    its own, which saves ensurepip's seconds)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--disable-pip-version-check",
         "--no-compile", "--no-index", "--find-links", str(WHEELHOUSE),
         "-c", str(REPO / "constraints.txt"), *args],
        check=True, timeout=600, env={**os.environ, "PIP_NO_INPUT": "1"},
    )  # fmt: skip


def missing_extras(venv: Path, *extras: str) -> str:
    """What the collector role's probe prints in `venv` for `extras`."""
    script = yaml.safe_load(ROLE_VARS.read_text())["_collector_missing_extras_script"]
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, *extras],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """homewatt-common and homewatt-collector without the extra, built from the checkout."""
    if not WHEELHOUSE.is_dir():
        pytest.fail(f"{WHEELHOUSE} is missing: run scripts/bootstrap (the test command does)")
    path = tmp_path_factory.mktemp("no-extra") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    pip(path, str(REPO / "common"), str(REPO / "collector"))
    return path


def emporia_config(tmp_path: Path) -> Path:
    # No password needed before the check; the simulator URL is never reached.
    account = {
        "name": "home", "username": "owner@example.invalid", "simulator_url": "http://127.0.0.1:9",
    }  # fmt: skip
    return write_config(
        tmp_path / "emporia.yaml", "http://127.0.0.1:9", tmp_path / "state",
        unit="emporia", source={"kind": "emporia", "accounts": [account]},
    )  # fmt: skip


def collector(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "homewatt-collector"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_without_the_extra_an_emporia_instance_names_the_extra_and_its_install_command(
    venv: Path, tmp_path: Path
) -> None:
    config = emporia_config(tmp_path)
    pip_path = venv / "bin" / "pip"  # where the venv's pip is (this one has none: see pip())
    expected = (
        "homewatt-collector: error: the emporia source needs pyemvue (pyemvue is not"
        " installed): it comes with homewatt-collector's 'emporia' extra, installed by"
        f" `{pip_path} install 'homewatt-collector[emporia]'` (the collector role and"
        " install.sh install it when an instance has source.kind: emporia)"
    )
    for argv in (
        ["run", "-c", str(config)],
        ["-c", str(config), "emporia", "import", "--days", "1"],
    ):
        done = collector(venv, *argv)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr.strip() == expected, argv
        assert "Traceback" not in done.stdout + done.stderr
    # the config itself is fine: the check names what the unit would run
    done = collector(venv, "check-config", "--no-secrets", "-c", str(config))
    assert done.returncode == 0, done.stdout + done.stderr


PROBE = (
    "import sys, homewatt_collector.sources, homewatt_collector.cli\n"
    "loaded = {m.split('.')[0] for m in sys.modules} & {'pyemvue', 'boto3', 'botocore'}\n"
    "print(sorted(loaded))"
)


def test_the_cli_and_every_source_kind_load_without_the_extra_and_never_import_it(
    venv: Path,
) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PROBE],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_the_roles_probe_and_pip_command_install_the_extra_where_it_is_missing(
    venv: Path, tmp_path: Path
) -> None:
    without = du_mb(venv)
    assert missing_extras(venv, "emporia") == "pyemvue"
    assert missing_extras(venv) == "", "an extra nobody needs is not asked for"
    # the role's pip command: the collector's wheel with [emporia] (here its source directory)
    pip(venv, f"{REPO / 'collector'}[emporia]")
    assert missing_extras(venv, "emporia") == ""
    with_extra = du_mb(venv)
    print(f"venv without the emporia extra {without:.1f} MB, with it {with_extra:.1f} MB")
    assert with_extra - without > 30, "pyemvue, boto3 and botocore were not installed"
    # past the check: the simulator login fails at its (closed) port, in one line
    done = collector(venv, "-c", str(emporia_config(tmp_path)), "emporia", "import", "--days", "1")
    assert done.returncode == 1
    assert "pyemvue" not in done.stderr and "Traceback" not in done.stderr, done.stderr
