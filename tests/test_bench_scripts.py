"""The benchmark scripts still start: each imports the code and test parts it measures, which
move (a helper moved out of tests/support/shelly_devices.py once broke bench/shelly_poll.py
without any test noticing). `--help` imports everything a run needs and measures nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_imports_what_it_measures_and_starts(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout, result.stdout[-3000:]
