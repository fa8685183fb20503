"""The collector acts on each answer InfluxDB 2 gives a write as contracts/influxdb-write-answers
states; a 422 partial write is acknowledged and counted, never bisected. The partial write is
proven against the repository's InfluxDB 2 stand-in (tests/support/influxdb2: not the real
InfluxDB 2, which cannot run here), whose 422 is reconstructed from InfluxDB's source."""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import pytest

from homewatt_collector.errors import (
    SinkPartialWrite,
    SinkRejected,
    SinkUnauthorized,
    SinkUnavailable,
)
from homewatt_collector.forwarder import Backoff, Forwarder
from homewatt_collector.models import Sample
from homewatt_collector.outbox import Outbox
from homewatt_collector.sinks.influxdb import InfluxDBSink, classify
from tests.support.influxdb2 import InfluxDB2StandIn

REPO = Path(__file__).resolve().parents[2]
ANSWERS = json.loads((REPO / "contracts" / "influxdb-write-answers.json").read_text())["answers"]
KINDS = {
    "ack, count N in sink_rejected, log once": SinkPartialWrite,
    "split until alone, quarantine": SinkRejected,
    "retry after backoff, honouring Retry-After": SinkUnavailable,
    "keep the data, retry at the longest backoff": SinkUnauthorized,
}


@pytest.mark.parametrize(
    "answer", [a for a in ANSWERS if a["status"] != 204], ids=lambda a: f"{a['status']}"
)
def test_each_answer_in_the_contract_gets_its_action(answer: dict[str, object]) -> None:
    message = json.loads(str(answer["body"]))["message"]
    error = classify(int(str(answer["status"])), message, retry_after="7")
    assert type(error) is KINDS[str(answer["action"])], answer["meaning"]
    if isinstance(error, SinkPartialWrite):
        assert error.dropped == int(re.findall(r"dropped=(\d+)", message)[-1])
    if isinstance(error, SinkUnavailable):
        assert error.retry_after_s == 7.0


def test_a_partial_write_is_acked_in_one_request_and_counted_not_run_against_a_real_influxdb2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A backlog of 5,000 samples, 2,000 of them older than the bucket's 1 h retention: one
    request, the 3,000 stored, 2,000 counted in sink_rejected, one ERROR line, nothing left
    in the outbox or in quarantine (before: 6,011 requests and an ERROR per point)."""
    server = InfluxDB2StandIn(tmp_path / "standin").start()
    outbox = Outbox(tmp_path / "outbox.sqlite", max_bytes=10**8)
    try:
        server.setup(org="homewatt", bucket="homewatt", token="tok", retention_s=3600)
        now = int(server.now_ns() // 10**9)
        start = now - 2000 - 3600
        outbox.put(
            Sample("electricity", {"site": "home", "device": "m"}, {"power_w": 1.0}, ts)
            for ts in range(start, start + 5000)
        )
        sink = InfluxDBSink(
            name="local", url=server.url, org="homewatt", bucket="homewatt", token="tok"
        )
        forwarder = Forwarder(outbox, sink, threading.Event(), backoff=Backoff(0.1, 0.2))
        with caplog.at_level(logging.ERROR, logger="homewatt_collector"):
            assert forwarder.drain() == 5000
        sink.close()
        writes = server.calls("POST", "/api/v2/write")
        assert len(writes) == 1
        dropped = 5000 - 3000
        low, high = dropped - 5, dropped + 5  # the retention bound moves while the test runs
        assert low <= forwarder.take_rejected() <= high
        assert forwarder.take_errors() == 0
        assert outbox.backlog == 0 and outbox.counter("quarantined") == 0
        [line] = caplog.messages
        assert line.startswith("sink local stored ")
        assert "partial write: dropped " in line and "outside retention policy" in line
    finally:
        outbox.close()
        server.stop()
