"""A damaged outbox never stops collection: moved aside with a timestamped name, a fresh one at
once, what can still be read salvaged into it; at most 3 copies kept, counted against the bound.

The damage is what a power cut does to an SD card, made on a real outbox file: its first 100
bytes zeroed (the SQLite header), or one page in its middle overwritten."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from homewatt_collector import salvage
from homewatt_collector.models import Sample
from homewatt_collector.outbox import Outbox
from tests.collector.conftest import write_config
from tests.support.processes import ServerProcess, wait_until
from tests.support.victoria import VictoriaMetrics

COUNT = 3000


def samples(start: int, count: int) -> list[Sample]:
    return [
        Sample("electricity", {"site": "home", "device": "main"}, {"power_w": float(ts)}, ts)
        for ts in range(start, start + count)
    ]


def outbox_with_backlog(path: Path, count: int = COUNT) -> list[str]:
    """An outbox holding `count` samples, closed cleanly (checkpointed); their lines."""
    box = Outbox(path, max_bytes=50 * 1024 * 1024)
    box.put(samples(1_700_000_000, count))
    lines = [entry.line for entry in box.peek(count)]
    box.close()
    return lines


def zero_header(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(bytes(100))


def overwrite_middle_page(path: Path) -> None:
    page_size = 4096
    pages = path.stat().st_size // page_size
    with path.open("r+b") as file:
        file.seek((pages // 2) * page_size)
        file.write(b"\xa5" * page_size)


@pytest.mark.parametrize("damage", [zero_header, overwrite_middle_page])
@pytest.mark.parametrize("cli", [True, False], ids=["sqlite3-recover", "row-by-row"])
def test_a_damaged_outbox_is_moved_aside_a_fresh_one_collects_and_what_is_readable_comes_back(
    tmp_path: Path,
    damage: Callable[[Path], None],
    cli: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="homewatt_collector")
    if not cli:
        monkeypatch.setattr(salvage.shutil, "which", lambda _name: None)
    elif shutil.which("sqlite3") is None:
        pytest.fail("the sqlite3 CLI is missing: scripts/bootstrap installs it")
    path = tmp_path / "outbox-local.sqlite"
    lines = outbox_with_backlog(path)
    damage(path)

    box = Outbox(path, max_bytes=50 * 1024 * 1024)
    try:
        assert box.moved_aside is not None
        assert box.moved_aside.name.startswith("outbox-local.sqlite.damaged-")
        assert box.backlog == 0, "a fresh outbox"
        assert box.put(samples(1_800_000_000, 5)) == 5, "collection goes on at once"
        [line] = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
        assert line.startswith(f"outbox {path} is damaged (")
        assert "moved aside to outbox-local.sqlite.damaged-" in line

        salvaged = box.salvage()
        assert box.salvage() == 0, "once"
        assert box.counter("salvaged") == salvaged
        assert box.backlog == 5 + salvaged
        back = [e.line for e in box.peek(COUNT + 10)][5:]
        assert set(back) <= set(lines), "nothing invented"
        if damage is overwrite_middle_page:
            # one 4 KiB page holds about 60 samples: all but those come back
            assert COUNT - 200 < salvaged < COUNT
        else:
            assert salvaged == COUNT, "a zeroed header rebuilt: every row comes back"
        ways = ["sqlite3 .recover", "row by row"] if cli else ["row by row"]  # .recover first
        note = ", header rebuilt" if damage is zero_header else ""
        said = f"salvaged {salvaged} samples from {box.moved_aside.name} "
        assert any(f"{said}({way}{note})" in caplog.text for way in ways), caplog.text
    finally:
        box.close()


def test_at_most_three_damaged_copies_are_kept_and_they_count_against_the_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox-local.sqlite"
    moved = []
    for round_ in range(5):
        outbox_with_backlog(path, 500)
        zero_header(path)
        box = Outbox(path, max_bytes=50 * 1024 * 1024)
        assert box.moved_aside is not None
        moved.append(box.moved_aside)
        box.close()
        path.unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        assert len(salvage.damaged_files(path)) == min(round_ + 1, 3)
    assert salvage.damaged_files(path) == moved[-3:], "the newest three"

    kept = salvage.damaged_bytes(path)
    assert kept > 0
    box = Outbox(path, max_bytes=50 * 1024 * 1024)
    try:
        assert box.stats().size_bytes >= kept
    finally:
        box.close()


def test_an_error_that_is_not_damage_is_not_taken_for_it() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
    assert not salvage.is_damage(full)
    assert salvage.is_damage(corrupt)


@pytest.mark.integration
def test_the_collector_starts_on_a_damaged_outbox_salvages_and_delivers_it(
    tmp_path: Path,
    victoria: VictoriaMetrics,
    collector_process: Callable[..., ServerProcess],
) -> None:
    """The real process on an outbox with a backlog and a torn page: no traceback, one line,
    the health field outbox_salvaged, the salvaged backlog and new samples delivered."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    lines = outbox_with_backlog(state / "outbox-local.sqlite")
    overwrite_middle_page(state / "outbox-local.sqlite")
    config = write_config(tmp_path / "main.yaml", victoria.url, state)
    collector = collector_process(config)

    def salvaged() -> int:
        return sum(int(v) for _, v, _ in victoria.samples("homewatt_health_outbox_salvaged"))

    wait_until(lambda: salvaged() > COUNT - 200, 60, "outbox_salvaged in the health samples")
    wait_until(
        lambda: (
            len(victoria.samples("electricity_power_w", site="home", device="main")) >= salvaged()
        ),
        60,
        "the salvaged backlog delivered",
    )
    assert collector.running()
    log = collector.log_tail(100)
    assert log.count(" is damaged (") == 1
    assert "Traceback" not in log
    assert len(lines) == COUNT
    assert [
        p.name.split(".damaged-")[0] for p in salvage.damaged_files(state / "outbox-local.sqlite")
    ] == ["outbox-local.sqlite"]
