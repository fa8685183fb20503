"""`homewatt-collector emporia import --days N` against the Emporia API test server: hourly
and daily history into the instance's outbox, checked bucket by bucket; a second run adds
nothing; a running unit (the outbox held) gets one clear line and nothing is fetched."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from homewatt_collector.cli.app import app
from homewatt_collector.outbox import Outbox
from homewatt_collector.sources.emporia.history import local_day_seconds
from tests.collector.conftest import write_config
from tests.support.emporia_cloud import EmporiaCloud, kwh

DAYS = 2


@pytest.fixture
def cloud() -> Iterator[EmporiaCloud]:
    server = EmporiaCloud()
    # one Vue circuit and the plug nested under it: fewer channels, the same calls
    vue = server.devices["devices"][0]
    circuits = vue["devices"][0]
    four = [c for c in circuits["channels"] if c["channelNum"] == "4"]
    server.devices["devices"] = [
        {**vue, "devices": [{**circuits, "channels": four}]},
        server.devices["devices"][1],
    ]
    server.start()
    yield server
    server.stop()


def config_for(tmp_path: Path, cloud: EmporiaCloud, **source: Any) -> Path:
    account = {"name": "home", "username": "owner@example.invalid", "simulator_url": cloud.url}
    return write_config(
        tmp_path / "emporia.yaml",
        "http://127.0.0.1:9",
        tmp_path / "state",
        unit="emporia",
        source={"kind": "emporia", "accounts": [account], **source},
    )


def lines(outbox: Path) -> list[str]:
    with sqlite3.connect(outbox) as db:
        return [row[0] for row in db.execute("SELECT line FROM pending ORDER BY id")]


def invoke(config: Path) -> Any:
    return CliRunner().invoke(
        app, ["--config", str(config), "emporia", "import", "--days", str(DAYS)]
    )


def clear_of_the_hour(margin_s: float = 30.0) -> None:
    """Wait for the next whole hour (UTC) if it comes within `margin_s`: the imports and the
    hand count below must see the same last complete hour (an import at 13:59:59.9 stops at
    13:00, a count at 14:00:00.1 expects 14:00; a second import then rightly adds one)."""
    left = 3600 - time.time() % 3600
    if left < margin_s:
        time.sleep(left + 0.1)


def test_hours_and_days_are_imported_once(tmp_path: Path, cloud: EmporiaCloud) -> None:
    config = config_for(tmp_path, cloud)
    clear_of_the_hour()
    result = invoke(config)
    assert result.exit_code == 0, result.output
    queued = lines(tmp_path / "state" / "outbox-local.sqlite")
    hours = [line for line in queued if "interval=1h" in line and "device=Kettle" in line]
    now = datetime.now(UTC)
    last_hour = int(now.timestamp()) // 3600 * 3600
    first = int(
        (now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS)).timestamp()
    )
    assert len(hours) == (last_hour - first) // 3600, "every complete hour, once"
    for line in hours:
        ts = int(line.rsplit(" ", 1)[1])
        watts = float(line.split("power_w=")[1].split(" ")[0])
        assert watts == pytest.approx(kwh(2001, "1,2,3", ts, 3600) * 1000), ts  # type: ignore[operator]
    days = [line for line in queued if "interval=1d" in line and "device=Kettle" in line]
    assert len(days) == DAYS
    # power only: the running sums (and so a bill) start at the instance's first minute
    assert not [line for line in queued if "energy_" in line]
    windows = [q for q in cloud.calls("getChartUsage") if q["deviceGid"] == "2001"]
    assert {q["scale"] for q in windows} == {"1H", "1D"}
    again = invoke(config)
    assert again.exit_code == 0, again.output
    assert "0 samples queued" in again.output
    assert len(lines(tmp_path / "state" / "outbox-local.sqlite")) == len(queued)


def test_vuegraf_history_is_hour_and_day_points_in_wh(tmp_path: Path, cloud: EmporiaCloud) -> None:
    config = config_for(tmp_path, cloud, schema="vuegraf", timezone="UTC")
    assert invoke(config).exit_code == 0
    queued = lines(tmp_path / "state" / "outbox-local.sqlite")
    day = next(line for line in queued if "detailed=Day" in line and "device_name=Kettle" in line)
    ts = int(day.rsplit(" ", 1)[1])
    assert datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S") == "23:59:59"
    usage = float(day.split("usage=")[1].split(" ")[0])
    assert usage == pytest.approx(kwh(2001, "1,2,3", ts - 86399, 86400) * 1000)  # type: ignore[operator]
    assert day.startswith("energy_usage,account_name=home,detailed=Day,device_name=Kettle ")
    hour = next(line for line in queued if "detailed=Hour" in line and "device_name=Home-4" in line)
    assert int(hour.rsplit(" ", 1)[1]) % 3600 == 0


def test_a_running_unit_is_told_to_stop_first(tmp_path: Path, cloud: EmporiaCloud) -> None:
    config = config_for(tmp_path, cloud)
    held = Outbox(tmp_path / "state" / "outbox-local.sqlite", 1 << 20)  # the unit holds it
    try:
        result = invoke(config)
    finally:
        held.close()
    assert result.exit_code == 1
    assert (
        "in use by another process (the running collector service?): stop it first" in result.output
    )
    assert not cloud.calls("getChartUsage")


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Berlin", "2027-03-28", 23),  # the clocks go forward
        ("Europe/Berlin", "2027-10-31", 25),  # and back
        ("Europe/Berlin", "2027-03-01", 24),
        ("Europe/London", "2026-10-25", 25),
        ("UTC", "2027-03-28", 24),
    ],
)
def test_a_local_days_average_power_is_over_its_23_24_or_25_hours(
    zone: str, day: str, hours: int
) -> None:
    """A day point's power_w is its energy over the local day's own length (a 25 h day's
    2.5 kWh is 100 W, not 104 W)."""
    midnight = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone))
    assert local_day_seconds(int(midnight.timestamp()), ZoneInfo(zone)) == hours * 3600
