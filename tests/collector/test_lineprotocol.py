"""The collector writes line protocol with homewatt_common's encoder: the outbox holds exactly the
lines of contracts/line-protocol.json, a point the encoder refuses never reaches it (a read
error, the cycle's other samples kept), and check-config refuses a name line protocol cannot
carry before anything starts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from homewatt_collector.forwarder import Forwarder
from homewatt_collector.models import Reading, Sample
from homewatt_collector.outbox import Outbox
from homewatt_collector.service import Collector, Delivery
from homewatt_common.lineprotocol import LineProtocolError
from tests.collector.test_cli import cli
from tests.support.lineprotocol_cases import CASES, REFUSED, Case


def _sample(case: Case) -> Sample:
    return Sample(case.measurement, case.tags, case.fields, case.ts)


def test_the_outbox_holds_exactly_the_contracts_lines(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", max_bytes=10**8)
    for case in CASES:  # one at a time: some cases share a series and a timestamp
        outbox.put([_sample(case)])
        [entry] = outbox.peek(1)
        assert entry.line == case.line, case.name
        outbox.ack([entry])
    outbox.close()


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_the_outbox_refuses_what_line_protocol_cannot_carry_and_stores_nothing(
    tmp_path: Path, case: Case
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", max_bytes=10**8)
    good = Sample("electricity", {"device": "main"}, {"power_w": 1.0}, case.ts)
    with pytest.raises(LineProtocolError) as refused:
        outbox.put([good, _sample(case)])
    assert case.error in str(refused.value)
    assert outbox.backlog == 0
    outbox.close()


class _Source:
    """A source whose second sample cannot be written (a bug in a source: the configs refuse
    every such name)."""

    kind = "demo"

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, ts: int) -> Reading:
        good = Sample("electricity", {"device": "main", "channel": "total"}, {"power_w": 1.0}, ts)
        bad = Sample("electricity", {"device": "C:\\"}, {"power_w": 2.0}, ts)
        return Reading([good, bad], errors=0)


class _RecordingSink:
    name = "local"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: Sequence[str]) -> None:
        self.lines.extend(lines)

    def close(self) -> None: ...


def test_a_sample_that_cannot_be_written_is_a_read_error_and_the_rest_is_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", max_bytes=10**8)
    stop = threading.Event()
    sink = _RecordingSink()
    collector = Collector(
        site="home",
        unit="main",
        interval_s=1,
        source=_Source(),
        deliveries=[Delivery(outbox, Forwarder(outbox, sink, stop))],
        stop=stop,
        wait_for_clock_sync=False,
        on_cycle=lambda cycle: stop.set(),
    )
    collector.run()
    assert len(sink.lines) == 2, sink.lines
    assert sink.lines[0].startswith("electricity,channel=total,device=main power_w=1.0 ")
    assert sink.lines[1].startswith("homewatt_health,") and "read_errors=1i" in sink.lines[1]
    assert "tag value 'C:\\\\' ends with a backslash" in caplog.text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('"orno\\\\"', "template name 'orno\\\\' (the model tag) ends with a backslash"),
        ('"my\\nmeter"', "template name 'my\\nmeter' (the model tag) contains a newline"),
    ],
)
def test_check_config_refuses_a_model_tag_line_protocol_cannot_carry(
    tmp_path: Path, template: str, expected: str
) -> None:
    config = tmp_path / "main.yaml"
    config.write_text(
        f"""site: home
source:
  kind: modbus
  port: /dev/ttyUSB0
  templates:
    {template}:
      registers:
        - {{field: power_w, address: 0, type: u16}}
  meters:
    - {{name: main, model: {template}, device_id: 1}}
sinks:
  - {{url: "http://127.0.0.1:8086", org: o, bucket: b, anonymous: true}}
"""
    )
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"homewatt-collector: error: {config}:6: source.templates: ")
    assert expected in line


def test_check_config_refuses_a_field_named_time(tmp_path: Path) -> None:
    config = tmp_path / "main.yaml"
    config.write_text(
        """site: home
source:
  kind: modbus
  port: /dev/ttyUSB0
  templates:
    mine:
      registers:
        - {field: time, address: 0, type: u16}
  meters:
    - {name: main, model: mine, device_id: 1}
sinks:
  - {url: "http://127.0.0.1:8086", org: o, bucket: b, anonymous: true}
"""
    )
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "source.templates.mine.registers[0].field" in line
    assert "'time' is reserved: InfluxDB refuses the point" in line
