"""Issue 16's "Done when", as a new user's run: an Emporia account and two Shelly plugs (a Gen1
without a password, a Gen2 with one) added from the README alone, run as units, their power
and energy stored sample by sample, and `cost --month` / `--day` equal to a bill worked out by
hand below.

What is real and what stands in:
- The configs are the README's own YAML blocks ("Add Shelly plugs", "Add an Emporia account")
  in the shipped example files, with only the hosts, the e-mail address, Emporia's
  `simulator_url`, the sink's URL and `clock.wait_for_sync` (the rig shares the host's kernel,
  whose NTP state is not ours) replaced; the credentials and drop-ins are made by running the
  README's own `sh` blocks in the container (`sudo` and `sudoedit` replaced by shims that run
  the command as root and type the password).
- The units are the shipped `homewatt-collector@.service`, unchanged, with exactly those
  drop-ins, in a bookworm systemd container of the test rig (the collector installed from
  wheels as on a Pi), started by the README's `systemctl enable --now`.
- The plugs are tests/support/shelly_devices.py (Basic/Digest auth enforced, answers
  reconstructed from Shelly's docs); Emporia's cloud is tests/support/emporia_cloud.py, reached
  through pyemvue's simulator login (Cognito cannot be reached here). Both run on the host, on
  the rig's bridge address.
- The database is a real InfluxDB 1.6.7, the one the cost command is tested against. It has no
  `/api/v2/write` (InfluxDB 1.8 added it), the only write the collector's sink speaks, so the
  sink writes through `V2WriteEndpoint` (tests/support/influxdb1.py), which passes each write on
  to `/write` as InfluxDB 1.8+ does; the cost command reads InfluxDB 1.6.7 directly.
- Live: every sample of the units (read back from InfluxDB and checked against what each
  device served). Seeded by the test: each plug's counter reading at the start of the month
  and at the start of today, written into InfluxDB with the unit's own tags, as if the plug
  had drawn its fixture's power all month (its counter when the test starts is set to match);
  a month of live collection cannot be waited for. Emporia's running sums start with the
  instance's first minute (the data model), so its bill covers the live minutes only, and the
  cost command says so on stderr.
- The bill is for the local day and month the test ends in, whenever it runs: the seeds are
  each plug's counter at that day's and month's local midnight, and Emporia's energy counts
  from its last running sum at or before the midnight, so a run that crosses midnight (or
  starts just after it, Emporia's first minute still yesterday's) bills the same as by hand.
"""

from __future__ import annotations

import calendar
import copy
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from homewatt_collector.counters import BASELINE_READS
from tests.support.emporia_cloud import EmporiaCloud, kwh
from tests.support.homewatt_install import install_app
from tests.support.influxdb1 import InfluxDB1, V2WriteEndpoint
from tests.support.shelly_devices import FakeShelly, Served, get_path, load_fixture
from tests.support.systemd_container import SystemdContainer
from tests.support.systemd_rig import SystemdRig
from tests.test_readme import fences

pytestmark = [pytest.mark.systemd_rig, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DB = "homewatt"
SITE = "home"
OFFICE_PASSWORD = "office plug 9f3c"  # the Gen2 plug's admin password
EMPORIA_PASSWORD = "emporia-pw-5d1e"
WRITE_TOKEN = "write-token-e2e-77a0"
COST_TOKEN = "cost-token-e2e-1b2c"
FLAT_PRICE = 0.92  # tariff.example.yaml's commented flat price
ZONE = ZoneInfo("Europe/Warsaw")  # tariff.example.yaml's timezone


# -- the README's blocks --------------------------------------------------------------------


def readme_yaml_source(kind: str) -> dict[str, Any]:
    """The README's config block for a `kind` instance: the one YAML block whose only key is
    `source`, of that kind."""
    found = []
    for block in fences(README.read_text()).blocks:
        if block.language != "yaml":
            continue
        data = yaml.safe_load(block.text)
        if isinstance(data, dict) and set(data) == {"source"} and data["source"]["kind"] == kind:
            source: dict[str, Any] = data["source"]
            found.append(source)
    assert len(found) == 1, f"README: {len(found)} source blocks of kind {kind}"
    return found[0]


def readme_sh(marker: str) -> str:
    """The README's one `sh` block containing `marker`."""
    found = [
        b.text for b in fences(README.read_text()).blocks if b.language == "sh" and marker in b.text
    ]
    assert len(found) == 1, f"README: {len(found)} sh blocks with {marker}"
    return found[0]


def instance_config(example: str, source: dict[str, Any], sink_url: str) -> str:
    """The shipped example config with the README's `source`, the sink at `sink_url`."""
    config = yaml.safe_load((REPO / "collector" / example).read_text())
    config["source"] = source
    assert config["site"] == SITE
    (sink,) = config["sinks"]
    assert sink["token_credential"] == "influxdb-write-token"
    sink["url"] = sink_url
    config.setdefault("clock", {})["wait_for_sync"] = False  # the host's kernel: see above
    return yaml.safe_dump(config, sort_keys=False)


def run_readme_block(box: SystemdContainer, block: str) -> None:
    """The README's `sh` block as root in the container, in a copy of the repo's systemd/
    (its relative paths), `sudoedit FILE` typing /root/typed/<FILE's name> into FILE."""
    shims = (
        'sudo() { "$@"; }\n'
        'sudoedit() { cat "/root/typed/$(basename "$1")" > "$1"; }\n'
        "set -eu\ncd /root/homewatt\n"
    )
    box.run(["bash", "-c", shims + block])


# -- servers on the rig's bridge ----------------------------------------------------------


@dataclass
class Plug:
    name: str
    device: FakeShelly
    answer: str  # the status answer that holds power and counter
    power: str  # its path to the power, W
    counter: str  # its path to the energy counter
    per_kwh: float  # counter units per kWh: 60,000 watt-minutes (Gen1), 1,000 Wh (Gen2)
    start: float  # the counter (device units) at `since`
    since: float  # unix s: the local month's start when the test began

    def kwh_at(self, ts: float) -> float:
        """The counter in kWh at `ts` (unix s): the plug drew its fixture's power since
        `since`, whose reading was `start`."""
        power_w = float(get_path(self.device.fixture["answers"][self.answer], self.power))
        per_hour = self.per_kwh * power_w / 1000  # device units per hour
        return (self.start + per_hour * (ts - self.since) / 3600) / self.per_kwh


def month_start(now: datetime) -> datetime:
    return now.astimezone(ZONE).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(now: datetime) -> datetime:
    return now.astimezone(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)


def plug_drawing_since(
    fixture: str, since: datetime, host: str, password: str | None
) -> tuple[FakeShelly, float, dict[str, Any]]:
    """A test device of `fixture` whose counter now is its fixture's value plus what its
    power drew since `since` (its reading then: the fixture's value). (device, that value in
    device units, its counter description)."""
    data = copy.deepcopy(load_fixture(fixture))
    (counter,) = data["counters"]
    power = float(get_path(data["answers"][counter["answer"]], counter["power"]))
    per_hour = {"Wmin": 60.0, "Wh": 1.0}[counter["unit"]] * power  # device units per hour
    start = float(counter["start"])
    counter["start"] = start + per_hour * (time.time() - since.timestamp()) / 3600
    return FakeShelly(data, host, password=password).start(), start, counter


def energy_from(sums: list[tuple[int, float]], start: int) -> float:
    """kWh of an Emporia running sum (time, kWh; oldest first) from `start` (a local
    midnight) to its last minute, as the bill counts a counter: from its value at `start` (the
    last sum at or before it; every minute with data is stored, so that sum lies in the
    quarter hour before `start` and all the energy after it is the day's), or from the first
    sum when all are after `start`."""
    before = [total for ts, total in sums if ts <= start]
    return sums[-1][1] - (before[-1] if before else sums[0][1])


@pytest.fixture
def servers(systemd_rig: SystemdRig, tmp_path: Path) -> Iterator[dict[str, Any]]:
    bridge = str(systemd_rig.daemon.network.ip)
    since = month_start(datetime.now(ZONE))
    kitchen, kitchen_start, kitchen_counter = plug_drawing_since("gen1-plug", since, bridge, None)
    office, office_start, office_counter = plug_drawing_since(
        "gen2-plus-plug-s", since, bridge, OFFICE_PASSWORD
    )
    cloud = EmporiaCloud(host=bridge)
    # one account with a Vue and the smart plug nested under its circuit 4
    cloud.devices = {
        **cloud.devices,
        "devices": [d for d in cloud.devices["devices"] if d["deviceGid"] in (1001, 2001)],
    }
    cloud.start()
    influx = InfluxDB1(tmp_path / "influxdb1", host=bridge).start()
    influx.create_database(DB)
    endpoint = V2WriteEndpoint(influx, host=bridge).start()
    plugs = [
        Plug("kitchen-plug", kitchen, "/status", "meters.0.power", "meters.0.total", 60_000.0,
             kitchen_start, since.timestamp()),
        Plug("office-plug", office, "/rpc/Switch.GetStatus?id=0", "apower", "aenergy.total",
             1_000.0, office_start, since.timestamp()),
    ]  # fmt: skip
    assert kitchen_counter["unit"] == "Wmin" and office_counter["unit"] == "Wh"
    try:
        yield {"plugs": plugs, "cloud": cloud, "influx": influx, "endpoint": endpoint}
    finally:
        endpoint.stop()
        influx.stop()
        cloud.stop()
        kitchen.stop()
        office.stop()


# -- reading InfluxDB back ----------------------------------------------------------------


def series(influx: InfluxDB1, device: str) -> dict[str, dict[str, Any]]:
    """Every `electricity` series of `device`: {channel: {"tags", "rows": [{field: value}]}}
    (rows with `time` in unix seconds, oldest first)."""
    out: dict[str, dict[str, Any]] = {}
    result = influx.query(
        f"SELECT * FROM electricity WHERE device = '{device}' GROUP BY *",  # noqa: S608
        db=DB,
        epoch="s",
    )
    for one in result[0].get("series", []):
        tags = one["tags"]
        rows = [dict(zip(one["columns"], values, strict=True)) for values in one["values"]]
        key = tags["channel"] + (
            "" if tags.get("interval") in (None, "") else "@" + tags["interval"]
        )
        out[key] = {"tags": tags, "rows": rows}
    return out


def values(rows: list[dict[str, Any]], field: str) -> list[tuple[int, float]]:
    return [(r["time"], r[field]) for r in rows if r.get(field) is not None]


def wait_for(what: str, check: Callable[[], bool], timeout: float, box: SystemdContainer) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    journal = box.journal("homewatt-collector@plugs") + box.journal("homewatt-collector@emporia")
    raise AssertionError(f"no {what} after {timeout:.0f} s\n{journal}")


# -- the bill as printed ------------------------------------------------------------------


def table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """The cost table's rows by (first, second) cell, each row's cells stripped."""
    rows = {}
    for line in text.splitlines():
        if "│" not in line and "|" not in line:
            continue
        cells = [c.strip() for c in re.split(r"[│|┃]", line)[1:-1]]
        if len(cells) >= 6 and cells[0]:
            rows[(cells[0], cells[1])] = cells
    return rows


def check_printed_bill(
    printed: str, energies: dict[tuple[str, str], float], days: int, label: str
) -> float:
    """Every billed (device, channel) row, the standing charge and the total equal the hand
    bill: energy x FLAT_PRICE each, 1.25 a day, their sum. Returns the total cost."""
    rows = table_rows(printed)
    for (device, channel), energy in energies.items():
        cells = rows.get((device, channel))
        assert cells is not None, f"{label}: no row {device}/{channel}\n{printed}"
        assert cells[2] == "flat" and cells[4] == f"{FLAT_PRICE:.4f}", (cells, printed)
        assert float(cells[3]) == pytest.approx(energy, abs=0.0006), (label, cells, energy)
        assert float(cells[5]) == pytest.approx(energy * FLAT_PRICE, abs=0.006), (label, cells)
        assert cells[6] == "", f"{label}: {device}/{channel} is billed"
    standing = 1.25 * days  # tariff.example.yaml's standing charge per day
    assert float(rows[("standing charge", "")][5]) == pytest.approx(standing, abs=0.006)
    total_energy = sum(energies.values())
    total_cost = total_energy * FLAT_PRICE + standing
    total = rows[("total", "")]
    assert float(total[3]) == pytest.approx(total_energy, abs=0.0006), (label, total)
    assert float(total[5]) == pytest.approx(total_cost, abs=0.006), (label, total, printed)
    return total_cost


# -- the test ---------------------------------------------------------------------------


def test_a_new_user_adds_emporia_and_two_shelly_plugs_from_the_readme_and_the_bill_adds_up(
    systemd_rig: SystemdRig, homewatt_wheels: Path, servers: dict[str, Any]
) -> None:
    plugs: list[Plug] = servers["plugs"]
    cloud: EmporiaCloud = servers["cloud"]
    influx: InfluxDB1 = servers["influx"]
    endpoint: V2WriteEndpoint = servers["endpoint"]
    box = systemd_rig.boot("bookworm", purpose="pollers")
    try:
        run_as_a_user(box, homewatt_wheels, plugs, cloud, influx, endpoint)
    finally:
        box.stop(timeout=60)


def run_as_a_user(  # noqa: PLR0912, PLR0917 (one user's run, step by step)
    box: SystemdContainer,
    wheels: Path,
    plugs: list[Plug],
    cloud: EmporiaCloud,
    influx: InfluxDB1,
    endpoint: V2WriteEndpoint,
) -> None:
    phases = [("", time.monotonic())]
    # The README's hand install: the collector with the `emporia` extra ("Add an Emporia
    # account"), its unit, the write token, the credentials dir.
    install_app(
        box, wheels, "homewatt-collector", units=["homewatt-collector@.service"], extras=["emporia"]
    )
    box.copy_in(REPO / "systemd", "/root/homewatt")
    box.write_file("/etc/homewatt/credentials/influxdb-write-token", WRITE_TOKEN + "\n", mode=0o600)
    box.run("chmod 0700 /etc/homewatt/credentials")
    box.write_file("/root/typed/shelly-office", OFFICE_PASSWORD + "\n", mode=0o600)
    box.write_file("/root/typed/emporia-password", EMPORIA_PASSWORD + "\n", mode=0o600)

    # "Add Shelly plugs", steps 2 and 3: the README's block, the test devices' addresses.
    shelly = readme_yaml_source("shelly")
    names = [d["name"] for d in shelly["devices"]]
    assert names == ["kitchen-plug", "office-plug"], names
    assert "password_credential" not in shelly["devices"][0]
    assert shelly["devices"][1]["password_credential"] == "shelly-office"
    for entry, plug in zip(shelly["devices"], plugs, strict=True):
        entry["host"] = plug.device.address
    box.write_file(
        "/etc/homewatt/collector/plugs.yaml",
        instance_config("shelly.example.yaml", shelly, endpoint.url),
    )
    # "Add an Emporia account", steps 1 and 2: the README's block, the test server's login.
    emporia = readme_yaml_source("emporia")
    (account,) = emporia["accounts"]
    assert account["password_credential"] == "emporia-password"
    account["username"] = "new-user@example.invalid"
    account["simulator_url"] = cloud.url
    box.write_file(
        "/etc/homewatt/collector/emporia.yaml",
        instance_config("emporia.example.yaml", emporia, endpoint.url),
    )
    phases.append(("install", time.monotonic()))
    started = time.time()
    run_readme_block(box, readme_sh("homewatt-collector@plugs.service.d/shelly.conf"))
    run_readme_block(box, readme_sh("homewatt-collector@emporia.service.d/emporia.conf"))

    # the README's check: the configs and their secrets, as root outside systemd
    for instance in ("plugs", "emporia"):
        checked_config = box.run(f"homewatt-collector check-config --instance {instance}")
        assert checked_config.stdout.splitlines()[-1] == "ok", checked_config.stdout
        assert OFFICE_PASSWORD not in checked_config.stdout + checked_config.stderr
        assert EMPORIA_PASSWORD not in checked_config.stdout + checked_config.stderr
    # what the README's blocks left: root-only secrets, one LoadCredential= per drop-in
    modes = box.run(
        "stat -c '%n %a %U' /etc/homewatt/credentials /etc/homewatt/credentials/*"
    ).stdout.split("\n")
    assert sorted(filter(None, modes)) == [
        "/etc/homewatt/credentials 700 root",
        "/etc/homewatt/credentials/emporia-password 600 root",
        "/etc/homewatt/credentials/influxdb-write-token 600 root",
        "/etc/homewatt/credentials/shelly-office 600 root",
    ], modes

    # -- both units run and stay up; the samples arrive -----------------------------------
    cloud_minutes = {  # (device tag, channel key) -> (gid, channel number)
        ("Home", "total@1min"): (1001, "1,2,3"),
        ("Home", "oven@1min"): (1001, "1"),  # the README's name for circuit 1
        ("Home", "heat-pump@1min"): (1001, "3"),  # circuit 3: exports half the time
        ("Kettle", "total@1min"): (2001, "1,2,3"),  # the smart plug nested under circuit 4
    }

    def enough() -> bool:
        """Each plug's energy past its baseline for 8 polls; each Emporia channel 2 minutes."""
        for plug in plugs:
            rows = series(influx, plug.name).get("switch0", {"rows": []})["rows"]
            if len(values(rows, "energy_total_kwh")) < 8:
                return False
        for device in ("Home", "Kettle"):
            found = series(influx, device)
            for (d, key), _ in cloud_minutes.items():
                if d == device and len(values(found.get(key, {"rows": []})["rows"], "power_w")) < 2:
                    return False
        return True

    phases.append(("configure and start", time.monotonic()))
    wait_for("samples of both units", enough, 240, box)
    phases.append(("collect", time.monotonic()))
    units = ("homewatt-collector@plugs.service", "homewatt-collector@emporia.service")
    for unit in units:
        state = box.unit_properties(
            unit, "ActiveState", "SubState", "NRestarts", "UnitFileState", "StatusText"
        )
        assert state["ActiveState"] == "active" and state["SubState"] == "running", state
        assert state["NRestarts"] == "0" and state["UnitFileState"] == "enabled", state
        assert state["StatusText"] == "collecting every 1 s", state
        # the shipped hardening, as loaded (not overridden by the README's drop-ins)
        sandbox = box.unit_properties(
            unit, "MemoryDenyWriteExecute", "DynamicUser", "ProtectSystem", "LoadCredential"
        )
        assert sandbox["MemoryDenyWriteExecute"] == "yes" and sandbox["DynamicUser"] == "yes"
        assert sandbox["ProtectSystem"] == "strict", sandbox
    # pyemvue's login and HTTP stack loaded its native code under MemoryDenyWriteExecute=yes
    emporia_pid = box.unit_properties(units[1], "MainPID")["MainPID"]
    maps = box.read_text(f"/proc/{emporia_pid}/maps")
    for library in ("/_cffi_backend.", "/cryptography/hazmat/bindings/_rust.abi3.so"):
        assert library in maps, f"{library} not loaded by the emporia instance"
    status = box.run("systemctl status --no-pager --lines=0 " + " ".join(units)).stdout
    assert status.count("Active: active (running)") == 2, status
    journal = box.journal()
    for secret in (OFFICE_PASSWORD, EMPORIA_PASSWORD, WRITE_TOKEN):
        assert secret not in journal, "a secret in the journal"
    for unit in units:
        text = box.journal(unit)
        assert "status=31/SYS" not in text and "Traceback" not in text, text
        assert "Operation not permitted" not in text, text
    # Stopped cleanly, so what is stored is final for the checks and the bill below (a running
    # unit adds readings between the hand bill and the command's).
    box.systemctl("stop", *units)
    for unit in units:
        assert box.unit_properties(unit, "ActiveState", "Result", "NRestarts") == {
            "ActiveState": "inactive",
            "Result": "success",
            "NRestarts": "0",
        }
        assert "stopped; sink local: 0 samples pending in the outbox" in box.journal(unit)
    assert endpoint.statuses and set(endpoint.statuses) == {204}, set(endpoint.statuses)
    assert plugs[0].device.refused == 0, "the Gen1 plug has no password"
    assert plugs[1].device.refused >= 1, "the Gen2 plug asked for Digest auth"

    # -- the plugs, sample by sample ------------------------------------------------------
    plug_last: dict[str, float] = {}
    checked = 0
    for plug in plugs:
        found = series(influx, plug.name)
        assert set(found) == {"switch0"}, found.keys()
        tags = found["switch0"]["tags"]
        assert tags["site"] == SITE and tags["source"] == "shelly", tags
        rows = found["switch0"]["rows"]
        power = values(rows, "power_w")
        energy = values(rows, "energy_total_kwh")
        stamps = [ts for ts, _ in power]
        assert len(stamps) == len(set(stamps)) and all(ts % 5 == 0 for ts in stamps), stamps
        assert stamps[0] >= started - 1
        # energy is held back for the counter rule's baseline, then stored with every power
        assert len(power) - len(energy) <= BASELINE_READS - 1, (len(power), len(energy))
        served = [s for s in plug.device.served if s.path == plug.answer]

        def answer_for(ts: int, served: list[Served] = served) -> Served:
            """The answer to slot `ts`'s poll: the first after its start (the next slot's
            poll comes 5 s later)."""
            return next(s for s in served if s.t >= ts)

        for ts, watts in power:
            answer = answer_for(ts)
            assert answer.t < ts + 5, f"{plug.name}: slot {ts} answered at {answer.t}"
            assert watts == pytest.approx(float(get_path(answer.body, plug.power))), ts
            checked += 1
        previous = None
        for ts, stored in energy:
            answer = answer_for(ts)
            counter = float(get_path(answer.body, plug.counter))
            assert stored == pytest.approx(counter / plug.per_kwh, abs=1e-9), (plug.name, ts)
            assert previous is None or stored >= previous, f"{plug.name} went back at {ts}"
            previous = stored
            checked += 1
        assert previous is not None
        plug_last[plug.name] = previous

    # -- Emporia, minute by minute --------------------------------------------------------
    cloud_sums: dict[str, list[tuple[int, float]]] = {}  # device: its `total` running sum
    for (device, key), (gid, num) in cloud_minutes.items():
        found = series(influx, device)
        assert key in found, (device, sorted(found))
        tags = found[key]["tags"]
        assert tags["site"] == SITE and tags["source"] == "emporia", tags
        rows = found[key]["rows"]
        minutes = [r["time"] for r in rows if r.get("power_w") is not None]
        with_data = [
            m for m in range(minutes[0], minutes[-1] + 60, 60) if kwh(gid, num, m, 60) is not None
        ]
        assert minutes == with_data, f"{device} {key}: every minute with data, no other"
        total = 0.0
        for row in rows:
            used = kwh(gid, num, row["time"], 60)
            assert used is not None
            assert row["power_w"] == pytest.approx(used * 60_000), (device, key, row)
            total += max(used, 0.0)
            assert row["energy_total_kwh"] == pytest.approx(total, abs=1e-9), (device, key, row)
            checked += 2
        if key.startswith("total"):
            cloud_sums[device] = [(r["time"], r["energy_total_kwh"]) for r in rows]
            # the bill counts from the first reading: the minutes after it, by hand
            after_first = sum(kwh(gid, num, r["time"], 60) or 0.0 for r in rows[1:])
            assert rows[-1]["energy_total_kwh"] - rows[0]["energy_total_kwh"] == pytest.approx(
                after_first
            )
    # at least 8 energy and 8 power samples per plug, 2 minutes x 2 fields per Emporia series
    assert checked >= 2 * 16 + 4 * 4, checked
    print(f"{checked} samples checked against what the devices and the server served")

    # -- the bill ---------------------------------------------------------------------------
    # Seeded (see the module docstring): each plug's reading at local midnight starting the
    # month and starting today, with the unit's own tags; the plug drew its fixture's power.
    # Written after the units stopped: a live reading at that very second gives way to it.
    now = datetime.now(ZONE)
    seeds: dict[str, dict[int, float]] = {}
    first = int(month_start(now).timestamp())
    today = int(day_start(now).timestamp())
    for plug in plugs:
        rows = series(influx, plug.name)["switch0"]
        seeds[plug.name] = {first: plug.kwh_at(first), today: plug.kwh_at(today)}
        tags = ",".join(f"{k}={v}" for k, v in sorted(rows["tags"].items()) if v not in (None, ""))
        influx.write(
            DB,
            [
                f"electricity,{tags} energy_total_kwh={value!r} {ts}"
                for ts, value in seeds[plug.name].items()
            ],
        )
    month = f"{now:%Y-%m}"
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    box.write_file("/etc/homewatt/tariff.yaml", flat_tariff())
    cost = yaml.safe_load((REPO / "collector" / "cost.example.yaml").read_text())
    assert cost["site"] == SITE and cost["influxdb"]["database"] == DB
    cost["influxdb"]["url"] = influx.url
    box.write_file(f"/etc/homewatt/cost/{SITE}.yaml", yaml.safe_dump(cost))
    box.write_file("/etc/homewatt/credentials/influxdb-cost-token", COST_TOKEN + "\n", mode=0o600)

    # By hand. A plug's month: its last stored reading minus its counter at the month's
    # start (kWh = watt-minutes / 60,000 for the Gen1, Wh / 1,000 for the Gen2); its day: the
    # same from today's midnight. Emporia's devices (only their `total` channel is billed):
    # the last running sum minus the one at the midnight (energy_from; the minutes after the
    # first were summed above). Cost = kWh x 0.92 per device, + 1.25 a day, summed.
    month_energy = {
        (plug.name, "switch0"): plug_last[plug.name] - seeds[plug.name][first] for plug in plugs
    } | {(device, "total"): energy_from(sums, first) for device, sums in cloud_sums.items()}
    day_energy = {
        (plug.name, "switch0"): plug_last[plug.name] - seeds[plug.name][today] for plug in plugs
    } | {(device, "total"): energy_from(sums, today) for device, sums in cloud_sums.items()}

    for option, value, energies, days in (
        ("--month", month, month_energy, days_in_month),
        ("--day", f"{now:%Y-%m-%d}", day_energy, 1),
    ):
        shown = box.run(f"homewatt-collector cost --site {SITE} {option} {value}", check=False)
        assert shown.exit_code == 0, shown.stdout + shown.stderr
        assert COST_TOKEN not in shown.stdout + shown.stderr
        total = check_printed_bill(shown.stdout, energies, days, option)
        assert f"site {SITE}, {value}" in shown.stdout, shown.stdout
        for device in ("Home", "Kettle"):  # Emporia's sums began today: said on stderr
            assert f"{device}/total: readings from " in shown.stderr, shown.stderr
        print(f"cost {option} {value}: {total:.2f} PLN by hand\n{shown.stdout}{shown.stderr}")
    phases.append(("check and bill", time.monotonic()))
    print(", ".join(f"{n} {b - a:.0f} s" for (_, a), (n, b) in pairwise(phases)))


def flat_tariff() -> str:
    """tariff.example.yaml with its flat price chosen instead of its time-of-use periods, as
    its comments say ("Either one flat price per kWh imported... or time-of-use periods")."""
    text = (REPO / "collector" / "tariff.example.yaml").read_text()
    assert f"# import_price: {FLAT_PRICE}" in text
    tariff = yaml.safe_load(text)
    del tariff["periods"]
    tariff["import_price"] = FLAT_PRICE
    assert tariff["timezone"] == ZONE.key and tariff["standing_charge_per_day"] == 1.25
    return yaml.safe_dump(tariff)
