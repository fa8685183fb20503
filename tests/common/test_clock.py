"""The clock check asks the kernel, then timedated (through timedatectl), then
systemd-timesyncd's flag file, and says "cannot tell" when none can answer. For the fallbacks
the kernel is not asked and timedatectl is replaced by a script printing what timedated would
(its output format: timedatectl(1), `show --property=... --value`); the kernel's and the real
timedated's answers meet in tests/collector/test_unit_under_systemd.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from homewatt_common.clock import ClockSync, clock_state, clock_synchronized


def fake_timedatectl(tmp_path: Path, stdout: str, code: int = 0) -> str:
    script = tmp_path / "timedatectl"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


def test_the_kernel_answers_first() -> None:
    state = clock_state("/nonexistent/timedatectl", Path("/nonexistent"))
    assert state.how == "the kernel (adjtimex)"
    assert isinstance(state.synchronized, bool)
    assert clock_synchronized() is state.synchronized, "the backup's bool | None answer"


@pytest.mark.parametrize(("value", "synced"), [("yes\n", True), ("no\n", False)])
def test_timedated_answers_first_whatever_timesyncd_left(
    tmp_path: Path, value: str, synced: bool
) -> None:
    timesync = tmp_path / "timesync"
    timesync.mkdir()
    (timesync / "synchronized").touch()  # stale: timedated asks the kernel, which knows better
    state = clock_state(fake_timedatectl(tmp_path, value), timesync, ask_kernel=False)
    assert state == ClockSync(synced, "timedated (NTPSynchronized)")


@pytest.mark.parametrize(
    "timedatectl",
    [
        "/nonexistent/timedatectl",  # no systemd tools
        "FAIL",  # no D-Bus: "Failed to connect to bus", exit 1
        "ODD",  # an answer it does not understand
    ],
)
def test_without_timedated_systemd_timesyncds_flag_file_answers(
    tmp_path: Path, timedatectl: str
) -> None:
    if timedatectl == "FAIL":
        timedatectl = fake_timedatectl(tmp_path, "", code=1)
    elif timedatectl == "ODD":
        timedatectl = fake_timedatectl(tmp_path, "maybe\n")
    timesync = tmp_path / "timesync"
    state = clock_state(timedatectl, timesync, ask_kernel=False)
    assert state == ClockSync(
        None, "timedated does not answer and systemd-timesyncd does not run"
    ), "cannot tell"
    timesync.mkdir()  # timesyncd runs (its RuntimeDirectory=), not synchronised yet
    assert clock_state(timedatectl, timesync, ask_kernel=False) == ClockSync(
        False, f"systemd-timesyncd (no {timesync}/synchronized yet)"
    )
    (timesync / "synchronized").touch()
    assert clock_state(timedatectl, timesync, ask_kernel=False) == ClockSync(
        True, f"systemd-timesyncd ({timesync}/synchronized)"
    )
