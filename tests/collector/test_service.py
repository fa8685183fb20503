"""No worker of the collector ends on an unexpected exception: the source loop and each sink's
forwarder survive one (logged once, traceback at debug level), count it in
homewatt_health.worker_restarts, and go on."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from homewatt_collector.forwarder import Backoff, Forwarder
from homewatt_collector.models import DeviceStatus, Reading, Sample
from homewatt_collector.outbox import Outbox
from homewatt_collector.service import Collector, Delivery
from homewatt_collector.sinks.influxdb import InfluxDBSink


class CountingSource:
    """A test source: counts its reads in `reads` and holds nothing open; a subclass names
    its `kind` and gives `read`."""

    kind = "counting"

    def __init__(self) -> None:
        self.reads = 0

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, ts: int) -> Reading:
        raise NotImplementedError(f"{type(self).__name__} gives read")


RunCollector = Callable[[CountingSource, int], list[str]]


@pytest.fixture
def run_collector(tmp_path: Path) -> RunCollector:
    """`run(source, reads)`: a collector (1 s cycles, no clock wait) reading `source` into an
    outbox whose sink is unreachable (nothing is delivered), stopped after the cycle of the
    `reads`-th read; the lines the outbox then holds, in order."""

    def run(source: CountingSource, reads: int) -> list[str]:
        stop = threading.Event()
        outbox = Outbox(tmp_path / "outbox.sqlite", max_bytes=10**8)
        sink = InfluxDBSink(
            name="nowhere", url="http://127.0.0.1:9", org="o", bucket="b", token=None
        )
        forwarder = Forwarder(outbox, sink, stop, backoff=Backoff(0.1, 0.2))
        collector = Collector(
            site="s",
            unit="u",
            interval_s=1,
            source=source,
            deliveries=[Delivery(outbox, forwarder)],
            stop=stop,
            wait_for_clock_sync=False,
            on_cycle=lambda cycle: stop.set() if source.reads >= reads else None,
        )
        collector.run()
        reopened = Outbox(tmp_path / "outbox.sqlite", max_bytes=10**8)
        lines = [e.line for e in reopened.peek(100)]
        reopened.close()
        return lines

    return run


class FlakySource(CountingSource):
    """A source with a bug: every other read raises something no source should raise."""

    kind = "flaky"

    def read(self, ts: int) -> Reading:
        self.reads += 1
        if self.reads % 2 == 0:
            raise RuntimeError("a bug")
        return Reading([Sample("electricity", {"device": "x"}, {"power_w": 1.0}, ts)])


def test_a_source_that_raises_is_counted_and_the_loop_goes_on(
    run_collector: RunCollector, caplog: pytest.LogCaptureFixture
) -> None:
    source = FlakySource()
    with caplog.at_level(logging.ERROR):
        lines = run_collector(source, 4)
    assert source.reads == 4
    health = [ln for ln in lines if ln.startswith("homewatt_health")]
    assert len(health) == 4
    assert sum("read_errors=1i" in ln for ln in health) == 2
    assert sum("worker_restarts=1i" in ln for ln in health) == 2
    assert sum(ln.startswith("electricity") for ln in lines) == 2
    message = "source loop: unexpected RuntimeError: a bug; going on at the next cycle"
    assert caplog.text.count(message) == 1, "logged once a minute"
    assert "Traceback" not in caplog.text, "the traceback only at debug level"


def test_the_traceback_of_a_survived_exception_is_logged_at_debug_level(
    run_collector: RunCollector, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="homewatt_collector"):
        run_collector(FlakySource(), 2)
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "Traceback" in r.message]
    assert len(debug) == 1 and "RuntimeError: a bug" in debug[0].message
    assert "in read" in debug[0].message, "the frame that raised"


class TwoMeterSource(CountingSource):
    """Two meters: `main` always read, `garage` silent in cycles 2 and 3 (a timeout each)."""

    kind = "modbus"

    def read(self, ts: int) -> Reading:
        self.reads += 1
        silent = self.reads in (2, 3)
        samples = [Sample("electricity", {"device": "main"}, {"power_w": 1.0}, ts)]
        if not silent:
            samples.append(Sample("electricity", {"device": "garage"}, {"power_w": 2.0}, ts))
        devices = [
            DeviceStatus("main", "orno-we515"),
            DeviceStatus(
                "garage", "sdm120", errors=int(silent), timeouts=int(silent), ok=not silent
            ),
        ]
        return Reading(samples, int(silent), devices)


def test_each_device_gets_a_health_point_per_cycle_beside_the_one_per_cycle_health_point(
    run_collector: RunCollector,
) -> None:
    lines = run_collector(TwoMeterSource(), 4)
    assert sum(ln.startswith("homewatt_health,") for ln in lines) == 4, "one per cycle, still"
    assert sum("read_errors=1i" in ln for ln in lines if ln.startswith("homewatt_health,")) == 2
    device = [ln for ln in lines if ln.startswith("homewatt_device_health,")]
    garage = [ln for ln in device if "device=garage" in ln]
    main = [ln for ln in device if "device=main" in ln]
    assert len(garage) == len(main) == 4
    assert all(
        ln.startswith("homewatt_device_health,device=main,model=orno-we515,site=s,source=modbus ")
        for ln in main
    )
    assert all("read_errors=0i" in ln and "timeouts=0i" in ln for ln in main)
    assert ["read_errors=1i" in ln and "timeouts=1i" in ln for ln in garage] == [
        False,
        True,
        True,
        False,
    ]
    ages = [float(ln.split("last_ok_age_s=")[1].split(",")[0].split(" ")[0]) for ln in garage]
    assert ages[0] == 0 and ages[3] == 0
    assert 0.5 < ages[1] < ages[2], "the age of its last good read grows while it is silent"


class ShapeSource(CountingSource):
    """The same point shape each cycle: written, then with only a NaN field, then written."""

    kind = "shapes"

    def read(self, ts: int) -> Reading:
        self.reads += 1
        power = float("nan") if self.reads == 2 else 1.0
        samples = [
            Sample("electricity", {"device": "x"}, {"power_w": power}, ts),
            Sample("electricity", {"device": "bad\\"}, {"power_w": 1.0}, ts),
        ]
        return Reading(samples)


def test_a_sample_line_protocol_cannot_carry_is_a_read_error_even_of_a_known_shape(
    run_collector: RunCollector,
) -> None:
    lines = run_collector(ShapeSource(), 3)
    written = [ln for ln in lines if ln.startswith("electricity,")]
    assert len(written) == 2, "cycles 1 and 3; cycle 2's NaN-only point and every bad name not"
    assert all("device=x" in ln for ln in written)
    health = [ln for ln in lines if ln.startswith("homewatt_health,")]
    assert ["read_errors=2i" in ln for ln in health] == [False, True, False]
    assert all("read_errors=1i" in ln for ln in health if "read_errors=2i" not in ln)


class OneMeterSource(CountingSource):
    kind = "modbus"

    def read(self, ts: int) -> Reading:
        self.reads += 1
        return Reading([Sample("electricity", {"device": "main"}, {"power_w": 1.0}, ts)])


@pytest.fixture
def ram_dir() -> Iterator[Path]:
    """tmpfs for a small bound, as in test_outbox.py: its many checkpoints' fsyncs are free."""
    path = Path(tempfile.mkdtemp(prefix="homewatt-service-", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_samples_dropped_when_the_outbox_opens_with_a_lowered_bound_are_reported(
    ram_dir: Path,
) -> None:
    """A bound lowered in the config since the last run drops the oldest samples as the outbox
    opens, before the service exists: its first homewatt_health point counts them."""
    path = ram_dir / "outbox.sqlite"
    box = Outbox(path, max_bytes=4 * 2**20)
    box.put(
        Sample("electricity", {"site": "s", "device": "m"}, {"power_w": float(ts)}, ts)
        for ts in range(10_000, 25_000)
    )
    box.close()
    outbox = Outbox(path, max_bytes=2**20)
    assert outbox.dropped_at_open > 0
    stop = threading.Event()
    sink = InfluxDBSink(name="nowhere", url="http://127.0.0.1:9", org="o", bucket="b", token=None)
    source = OneMeterSource()
    collector = Collector(
        site="s",
        unit="u",
        interval_s=1,
        source=source,
        deliveries=[Delivery(outbox, Forwarder(outbox, sink, stop, backoff=Backoff(0.1, 0.2)))],
        stop=stop,
        wait_for_clock_sync=False,
        on_cycle=lambda cycle: stop.set() if source.reads >= 2 else None,
    )
    collector.run()
    reopened = Outbox(path, max_bytes=2**20)
    try:
        health = [e.line for e in reopened.peek(100_000) if e.line.startswith("homewatt_health")]
    finally:
        reopened.close()
    dropped = [int(ln.split("outbox_dropped=")[1].split("i")[0]) for ln in health]
    assert len(dropped) == 2
    assert dropped[0] >= outbox.dropped_at_open, "the drops at open are in the first point"
    assert sum(dropped) == outbox.counter("dropped"), "every drop counted once"
