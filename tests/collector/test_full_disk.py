"""A full disk never ends the collector with a traceback: at the first start it says so in one
line and exits 1 (systemd tries again), and SIGTERM while the disk is full stops it cleanly.

The full disk is real: a 256 KiB tmpfs mounted as the outbox directory in a private mount
namespace (`unshare -m`, so nothing outside the test sees it), filled with a file."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.collector.conftest import COLLECTOR_BIN, write_config

pytestmark = pytest.mark.integration


def run_on_a_small_disk(
    state: Path, script: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) with a 256 KiB tmpfs on `state`, in a private mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is missing")
    state.mkdir(mode=0o700, exist_ok=True)
    prelude = f"mount -t tmpfs -o size=256k,mode=0700 tmpfs {state} || exit 99\n"
    return subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c", prelude + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_full_disk_at_the_first_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "main.yaml", "http://127.0.0.1:9", state)
    done = run_on_a_small_disk(
        state,
        f"""
        dd if=/dev/zero of={state}/filler bs=4k count=64 2>/dev/null
        {COLLECTOR_BIN} run -c {config} --no-table
        """,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"homewatt-collector: error: outbox {state}/outbox-local.sqlite: cannot open it:"
        f" database or disk is full (free space in {state}?)"
    ]


def test_sigterm_while_the_disk_is_full_stops_cleanly(tmp_path: Path) -> None:
    """Collecting while no database answers (the outbox grows), then the disk fills up
    (samples cannot be stored: one line a minute), then SIGTERM: exit 0, no traceback."""
    state = tmp_path / "state"
    config = write_config(tmp_path / "main.yaml", "http://127.0.0.1:9", state)
    done = run_on_a_small_disk(
        state,
        f"""
        {COLLECTOR_BIN} run -c {config} --no-table 2>{tmp_path}/log &
        pid=$!
        for i in $(seq 120); do  # until the outbox is open (60 s at most; a loaded start is slow)
            [ -s {state}/outbox-local.sqlite ] && break
            sleep 0.5
        done
        sleep 1
        dd if=/dev/zero of={state}/filler bs=4k count=64 2>/dev/null
        for i in $(seq 120); do  # until the collector meets the full disk (60 s at most)
            grep -q "cannot store samples" {tmp_path}/log && break
            sleep 0.5
        done
        kill -TERM $pid
        wait $pid
        echo "exit=$?"
        """,
    )
    log = (tmp_path / "log").read_text()
    assert done.stdout.strip() == "exit=0", log
    assert "cannot store samples: database or disk is full" in log
    assert "Traceback" not in log
    assert log.splitlines()[-1].endswith("samples pending in the outbox"), log
