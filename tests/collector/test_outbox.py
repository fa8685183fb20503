"""The outbox keeps every sample on disk, in order, once, until acknowledged; every file of it
within its bound, dropping the oldest samples (in flight or not) when full."""

from __future__ import annotations

import logging
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from homewatt_collector.errors import OutboxBusy
from homewatt_collector.models import Sample
from homewatt_collector.outbox import _SCHEMA, Outbox
from tests.support.filesizes import MB, FileSizes, file_bytes, wal_bytes


@pytest.fixture
def ram_dir() -> Iterator[Path]:
    """A directory on tmpfs for the tests that fill small bounds: sizes are the same as on a
    disk, but a checkpoint's fsync is free (a 1 MiB bound checkpoints every few transactions;
    on the VM's disk those fsyncs made one of these tests take a minute)."""
    path = Path(tempfile.mkdtemp(prefix="homewatt-outbox-", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def samples(start: int, count: int, device: str = "main") -> list[Sample]:
    return [
        Sample("electricity", {"site": "home", "device": device}, {"power_w": float(ts)}, ts)
        for ts in range(start, start + count)
    ]


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.sqlite", max_bytes=50 * 1024 * 1024)
    yield box  # type: ignore[misc]
    box.close()


def test_entries_come_out_in_the_order_they_went_in(outbox: Outbox) -> None:
    outbox.put(samples(100, 5))
    assert [e.ts for e in outbox.peek(10)] == [100, 101, 102, 103, 104]


def test_a_sample_with_the_same_identity_is_kept_once(outbox: Outbox) -> None:
    assert outbox.put(samples(100, 3)) == 3
    assert outbox.put(samples(101, 3)) == 1  # 101 and 102 are already there
    assert outbox.backlog == 4
    assert outbox.counter("duplicates") == 2
    # same time, another device: another identity
    assert outbox.put(samples(100, 1, device="other")) == 1


def test_acknowledged_entries_leave_and_the_rest_stay(outbox: Outbox) -> None:
    outbox.put(samples(100, 10))
    batch = outbox.peek(4)
    assert outbox.ack(batch) == 4
    assert [e.ts for e in outbox.peek(100)] == list(range(104, 110))
    assert outbox.counter("delivered") == 4
    assert outbox.backlog == 6


def test_the_backlog_and_counters_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path, max_bytes=10**8)
    box.put(samples(100, 10))
    box.ack(box.peek(3))
    box.close()
    again = Outbox(path, max_bytes=10**8)
    assert again.backlog == 7
    assert [e.ts for e in again.peek(1)] == [103]
    assert again.stats().counters["delivered"] == 3
    again.close()


def test_committed_samples_survive_a_sigkill_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    writer = textwrap.dedent(f"""
        import os, signal, sys
        from homewatt_collector.models import Sample
        from homewatt_collector.outbox import Outbox
        from pathlib import Path
        box = Outbox(Path({str(path)!r}), max_bytes=10**8, checkpoint_interval_s=3600)
        for ts in range(1000, 1250):
            box.put([Sample("electricity", {{"device": "m"}}, {{"power_w": 1.0}}, ts)])
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint
    """)
    result = subprocess.run([sys.executable, "-c", writer], check=False)
    assert result.returncode == -signal.SIGKILL
    box = Outbox(path, max_bytes=10**8)
    assert box.backlog == 250
    assert [e.ts for e in box.peek(300)] == list(range(1000, 1250))
    box.close()


def test_a_full_outbox_drops_the_oldest_samples_and_counts_them(ram_dir: Path) -> None:
    box = Outbox(ram_dir / "outbox.sqlite", max_bytes=1 * MB)
    with FileSizes(ram_dir / "outbox.sqlite") as sizes:
        for start in range(0, 15_000, 500):
            box.put(samples(10_000 + start, 500))
    assert sizes.peak_total <= 1 * MB, sizes.peaks
    stats = box.stats()
    assert stats.size_bytes <= 1 * MB
    assert stats.counters["dropped"] > 0
    assert stats.backlog + stats.counters["dropped"] == 15_000
    remaining = [e.ts for e in box.peek(100_000)]
    assert remaining == list(range(25_000 - len(remaining), 25_000)), "the newest are kept"
    box.close()


def test_a_batch_in_flight_does_not_protect_the_oldest_samples(ram_dir: Path) -> None:
    """The sink is down and its batch (the whole backlog: it fits in one) is retried: the
    outbox fills up and drops the oldest samples, those of the batch too, never the newest."""
    box = Outbox(ram_dir / "outbox.sqlite", max_bytes=1 * MB)
    box.put(samples(10_000, 500))
    in_flight = box.peek(5000)
    assert len(in_flight) == 500, "the backlog fits in one batch"
    with FileSizes(ram_dir / "outbox.sqlite") as sizes:
        for ts in range(10_500, 25_000, 10):  # ten one-second cycles a put
            box.put(samples(ts, 10))
    assert sizes.peak_total <= 1 * MB, sizes.peaks
    kept = [e.ts for e in box.peek(100_000)]
    assert kept == list(range(25_000 - len(kept), 25_000)), "the newest are kept, in order"
    assert kept[0] > 10_500, "the batch in flight was dropped with the other old samples"
    assert box.ack(in_flight) == 0, "its acknowledgement deletes nothing that came later"
    stats = box.stats()
    assert stats.backlog == len(kept)
    assert stats.counters["dropped"] == 15_000 - len(kept)
    assert stats.counters["delivered"] == 0
    box.close()


def test_an_ack_of_a_batch_partly_dropped_deletes_only_what_is_left(ram_dir: Path) -> None:
    box = Outbox(ram_dir / "outbox.sqlite", max_bytes=1 * MB)
    box.put(samples(10_000, 3000))
    in_flight = box.peek(3000)
    box.put(samples(13_000, 6000))  # past the bound: the oldest of the batch go
    dropped = box.counter("dropped")
    assert 0 < dropped < 3000
    assert [e.ts for e in box.peek(1)] == [10_000 + dropped]
    assert box.ack(in_flight) == 3000 - dropped
    assert box.counter("delivered") == 3000 - dropped
    assert [e.ts for e in box.peek(10_000)] == list(range(13_000, 19_000))
    box.close()


def test_the_wal_is_truncated_while_a_backlog_drains(ram_dir: Path) -> None:
    clock = FakeClock()
    path = ram_dir / "outbox.sqlite"
    box = Outbox(path, max_bytes=8 * MB, clock=clock)
    box.put(samples(10_000, 20_000))
    with FileSizes(path) as sizes:
        while batch := box.peek(5000):
            box.ack(batch)
    assert box.backlog == 0
    assert box.counter("dropped") == 0, "the drain itself drops nothing"
    assert sizes.peaks["-wal"] <= box.wal_limit, sizes.peaks
    assert sizes.peak_total <= 8 * MB, sizes.peaks
    assert wal_bytes(path) <= box.wal_limit // 2
    clock.now += box.checkpoint_interval_s
    box.maybe_checkpoint()
    assert wal_bytes(path) == 0, "a checkpoint truncates the WAL"
    box.close()


def test_drops_are_logged_once_a_minute_with_their_count(
    ram_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    box = Outbox(ram_dir / "outbox.sqlite", max_bytes=1 * MB, clock=clock)
    caplog.set_level(logging.WARNING, logger="homewatt_collector.outbox")
    for ts in range(10_000, 22_000, 10):
        box.put(samples(ts, 10))
        clock.now += 0.001
    first = box.counter("dropped")
    lines = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "dropped the" in lines[0] and "oldest samples" in lines[0]
    clock.now += 60
    box.put(samples(22_000, 2000))
    lines = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
    assert len(lines) == 2, "a new minute, a new line"
    assert box.counter("dropped") > first
    counts = [int(re.search(r"dropped the (\d+) oldest", line)[1]) for line in lines]  # type: ignore[index]
    # The second line counts every drop since the first (later ones wait for the next line).
    assert first <= sum(counts) <= box.counter("dropped")
    box.close()


def test_a_lowered_bound_gives_the_file_back(ram_dir: Path) -> None:
    path = ram_dir / "outbox.sqlite"
    box = Outbox(path, max_bytes=16 * MB)
    box.put(samples(10_000, 30_000))
    box.close()
    assert file_bytes(path) > 2 * MB
    smaller = Outbox(path, max_bytes=1 * MB)
    assert file_bytes(path) <= 1 * MB, "the database file shrank to the new bound"
    kept = [e.ts for e in smaller.peek(100_000)]
    assert kept == list(range(40_000 - len(kept), 40_000))
    assert smaller.dropped_at_open == 30_000 - len(kept) == smaller.counter("dropped")
    smaller.close()


def test_an_outbox_made_before_auto_vacuum_is_converted_and_keeps_its_samples(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(_SCHEMA)
    old.executemany(
        "INSERT INTO pending (ident, ts, line) VALUES (?, ?, ?)",
        [(ts, ts, f"electricity,device=m power_w=1 {ts}") for ts in range(100, 200)],
    )
    old.close()
    box = Outbox(path, max_bytes=10 * MB)
    assert [e.ts for e in box.peek(1000)] == list(range(100, 200))
    box.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    check.close()


def test_a_refused_point_is_quarantined_and_can_be_queued_again(outbox: Outbox) -> None:
    outbox.put(samples(100, 3))
    bad = outbox.peek(3)[1]
    outbox.quarantine(bad, 400, "HTTP 400: field type conflict")
    assert [e.ts for e in outbox.peek(10)] == [100, 102]
    stats = outbox.stats()
    assert (stats.quarantined_now, stats.counters["quarantined"]) == (1, 1)
    (entry,) = outbox.quarantined()
    assert (entry.ts, entry.status, entry.reason) == (101, 400, "HTTP 400: field type conflict")
    assert outbox.requeue_quarantined() == 1
    assert sorted(e.ts for e in outbox.peek(10)) == [100, 101, 102]
    assert outbox.stats().quarantined_now == 0


def test_a_second_process_cannot_open_a_locked_outbox(tmp_path: Path, outbox: Outbox) -> None:
    with pytest.raises(OutboxBusy, match="in use by another process"):
        Outbox(tmp_path / "outbox.sqlite", max_bytes=10**8)


def test_the_outbox_files_are_private(tmp_path: Path, outbox: Outbox) -> None:
    outbox.put(samples(1, 1))
    for name in ("outbox.sqlite", "outbox.sqlite.lock"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, name
