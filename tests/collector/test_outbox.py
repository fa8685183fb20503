"""The outbox keeps every sample on disk, in order, once, until acknowledged; bounded when full."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from homewatt_collector.errors import OutboxBusy
from homewatt_collector.models import Sample
from homewatt_collector.outbox import Outbox


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


def test_a_full_outbox_drops_the_oldest_samples_and_counts_them(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite", max_bytes=256 * 1024)
    for start in range(0, 20_000, 500):
        box.put(samples(10_000 + start, 500))
    stats = box.stats()
    assert stats.size_bytes <= 256 * 1024 + 64 * 1024  # within a few pages of the bound
    assert stats.counters["dropped"] > 0
    assert stats.backlog + stats.counters["dropped"] == 20_000
    remaining = [e.ts for e in box.peek(100_000)]
    assert remaining == list(range(10_000 + 20_000 - len(remaining), 30_000)), "the newest are kept"
    box.close()


def test_samples_in_flight_are_not_dropped_to_make_room(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite", max_bytes=256 * 1024)
    box.put(samples(10_000, 500))
    in_flight = box.peek(100)
    for start in range(500, 20_000, 500):
        box.put(samples(10_000 + start, 500))
    assert box.ack(in_flight) == 100, "the batch being sent was still there to acknowledge"
    box.close()


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
