"""End to end: the collector process polls every kind of Shelly test device (Basic and Digest
auth enforced, answers reconstructed from Shelly's docs) -> its real outbox ->
VictoriaMetrics (the InfluxDB v2 write API), read back and checked sample by sample against
exactly what each device answered for that slot; a 3EM reboots (counters to zero) on the way,
the collector is restarted, and an unplugged plug is counted in the health measurements."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from homewatt_collector.counters import BASELINE_READS
from tests.collector.conftest import write_config
from tests.support.processes import ServerProcess, unreachable_address, wait_until
from tests.support.shelly_devices import FakeShelly, Served, get_path
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration

# (device fixture, password or None)
DEVICES = {
    "gen1-plug": None,
    "gen1-plug-s": "plug-s pass",
    "gen1-1pm": None,
    "gen1-2.5": "two five",
    "gen1-em": None,
    "gen1-3em": None,
    "gen2-plus-plug-s": "plus plug pass",
    "gen3-2pm": "gen3 pass",
    "gen3-pm-mini": None,
    "gen2-pro-3em": "pro 3em pass",
    "gen2-pro-em": None,
}
WMIN, WH = 60_000.0, 1000.0
SWITCH0, SWITCH1 = "/rpc/Switch.GetStatus?id=0", "/rpc/Switch.GetStatus?id=1"
EM, EMDATA, EM1, EM1DATA = (
    "/rpc/EM.GetStatus?id=0",
    "/rpc/EMData.GetStatus?id=0",
    "/rpc/EM1.GetStatus?id=0",
    "/rpc/EM1Data.GetStatus?id=1",
)
# (device, channel, field, the answer it comes from, the path in it, divisor to kWh or 1)
CHECKS = [
    ("gen1-plug", "switch0", "energy_total_kwh", "/status", "meters.0.total", WMIN),
    ("gen1-plug-s", "switch0", "power_w", "/status", "meters.0.power", 1),
    ("gen1-plug-s", "switch0", "energy_total_kwh", "/status", "meters.0.total", WMIN),
    ("gen1-1pm", "switch0", "energy_total_kwh", "/status", "meters.0.total", WMIN),
    ("gen1-2.5", "switch0", "energy_total_kwh", "/status", "meters.0.total", WMIN),
    ("gen1-2.5", "switch1", "power_w", "/status", "meters.1.power", 1),
    ("gen1-em", "em1", "energy_export_kwh", "/status", "emeters.1.total_returned", WH),
    ("gen1-em", "em0", "reactive_power_var", "/status", "emeters.0.reactive", 1),
    ("gen1-3em", "l1", "energy_import_kwh", "/status", "emeters.0.total", WH),
    ("gen1-3em", "l3", "power_w", "/status", "emeters.2.power", 1),
    ("gen1-3em", "l3", "energy_export_kwh", "/status", "emeters.2.total_returned", WH),
    ("gen1-3em", "total", "power_w", "/status", "total_power", 1),
    ("gen2-plus-plug-s", "switch0", "power_w", SWITCH0, "apower", 1),
    ("gen2-plus-plug-s", "switch0", "energy_total_kwh", SWITCH0, "aenergy.total", WH),
    ("gen3-2pm", "switch1", "energy_export_kwh", SWITCH1, "ret_aenergy.total", WH),
    ("gen3-pm-mini", "pm0", "energy_total_kwh", "/rpc/PM1.GetStatus?id=0", "aenergy.total", WH),
    ("gen2-pro-3em", "l3", "power_w", EM, "c_act_power", 1),
    ("gen2-pro-3em", "l3", "energy_export_kwh", EMDATA, "c_total_act_ret_energy", WH),
    ("gen2-pro-3em", "total", "energy_import_kwh", EMDATA, "total_act", WH),
    ("gen2-pro-em", "em1", "energy_export_kwh", EM1DATA, "total_act_ret_energy", WH),
    ("gen2-pro-em", "em0", "current_a", EM1, "current", 1),
]  # fmt: skip


def name_of(fixture: str) -> str:
    return fixture.replace(".", "")


@pytest.fixture
def devices() -> Iterator[dict[str, FakeShelly]]:
    started = {
        name: FakeShelly(name, f"127.0.0.{41 + i}", password=password).start()
        for i, (name, password) in enumerate(DEVICES.items())
    }
    yield started
    for device in started.values():
        device.stop()


def polls_since(device: FakeShelly, since: float, count: int) -> None:
    """Wait until `device` answered `count` polls since wall time `since` (the collector's
    start-up takes seconds on a busy machine)."""

    def polled() -> bool:
        return sum(1 for s in device.served if s.t > since) >= count

    wait_until(polled, 60, f"{count} polls of {device.address}")


def served_for(device: FakeShelly, key: str, ts: int) -> Served:
    """The answer `device` gave for `key` in slot `ts` (a poll starts within its second)."""
    matches = [s for s in device.served if s.path == key and ts <= s.t < ts + 1]
    assert len(matches) == 1, f"{key} answered {len(matches)} times in slot {ts}"
    return matches[0]


def test_every_device_kind_arrives_sample_by_sample_through_reboots_and_restarts(
    tmp_path: Path,
    devices: dict[str, FakeShelly],
    victoria: VictoriaMetrics,
    collector_process: Callable[..., ServerProcess],
) -> None:
    entries: list[dict[str, Any]] = []
    for fixture, device in devices.items():
        entry: dict[str, Any] = {"name": name_of(fixture), "host": device.address, "interval_s": 1}
        if device.password is not None:
            secret = tmp_path / f"{name_of(fixture)}.password"
            secret.write_text(device.password + "\n")
            secret.chmod(0o600)
            entry["password_file"] = str(secret)
        entries.append(entry)
    with unreachable_address("127.0.0.60") as dead:
        entries.append({"name": "unplugged", "host": dead, "interval_s": 1, "timeout_s": 0.5})
        config = write_config(
            tmp_path / "plugs.yaml",
            victoria.url,
            tmp_path / "state",
            unit="plugs",
            source={"kind": "shelly", "devices": entries},
        )
        first = collector_process(config)
        polls_since(devices["gen1-plug"], 0.0, BASELINE_READS + 5)
        devices["gen1-3em"].reboot()
        reboot_at = time.time()
        time.sleep(BASELINE_READS + 4)
        assert first.stop(timeout=30) == 0, first.log_tail()
        stopped_at = time.time()
        second = collector_process(config)
        polls_since(devices["gen1-plug"], stopped_at, 4)
        assert second.stop(timeout=30) == 0, second.log_tail()
    logs = first.log_tail() + second.log_tail()
    assert all(d.password not in logs for d in devices.values() if d.password), "no password logged"

    for fixture, channel, field, key, path, divisor in CHECKS:
        device = devices[fixture]
        metric = f"electricity_{field}"

        def arrived(m: str = metric, f: str = fixture, c: str = channel) -> bool:
            rows = victoria.samples(m, device=name_of(f), channel=c)
            return bool(rows) and rows[-1][0] > stopped_at

        wait_until(arrived, 30, f"{fixture} {channel} {field} of the second run")
        rows = victoria.samples(metric, device=name_of(fixture), channel=channel)
        stamps = [ts for ts, _, _ in rows]
        assert len(stamps) == len(set(stamps)), f"{fixture} {channel} {field}: a duplicate"
        assert rows[0][2]["source"] == "shelly" and rows[0][2]["site"] == "test"
        # 11 + 4 polls at least; energy waits for a baseline at the first start and after the
        # 3EM's reboot (BASELINE_READS - 1 polls each time)
        held_back = 2 * (BASELINE_READS - 1) if field.startswith("energy") else 0
        assert len(rows) >= 15 - held_back, f"{fixture} {channel} {field}: missing: {stamps}"
        # after the 3EM's reboot its counters go on from the last stored value: stored =
        # the device's reading + (last stored before - the first reading after the reboot)
        after = [s for s in device.served if s.path == key and s.t > reboot_at]
        first_after = get_path(after[0].body, path) / divisor
        last = None
        last_before = None
        for ts, value, _ in rows:
            answer = served_for(device, key, ts)
            expected = get_path(answer.body, path) / divisor
            if answer.t < reboot_at:
                last_before = value
            elif fixture == "gen1-3em" and field.startswith("energy"):
                assert last_before is not None
                expected += last_before - first_after
            assert value == pytest.approx(expected, abs=1e-6), (fixture, channel, field, ts)
            if field.startswith("energy"):
                assert last is None or value >= last, f"{fixture} {field} went back at {ts}"
                last = value
        if field.startswith("energy"):
            # the restart kept the baselines: energy is stored from the second run's first poll
            second_run = [ts for ts in stamps if ts > stopped_at]
            polled = sorted({int(s.t) for s in device.served if s.path == key and s.t > stopped_at})
            assert second_run[0] == polled[0], f"{fixture} {field}: first poll not stored"

    health = victoria.samples("homewatt_device_health_read_errors", device="unplugged")
    assert health and all(v >= 1 for _, v, _ in health), "the unplugged plug counted per device"
    assert victoria.samples("homewatt_device_health_timeouts", device="unplugged")
    errors = sum(v for _, v, _ in victoria.samples("homewatt_health_read_errors", unit="plugs"))
    assert errors >= len(health)
    ok = victoria.samples("homewatt_device_health_read_errors", device="gen2-pro-3em")
    assert ok and all(v == 0 for _, v, _ in ok)
