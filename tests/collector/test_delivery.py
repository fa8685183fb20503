"""End to end: the collector at 1 Hz -> fault proxy -> VictoriaMetrics (InfluxDB v2 write API).

Every scenario ends with the same audit: every sample the collector produced arrived exactly once
(VictoriaMetrics keeps duplicates, so a duplicate would show), none is left behind, and refused
points sit in quarantine. The faults are real: refused connections, reset sockets, 429/503/400
answers and slow responses from a proxy on the wire.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from homewatt_collector.models import Sample
from homewatt_collector.outbox import Outbox
from tests.collector.conftest import pending, query, wait_for_samples, write_config
from tests.support.faultproxy import FaultProxy
from tests.support.filesizes import MB, FileSizes
from tests.support.processes import ServerProcess, wait_until
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration

StartCollector = Callable[..., ServerProcess]


# One series per measurement the demo collector writes (a sample of each counted once).
MEASURED = (
    "electricity_power_w",
    "homewatt_health_read_errors",
    "homewatt_device_health_read_errors",
)


@dataclass
class Audit:
    electricity: list[int]  # timestamps of delivered electricity samples (duplicates kept)
    health: list[int]
    device_health: list[int]
    skipped_slots: int
    counters: dict[str, int]
    backlog: int


def stop_and_audit(collector: ServerProcess, outbox: Path, vm: VictoriaMetrics) -> Audit:
    """Stop the collector (SIGTERM), then compare its outbox counters with what VM holds."""
    assert collector.stop(timeout=30) == 0, collector.log_tail()
    box = Outbox(outbox, max_bytes=10**9)
    stats = box.stats()
    box.close()
    delivered = stats.counters["delivered"]

    def everything_arrived() -> bool:
        got = sum(len(vm.samples(name)) for name in MEASURED)
        return got >= delivered

    wait_until(everything_arrived, 30, f"{delivered} delivered samples in VictoriaMetrics")
    time.sleep(1.5)  # anything extra (a duplicate) would show up by now too
    electricity = [ts for ts, _, _ in vm.samples("electricity_power_w")]
    health = [ts for ts, _, _ in vm.samples("homewatt_health_read_errors")]
    device_health = [ts for ts, _, _ in vm.samples("homewatt_device_health_read_errors")]
    skipped = sum(int(v) for _, v, _ in vm.samples("homewatt_health_skipped_slots"))
    return Audit(electricity, health, device_health, skipped, stats.counters, stats.backlog)


def assert_exactly_once(audit: Audit) -> None:
    assert audit.backlog == 0, "nothing left behind in the outbox"
    assert len(audit.electricity) == len(set(audit.electricity)), "no duplicate electricity sample"
    assert len(audit.health) == len(set(audit.health)), "no duplicate health sample"
    assert len(audit.device_health) == len(set(audit.device_health)), "one device, once a cycle"
    delivered = len(audit.electricity) + len(audit.health) + len(audit.device_health)
    assert delivered == audit.counters["delivered"]
    assert audit.counters["enqueued"] == audit.counters["delivered"] + audit.counters["quarantined"]
    assert audit.counters["dropped"] == 0


def assert_no_gaps(audit: Audit, allowed_gap_s: int = 0) -> None:
    span = audit.electricity[-1] - audit.electricity[0] + 1
    assert len(audit.electricity) + audit.skipped_slots + allowed_gap_s >= span


@dataclass
class Rig:
    """A collector config pointing through the fault proxy at VictoriaMetrics."""

    tmp_path: Path
    vm: VictoriaMetrics
    proxy: FaultProxy
    start_process: StartCollector

    @property
    def outbox(self) -> Path:
        return self.tmp_path / "state" / "outbox-local.sqlite"

    def config(self, **overrides: Any) -> Path:
        return write_config(
            self.tmp_path / "main.yaml", self.proxy.url, self.tmp_path / "state", **overrides
        )

    def start(self, **overrides: Any) -> ServerProcess:
        return self.start_process(self.config(**overrides))

    def pending(self) -> int:
        return pending(self.outbox)

    def wait_for_samples(self, count: int) -> None:
        wait_for_samples(self.outbox, count)

    def audit(self, collector: ServerProcess) -> Audit:
        return stop_and_audit(collector, self.outbox, self.vm)


@pytest.fixture
def rig(
    tmp_path: Path,
    victoria: VictoriaMetrics,
    victoria_proxy: FaultProxy,
    collector_process: StartCollector,
) -> Rig:
    return Rig(tmp_path, victoria, victoria_proxy, collector_process)


def test_samples_reach_the_database_exactly_once_every_second(rig: Rig) -> None:
    collector = rig.start()
    rig.wait_for_samples(6 * len(MEASURED))  # six cycles
    audit = rig.audit(collector)
    assert_exactly_once(audit)
    assert_no_gaps(audit)
    assert len(audit.electricity) >= 6
    (series,) = rig.vm.export('{__name__="electricity_power_w"}')
    assert series.labels == {
        "__name__": "electricity_power_w",
        "site": "test",
        "source": "demo",
        "device": "sim",
        "channel": "total",
        "model": "demo",
    }


def test_a_database_outage_loses_nothing_and_the_backlog_drains_after(rig: Rig) -> None:
    collector = rig.start()
    rig.wait_for_samples(4)
    rig.proxy.down()
    time.sleep(8)
    assert rig.pending() >= 12, "samples pile up in the outbox while the database is away"
    rig.proxy.up()
    wait_until(lambda: rig.pending() <= 2, 20, "the backlog to drain")
    audit = rig.audit(collector)
    assert_exactly_once(audit)
    assert_no_gaps(audit)
    assert "retrying" in collector.log_tail(50)
    assert "delivering again" in collector.log_tail(50)


def test_delivery_resumes_within_10_s_of_the_database_coming_back_during_a_long_backoff(
    rig: Rig,
) -> None:
    """Backoff 20-60 s (retry_min_s: 20): without the probe the first retry after the
    outage would come 20-40 s after it began; the probe (GET /ping every 4 s) ends it."""
    sink = {
        "name": "local",
        "url": rig.proxy.url,
        "org": "homewatt",
        "bucket": "homewatt",
        "anonymous": True,
        "timeout_s": 2,
        "retry_min_s": 20,
        "retry_max_s": 60,
    }
    collector = rig.start(sinks=[sink])
    rig.wait_for_samples(3)
    wait_until(lambda: rig.pending() <= 2, 20, "delivery before the outage")
    rig.proxy.down()
    wait_until(lambda: "retrying" in collector.log_tail(50), 20, "a failed write")
    time.sleep(2)
    rig.proxy.up()
    back = time.monotonic()
    wait_until(lambda: "delivering again" in collector.log_tail(50), 10, "delivery to resume")
    assert time.monotonic() - back < 10
    wait_until(lambda: rig.pending() <= 2, 10, "the backlog to drain")
    audit = rig.audit(collector)
    assert_exactly_once(audit)


def test_a_collector_killed_mid_outage_delivers_its_backlog_after_restart(rig: Rig) -> None:
    first = rig.start()
    rig.wait_for_samples(4)
    rig.proxy.down()
    time.sleep(5)
    first.kill()  # SIGKILL: no shutdown, no flush, no checkpoint
    backlog_at_kill = rig.pending()
    assert backlog_at_kill >= 8
    second = rig.start()
    time.sleep(3)
    rig.proxy.up()
    wait_until(lambda: rig.pending() <= 2, 20, "the backlog to drain after the restart")
    audit = rig.audit(second)
    assert_exactly_once(audit)
    assert_no_gaps(audit, allowed_gap_s=5)  # the seconds with no collector running


def test_429_and_503_answers_are_retried_until_accepted(rig: Rig) -> None:
    rig.proxy.respond(429, times=3, headers={"Retry-After": "1"}, body=b'{"message":"slow down"}')
    rig.proxy.respond(503, times=3, body=b'{"message":"unavailable"}')
    collector = rig.start()
    wait_until(lambda: rig.proxy.stats.faulted >= 6, 30, "six refused writes")
    rig.wait_for_samples(16)
    audit = rig.audit(collector)
    assert_exactly_once(audit)
    assert_no_gaps(audit)
    assert audit.counters["quarantined"] == 0


def test_a_point_the_server_refuses_is_quarantined_and_everything_else_arrives(rig: Rig) -> None:
    rig.proxy.down()  # build a backlog, so the refused point arrives inside a larger batch
    collector = rig.start()
    rig.wait_for_samples(12)
    poison: list[bytes] = []

    def refuses(body: bytes) -> bool:
        if not poison:
            electricity = [ln for ln in body.split(b"\n") if ln.startswith(b"electricity,")]
            poison.append(electricity[len(electricity) // 2])
        return poison[0] in body

    rig.proxy.reject_if(refuses)
    rig.proxy.up()
    wait_until(lambda: rig.pending() <= 2, 20, "the backlog to drain")
    audit = rig.audit(collector)
    assert_exactly_once(audit)
    assert audit.counters["quarantined"] == 1
    refused_ts = int(poison[0].rsplit(b" ", 1)[1])
    assert refused_ts not in audit.electricity
    assert_no_gaps(audit, allowed_gap_s=1)  # the refused point
    box = Outbox(rig.outbox, max_bytes=10**9)
    (entry,) = box.quarantined()
    box.close()
    assert entry.status == 400 and entry.line.encode() == poison[0]
    assert "point refused" in entry.reason


def test_a_slow_database_does_not_disturb_the_one_second_loop(rig: Rig) -> None:
    rig.proxy.delay_s = 1.5  # every write takes 1.5 s to be answered (timeout is 2 s)
    collector = rig.start()
    rig.wait_for_samples(20)
    rig.proxy.delay_s = 0
    audit = rig.audit(collector)
    assert_exactly_once(audit)
    # Had the loop waited for the sink, every write would have cost it 1.5 s: a skipped slot
    # each cycle. A loaded CI machine may stall a slot on its own, so allow two in 20.
    assert audit.skipped_slots <= 2, "the loop never waited for the sink"
    assert_no_gaps(audit)


def test_a_write_that_times_out_is_retried_and_a_repeat_is_the_identical_point(rig: Rig) -> None:
    """A server that answers after the client gave up may have stored the batch: the retry
    sends the same points again. InfluxDB keeps one point per series and timestamp, so the
    repeat is harmless there; here we prove nothing is lost and a repeat is the same point."""
    rig.proxy.delay_s = 3.0  # beyond the 2 s client timeout
    collector = rig.start()
    rig.wait_for_samples(8)
    rig.proxy.delay_s = 0
    wait_until(lambda: rig.pending() <= 2, 20, "the backlog to drain")
    assert collector.stop(timeout=30) == 0
    box = Outbox(rig.outbox, max_bytes=10**9)
    stats = box.stats()
    box.close()
    assert stats.backlog == 0
    wait_until(
        lambda: (
            sum(len({ts for ts, _, _ in rig.vm.samples(name)}) for name in MEASURED)
            == stats.counters["delivered"]
        ),
        30,
        "every delivered sample in VictoriaMetrics",
    )
    by_ts: dict[int, set[float]] = {}
    for ts, value, _ in rig.vm.samples("electricity_power_w"):
        by_ts.setdefault(ts, set()).add(value)
    assert all(len(values) == 1 for values in by_ts.values()), "a repeat carries the same value"


def test_sigterm_sends_pending_samples_and_exits_cleanly(rig: Rig) -> None:
    collector = rig.start(
        sinks=[
            {
                "name": "local",
                "url": rig.proxy.url,
                "org": "o",
                "bucket": "b",
                "anonymous": True,
                "flush_interval_s": 60,  # nothing is sent until shutdown
            }
        ],
    )
    rig.wait_for_samples(8)
    collector.signal(signal.SIGTERM)
    assert collector.process is not None
    assert collector.process.wait(timeout=20) == 0
    assert rig.pending() == 0, "the final flush delivered what was pending"
    assert "Traceback" not in collector.log_tail(100)


FAULT_INJECTION = Path(__file__).resolve().parents[1] / "support" / "faultinject"


def test_an_unexpected_exception_in_each_worker_is_survived_counted_and_delivery_goes_on(
    rig: Rig,
) -> None:
    """Exceptions no code path expects, injected into the real process: the forwarder's write
    fails as http.client does for a token it cannot encode (3 times), the source's open (once),
    the source loop's outbox put (cycles 2 and 3: their samples are lost, nothing can keep
    them; their health counts come with the next cycle) and the source's read (cycle 12).
    Every worker goes on; each kind is logged once, without a traceback; every one is counted
    in homewatt_health.worker_restarts, and everything else arrives."""
    faults = [
        {
            "target": "homewatt_collector.sources.demo.source:DemoSource.open",
            "raise": "OSError",
            "message": "not today",
        },
        {
            "target": "homewatt_collector.outbox:Outbox.put",
            "raise": "RuntimeError",
            "message": "disk says no",
            "after": 1,
            "times": 2,
        },
        {
            "target": "homewatt_collector.sinks.influxdb:InfluxDBSink.write",
            "raise": "UnicodeEncodeError",
            "message": "Token t\u00f8ken",
            "after": 6,
            "times": 3,
        },
        {
            "target": "homewatt_collector.sources.demo.source:DemoSource.read",
            "raise": "KeyError",
            "message": "a bug",
            "after": 11,
            "times": 1,
        },
    ]
    env = {"PYTHONPATH": str(FAULT_INJECTION), "HOMEWATT_TEST_FAULTS": json.dumps(faults)}
    collector = rig.start_process(rig.config(), env=env)
    rig.wait_for_samples(30)
    wait_until(lambda: rig.pending() <= 2, 20, "the backlog to drain")
    assert collector.running(), collector.log_tail()
    log = collector.log_tail(200)
    audit = rig.audit(collector)
    assert_exactly_once(audit)
    assert_no_gaps(audit, allowed_gap_s=3)  # cycles 2 and 3 (not stored), 12 (not read)
    restarts = sum(int(v) for _, v, _ in rig.vm.samples("homewatt_health_worker_restarts"))
    sink_errors = sum(int(v) for _, v, _ in rig.vm.samples("homewatt_health_sink_errors"))
    read_errors = sum(int(v) for _, v, _ in rig.vm.samples("homewatt_health_read_errors"))
    assert (restarts, sink_errors, read_errors) == (1 + 2 + 3 + 1, 3, 1)
    for line in (
        "source loop: unexpected OSError: not today; going on in 1 s",
        "source loop: unexpected RuntimeError: disk says no; going on at the next cycle",
        "sink local forwarder: unexpected UnicodeEncodeError: 'latin-1' codec can't encode",
        "source loop: unexpected KeyError: 'a bug'; going on at the next cycle",
    ):
        assert log.count(line) == 1, log
    assert "Traceback" not in log


def test_a_full_outbox_with_the_database_down_stays_within_1_mb_and_keeps_the_newest(
    rig: Rig,
) -> None:
    """`max_size_mb: 1`, the database away, the outbox filled to its bound by an earlier outage
    (a backlog that fits in one batch, so the forwarder holds all of it in flight): the
    collector drops the oldest samples, those in flight too, keeps every one it reads, logs
    the drop once and counts it in homewatt_health; every file of the outbox together stays
    within 1 MiB the whole time."""
    rig.proxy.down()
    rig.outbox.parent.mkdir(parents=True)
    scratch = Outbox(rig.tmp_path / "scratch.sqlite", max_bytes=MB, lock=False)
    budget = scratch.data_budget  # what the collector's 1 MiB outbox leaves its live pages
    scratch.close()
    box = Outbox(rig.outbox, max_bytes=16 * MB)  # fast to fill; the collector opens it at 1 MB
    old = int(time.time()) - 10 * 86400
    while box.live_bytes() < budget - 2 * 4096:
        box.put(
            Sample("electricity", {"site": "test", "device": "old"}, {"power_w": 1.5}, ts)
            for ts in range(old, old + 50)
        )
        old += 50
    backlog = box.backlog
    box.close()
    with FileSizes(rig.outbox) as sizes:
        collector = rig.start(outbox={"max_size_mb": 1})
        wait_until(
            lambda: query(rig.outbox, "SELECT value FROM counters WHERE name = 'dropped'") > 0,
            60,
            "the full outbox to drop",
        )
        time.sleep(3)
        oldest_kept = query(rig.outbox, "SELECT min(ts) FROM pending")
        dropped = query(rig.outbox, "SELECT value FROM counters WHERE name = 'dropped'")
        rig.proxy.up()
        wait_until(lambda: rig.pending() <= 3, 60, "the backlog to drain")
        audit = rig.audit(collector)
    assert sizes.peak_total <= MB, sizes.peaks
    assert 0 < dropped < backlog, "only old samples were dropped"
    assert oldest_kept > int(time.time()) - 10 * 86400, "the oldest went first"
    assert audit.counters["dropped"] == dropped, "the collector's own samples were all kept"
    assert len(audit.electricity) == len(set(audit.electricity))
    produced = [ts for ts, _, _ in rig.vm.samples("electricity_power_w", device="sim")]
    assert len(produced) == len(set(produced))
    assert_no_gaps(Audit(produced, [], [], audit.skipped_slots, audit.counters, 0), allowed_gap_s=0)
    reported = sum(int(v) for _, v, _ in rig.vm.samples("homewatt_health_outbox_dropped"))
    assert reported == dropped, "every drop is counted in homewatt_health.outbox_dropped"
    log = collector.log_tail(200)
    assert log.count("is full") == 1, log
    assert "oldest samples" in log
