"""systemd/homewatt-cost@.service and .timer: valid for systemd, sandboxed like the other
homewatt units, wired to the contract's credential; and started for real: the shipped unit in
a bookworm systemd container of the test rig (the collector installed from wheels as on a Pi),
billing the day just ended from an InfluxDB 1.6.7 on the host (reached over the rig's bridge),
its energy_cost points read back and compared with the hand bill."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.collector.test_systemd_unit import directives
from tests.support.contracts import secrets_contract, unit_credentials
from tests.support.homewatt_install import install_app
from tests.support.influxdb1 import InfluxDB1
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig
from tests.support.systemd_units import security_exposure, verify_unit

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "systemd" / "homewatt-cost@.service"
TIMER = REPO / "systemd" / "homewatt-cost@.timer"


def test_systemd_accepts_the_cost_service_and_timer_without_a_single_warning() -> None:
    verify_unit(SERVICE, TIMER)


def test_the_cost_services_exposure_is_at_most_2() -> None:
    assert security_exposure(SERVICE) <= 2.0


def test_the_cost_unit_is_a_oneshot_of_the_sites_day_just_ended_with_the_contracts_token() -> None:
    unit = directives(SERVICE)
    assert unit["Type"] == ["oneshot"]
    assert unit["ExecStart"] == ["/usr/local/bin/homewatt-collector cost --site %i --write"]
    assert unit["DynamicUser"] == ["yes"]
    assert set(unit["LoadCredential"]) == unit_credentials("homewatt-cost@.service")
    assert unit["LoadCredential"] == [
        "influxdb-cost-token:/etc/homewatt/credentials/influxdb-cost-token"
    ]
    secret = secrets_contract()["secrets"]["influxdb-cost-token"]
    example = yaml.safe_load((REPO / "collector" / "cost.example.yaml").read_text())
    assert example["influxdb"]["token_credential"] == "influxdb-cost-token"
    assert {
        "app": "homewatt-collector",
        "key": "influxdb.token_credential",
        "value": "influxdb-cost-token",
    } in secret["config_keys"]
    text = SERVICE.read_text()
    block = text[text.index("# Sandboxing") :]
    keys = [
        ln.split("=", 1)[0] for ln in block.splitlines() if "=" in ln and not ln.startswith("#")
    ]
    assert keys == sorted(keys), "the sandboxing block is alphabetised"


def test_the_timer_runs_nightly_at_an_hour_no_dst_change_touches_and_catches_up() -> None:
    timer = directives(TIMER)
    assert timer["OnCalendar"] == ["*-*-* 04:30:00"]
    assert timer["Persistent"] == ["true"]


@pytest.fixture
def influx_on_bridge(systemd_rig: SystemdRig, tmp_path: Path) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path / "influxdb1", host=str(systemd_rig.daemon.network.ip)).start()
    try:
        server.create_database("homewatt")
        server.query(
            'CREATE RETENTION POLICY "longterm" ON "homewatt" DURATION INF REPLICATION 1', post=True
        )
        yield server
    finally:
        server.stop()


@pytest.mark.systemd_rig
@pytest.mark.timeout(900)
def test_the_shipped_cost_unit_writes_yesterdays_bill_and_the_timer_schedules_it(
    systemd_container: SystemdContainer, homewatt_wheels: Path, influx_on_bridge: InfluxDB1
) -> None:
    """Exactly the shipped sandbox, the token by LoadCredential= from a 0600 root file (InfluxDB
    1.6.7 without auth ignores it), config and tariff 0644 root: the run ends with success and
    the bill of yesterday (Europe/Warsaw) is 1 kW x the day's hours (23, 24 or 25) x 0.90 PLN +
    1.25 PLN; the timer is active and triggers the service."""
    box = systemd_container
    influx = influx_on_bridge
    install_app(box, homewatt_wheels, "homewatt-collector", units=[SERVICE.name, TIMER.name])
    zone = ZoneInfo("Europe/Warsaw")

    def midnight(day: date) -> int:
        return int(datetime.combine(day, datetime.min.time(), zone).timestamp())

    def day_just_ended() -> date:
        return datetime.now(UTC).astimezone(zone).date() - timedelta(days=1)

    # The unit bills the day that ended before it runs, by its own clock: yesterday as the
    # test sees it now, or today if Warsaw's midnight passes before the unit starts. The
    # counter covers both days, an hour either side.
    yesterday = day_just_ended()
    first = midnight(yesterday) - 3600
    last = midnight(yesterday + timedelta(days=2)) + 3600
    series = "electricity,site=rig,device=main,channel=total"
    lines = [  # 1 kW: the counter rises by 1 kWh an hour
        f"{series} energy_total_kwh={(ts - first) / 3600!r} {ts}"
        for ts in range(first, last + 1, 60)
    ]
    influx.write("homewatt", lines)
    box.write_file(
        "/etc/homewatt/tariff.yaml",
        yaml.safe_dump(
            {
                "timezone": "Europe/Warsaw",
                "currency": "PLN",
                "import_price": 0.9,
                "standing_charge_per_day": 1.25,
            }
        ),
    )
    example = yaml.safe_load((REPO / "collector" / "cost.example.yaml").read_text())
    example["site"] = "rig"
    example["influxdb"]["url"] = influx.url
    box.write_file("/etc/homewatt/cost/rig.yaml", yaml.safe_dump(example))
    box.write_file("/etc/homewatt/credentials/influxdb-cost-token", "rig-cost-token\n", mode=0o600)
    box.run("chmod 0700 /etc/homewatt/credentials")

    done = box.systemctl("start", "homewatt-cost@rig.service", check=False)
    journal = box.journal("homewatt-cost@rig.service")
    assert done.exit_code == 0, journal
    state = box.unit_properties("homewatt-cost@rig.service", "Result", "ExecMainStatus")
    assert state == {"Result": "success", "ExecMainStatus": "0"}, journal
    assert "status=31/SYS" not in journal and "Operation not permitted" not in journal, journal
    billed = re.search(r"site rig, (\S+): 2 energy_cost points written", journal)
    assert billed, journal
    day = date.fromisoformat(billed.group(1))
    assert day in {yesterday, day_just_ended()}, (day, yesterday)
    start, end = midnight(day), midnight(day + timedelta(days=1))
    hours = (end - start) / 3600
    result = influx.query(
        "SELECT energy, cost FROM longterm.energy_cost WHERE period = 'bill'",
        db="homewatt",
        epoch="s",
    )
    (values,) = [s["values"] for s in result[0]["series"]]
    assert values == [[start, pytest.approx(hours), pytest.approx(hours * 0.9 + 1.25)]]

    box.systemctl("start", "homewatt-cost@rig.timer")
    timer = box.unit_properties(
        "homewatt-cost@rig.timer", "ActiveState", "Triggers", "NextElapseUSecRealtime"
    )
    assert timer["ActiveState"] == "active"
    assert timer["Triggers"] == "homewatt-cost@rig.service"
    assert timer["NextElapseUSecRealtime"], "scheduled"
