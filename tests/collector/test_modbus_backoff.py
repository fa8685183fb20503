"""A silent meter costs the live meters on its line nothing: after TIMEOUTS_TO_BACKOFF cycles
in a row without an answer it is only probed, at most every PROBE_INTERVAL_S, with a timeout
that fits the cycle's spare bus time, and read every cycle again once it answers. A stop
request (SIGTERM) ends the real collector process within a second whatever the bus is doing.

All on a line paced at 9600 baud, 11 bits a character (tests/support/rs485.py), where bus time
is real.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from homewatt_collector.scheduler import Scheduler
from homewatt_collector.sources.modbus import source as modbus_source
from homewatt_collector.sources.modbus.config import ModbusSourceConfig
from homewatt_collector.sources.modbus.source import (
    MIN_PROBE_TIMEOUT_S,
    PROBE_MARGIN_S,
    TIMEOUTS_TO_BACKOFF,
    ModbusSource,
)
from tests.collector.conftest import MeterBus, pending, write_config
from tests.collector.meters_data import ORNO_WE515_HOLDING, sdm630_input_registers
from tests.support.processes import ServerProcess, wait_until
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration

StartBus = Callable[..., MeterBus]
LINE_8N1 = {"baudrate": 9600, "parity": "N", "bytesize": 8, "stopbits": 1}
PROBE_EVERY_S = 1.5  # PROBE_INTERVAL_S (30 s) shortened for the test


def paced_line(meter_bus: StartBus) -> MeterBus:
    """An ORNO WE-515 (id 1) and an SDM630 (id 3) on a line paced at 9600 baud."""
    return meter_bus(
        {1: {"holding": ORNO_WE515_HOLDING}, 3: {"input": sdm630_input_registers()}},
        emulate_timing=True,
        line_baud=9600,
        bits_per_char=11,
    )


def source_on(bus: MeterBus) -> ModbusSource:
    config = ModbusSourceConfig.model_validate(
        {
            "kind": "modbus",
            "port": bus.port,
            "serial": LINE_8N1,
            "meters": [
                {"name": "main", "model": "orno-we515", "device_id": 1},
                {"name": "heatpump", "model": "sdm630", "device_id": 3},
            ],
        }
    )
    return ModbusSource(config, site="h")


def probed_line(
    meter_bus: StartBus, monkeypatch: pytest.MonkeyPatch
) -> tuple[MeterBus, ModbusSource]:
    """The paced line and a source reading it whose backed-off meters are probed every
    PROBE_EVERY_S (not PROBE_INTERVAL_S); the caller closes the source."""
    monkeypatch.setattr(modbus_source, "PROBE_INTERVAL_S", PROBE_EVERY_S)
    bus = paced_line(meter_bus)
    return bus, source_on(bus)


def devices_read(source: ModbusSource, until: float | None = None) -> dict[str, tuple[bool, bool]]:
    """One cycle: device -> (values read, backed off)."""
    reading = source.read_within(1, until, None)
    return {d.device: (d.ok, d.backoff) for d in reading.devices}


def test_a_meter_silent_three_cycles_in_a_row_is_only_probed_then_read_again_once_back(
    meter_bus: StartBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, source = probed_line(meter_bus, monkeypatch)
    assert devices_read(source) == {"main": (True, False), "heatpump": (True, False)}
    bus.line.silent_ids.add(3)
    for _ in range(TIMEOUTS_TO_BACKOFF - 1):
        assert devices_read(source)["heatpump"] == (False, False), "not backed off yet"
    assert devices_read(source)["heatpump"] == (False, True), "backed off at the 3rd"

    # backed off: the silent meter is not asked, so a cycle costs only the live meter
    dropped = bus.line.stats.dropped_requests
    started = time.monotonic()
    assert devices_read(source) == {"main": (True, False), "heatpump": (False, True)}
    took = time.monotonic() - started
    assert bus.line.stats.dropped_requests == dropped, "no request to the backed-off meter"
    assert took < source.meters[1].timeout_s, f"a cycle took {took:.3f} s: a timeout was waited"

    # its probe, once due, waits only for the spare time of the cycle
    time.sleep(PROBE_EVERY_S)
    started = time.monotonic()
    until = started + 0.8
    assert devices_read(source, until)["heatpump"] == (False, True)
    ended = time.monotonic()
    assert bus.line.stats.dropped_requests == dropped + 1, "one probe"
    assert ended <= until, f"the probe overran the cycle by {ended - until:.3f} s"
    # the next probe is not before PROBE_INTERVAL_S
    assert devices_read(source, time.monotonic() + 0.8)["heatpump"] == (False, True)
    assert bus.line.stats.dropped_requests == dropped + 1

    # back: the next probe finds it and from the following cycle it is read every cycle
    bus.line.silent_ids.discard(3)
    time.sleep(PROBE_EVERY_S)
    assert devices_read(source, time.monotonic() + 0.8)["heatpump"] == (False, False)
    for _ in range(3):
        assert devices_read(source) == {"main": (True, False), "heatpump": (True, False)}
    source.close()


def test_a_probe_waits_for_a_cycle_with_enough_spare_bus_time(
    meter_bus: StartBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, source = probed_line(meter_bus, monkeypatch)
    bus.line.silent_ids.add(3)
    for _ in range(TIMEOUTS_TO_BACKOFF):
        devices_read(source)
    time.sleep(PROBE_EVERY_S)
    dropped = bus.line.stats.dropped_requests
    # the live meter leaves less than MIN_PROBE_TIMEOUT_S + PROBE_MARGIN_S of the cycle
    tight = time.monotonic() + 0.1
    assert devices_read(source, tight)["heatpump"] == (False, True)
    assert bus.line.stats.dropped_requests == dropped, "no probe without spare time"
    assert tight - time.monotonic() < MIN_PROBE_TIMEOUT_S + PROBE_MARGIN_S
    devices_read(source, time.monotonic() + 0.8)
    assert bus.line.stats.dropped_requests == dropped + 1, "probed in the next roomy cycle"
    source.close()


def test_a_probe_overdue_by_a_whole_interval_goes_out_even_in_a_full_cycle(
    meter_bus: StartBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, source = probed_line(meter_bus, monkeypatch)
    bus.line.silent_ids.add(3)
    for _ in range(TIMEOUTS_TO_BACKOFF):
        devices_read(source)
    bus.line.silent_ids.discard(3)
    time.sleep(2 * PROBE_EVERY_S)
    # no spare time at all, but a meter that is back must be read again within 2 intervals
    assert devices_read(source, time.monotonic())["heatpump"] == (False, False)
    assert devices_read(source)["heatpump"] == (True, False)
    source.close()


def test_live_meters_keep_every_slot_from_the_first_cycle_with_a_silent_id(
    meter_bus: StartBus,
) -> None:
    """The silent meter listed first and with a long timeout (0.9 s: alone it fills a slot):
    from the first cycle on, each of its requests only gets the spare time the live meters
    leave, so no slot is skipped while it times out its way into backoff. The cycles run on
    the service's own scheduler, each given the bus time to its next deadline as the service
    does (service.py _cycle)."""
    bus = paced_line(meter_bus)
    config = ModbusSourceConfig.model_validate(
        {
            "kind": "modbus",
            "port": bus.port,
            "serial": LINE_8N1,
            "meters": [
                {"name": "ghost", "model": "orno-we515", "device_id": 9, "timeout_s": 0.9},
                {"name": "main", "model": "orno-we515", "device_id": 1},
                {"name": "heatpump", "model": "sdm630", "device_id": 3},
            ],
        }
    )
    source = ModbusSource(config, site="h")
    cycles = []
    for slot in Scheduler(1.0).slots():
        started = time.monotonic()
        reading = source.read_within(slot.ts, started - slot.lateness_s + 1.0, None)
        took = time.monotonic() - started
        cycles.append((slot, {d.device: (d.ok, d.backoff) for d in reading.devices}, took))
        if len(cycles) == TIMEOUTS_TO_BACKOFF + 2:
            break
    source.close()
    for slot, _, took in cycles:
        print(f"slot {slot.index}: late {slot.lateness_s * 1000:.0f} ms, read {took:.3f} s")
    assert [slot.skipped for slot, _, _ in cycles] == [0] * len(cycles)
    assert [slot.index for slot, _, _ in cycles] == list(range(len(cycles)))
    for slot, devices, _ in cycles:
        assert devices["main"] == (True, False), f"slot {slot.index}"
        assert devices["heatpump"] == (True, False), f"slot {slot.index}"
    assert [devices["ghost"] for _, devices, _ in cycles] == [(False, False)] * (
        TIMEOUTS_TO_BACKOFF - 1
    ) + [(False, True)] * 3
    assert bus.line.stats.dropped_requests == TIMEOUTS_TO_BACKOFF
    # after the first cycle the silent meter is read after the live ones, within the slot
    assert all(slot.lateness_s < 0.5 for slot, _, _ in cycles[2:]), "no timeout waited in full"


def test_a_backed_off_meter_is_in_its_device_health_points(
    meter_bus: StartBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = paced_line(meter_bus)
    source = source_on(bus)
    bus.line.silent_ids.add(3)
    statuses = [source.read_within(1, None, None).devices[1] for _ in range(4)]
    assert [(s.timeouts, s.errors, s.backoff) for s in statuses] == [
        (1, 1, False),
        (1, 1, False),
        (1, 1, True),
        (0, 0, True),  # not asked: no timeout, no error; last_ok_age_s keeps growing
    ]
    source.close()


# -- the real process: SIGTERM -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("after_request_s", "what"),
    [
        (0.1, "waiting for the silent meter's answer (0.6 s timeout)"),
        (0.7, "reading the live meters"),
    ],
)
def test_sigterm_ends_the_collector_within_a_second_whatever_the_bus_is_doing(  # noqa: PLR0917
    meter_bus: StartBus,
    victoria: VictoriaMetrics,
    collector_process: Callable[..., ServerProcess],
    tmp_path: Path,
    after_request_s: float,
    what: str,
) -> None:
    """Target 1 s; asserted at 2 s because the machine is shared with other test sessions (a
    loaded core delays the signal's delivery and the process's exit, not the logic)."""
    bus = paced_line(meter_bus)
    source = {
        "kind": "modbus",
        "port": bus.port,
        "serial": LINE_8N1,
        "meters": [  # the silent one first: asked first in the first cycle, after the live
            # meters (with the spare time, up to its 0.6 s timeout) in the next two
            {"name": "ghost", "model": "orno-we515", "device_id": 9},
            {"name": "main", "model": "orno-we515", "device_id": 1},
            {"name": "heatpump", "model": "sdm630", "device_id": 3},
        ],
    }
    config = write_config(tmp_path / "c.yaml", victoria.url, tmp_path / "state", source=source)
    collector = collector_process(config)
    # the line sees the request to the silent id of the 2nd cycle: its timeout starts now
    wait_until(lambda: bus.line.stats.dropped_requests >= 2, 30, "2nd cycle", step=0.005)
    time.sleep(after_request_s)
    stopped = time.monotonic()
    collector.signal(signal.SIGTERM)
    assert collector.process is not None
    code = collector.process.wait(timeout=10)
    took = time.monotonic() - stopped
    print(
        f"SIGTERM {after_request_s} s after the request to the silent meter ({what}):"
        f" exited in {took:.3f} s"
    )
    assert code == 0, collector.log_tail()
    assert took <= 2.0, f"stop took {took:.3f} s {what}"
    # flushed: every sample of the cycles before the stop was delivered, none left behind
    assert "sink local: 0 samples pending in the outbox" in collector.log_tail()
    assert pending(tmp_path / "state" / "outbox-local.sqlite") == 0
