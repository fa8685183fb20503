"""Fixtures of the backup suite: Azurite (one per session, a fresh container per test),
InfluxDB 1.6.7 (one per test), site configurations written the way Ansible would, and the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from homewatt_backup.cli import app
from homewatt_backup.config import Settings, load_settings
from tests.support.azurite import Azurite
from tests.support.faultproxy import FaultProxy
from tests.support.influxdb1 import InfluxDB1

SITE = "home"
DB = "homewatt"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def influxdb1(tmp_path: Path) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path / "influxdb1").start()
    try:
        server.create_database(DB)
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    proxy = FaultProxy(azurite.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def write_secret(path: Path, value: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return path


@dataclass
class Site:
    """One site's files, as Ansible would lay them out: config, credentials, state."""

    root: Path
    config: dict[str, Any]
    container: str | None = None
    args: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / "backup.yaml"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def save(self) -> Site:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self

    def settings(self) -> Settings:
        return load_settings(self.config_path, self.credentials, self.state_dir)

    def cli(self, *args: str) -> Result:
        base = [
            "--config",
            str(self.config_path),
            "--credentials-dir",
            str(self.credentials),
            "--state-dir",
            str(self.state_dir),
        ]
        return CliRunner().invoke(app, [*base, *args])


def make_site(
    root: Path,
    influx: InfluxDB1,
    azurite: Azurite | None = None,
    *,
    retention: str = "rotation",
    permissions: str | None = None,
    sas_valid_for: timedelta = timedelta(hours=2),
    account_url: str | None = None,
    keep_full: int = 10,
    local_full: int = 2,
) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "site": SITE,
        "influxdb": {
            "engine": "influxdb1",
            "url": influx.url,
            "database": DB,
            "rpc_address": influx.rpc_address,
        },
        "keep": {"full": keep_full, "local_full": local_full},
        # the development and CI machines run no NTP client: their kernel says "not
        # synchronised" (test_clock.py sets it back to true where the check is the subject)
        "clock": {"wait_for_sync": False},
        # never the machine's own /etc/homewatt (test_config_files.py lays one out)
        "config_files": {"directory": str(root / "etc-homewatt")},
    }
    site = Site(root, config)
    if azurite is not None:
        site.container = azurite.new_container()
        perms = permissions or {"rotation": "rcwdl", "lifecycle": "rcwl"}[retention]
        write_secret(
            site.credentials / "azure-sas", azurite.sas(site.container, perms, sas_valid_for)
        )
        config["azure"] = {
            "account_url": account_url or azurite.account_url,
            "container": site.container,
            "retention": retention,
            "sas_credential": "azure-sas",
        }
    site.credentials.mkdir(exist_ok=True, mode=0o700)
    return site.save()


def daily_boundary_away_from_now(site: Site) -> Site:
    """`schedule.daily_full_hour_utc` 12 hours from the wall clock's hour, for a test whose
    auto runs pick their kind by the real clock: the daily boundary never falls between its
    runs (a full at 02:59:59 and the next run at 03:00:00 is rightly another full)."""
    site.config["schedule"] = {"daily_full_hour_utc": (datetime.now(UTC).hour + 12) % 24}
    return site.save()


def make_influxdb2_site(
    root: Path,
    url: str,
    *,
    org: str,
    bucket: str,
    token: str,
    azurite: Azurite | None = None,
    retention: str = "rotation",
) -> Site:
    """A site backing up an InfluxDB 2 (the stand-in) bucket, optionally to Azurite."""
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "site": SITE,
        "influxdb": {
            "engine": "influxdb2",
            "url": url,
            "org": org,
            "bucket": bucket,
            "token_credential": "influxdb-operator-token",
        },
        "clock": {"wait_for_sync": False},  # no NTP on the test machines (see make_site)
        "config_files": {"directory": str(root / "etc-homewatt")},
    }
    site = Site(root, config)
    write_secret(site.credentials / "influxdb-operator-token", token)
    if azurite is not None:
        site.container = azurite.new_container()
        perms = {"rotation": "rcwdl", "lifecycle": "rcwl"}[retention]
        write_secret(site.credentials / "azure-sas", azurite.sas(site.container, perms))
        config["azure"] = {
            "account_url": azurite.account_url,
            "container": site.container,
            "retention": retention,
            "sas_credential": "azure-sas",
        }
    return site.save()


ELECTRICITY = [
    # the collector's data model: measurement electricity, SI fields, integer and float types
    "electricity,site=home,source=modbus,device=meter1,channel=l1,model=orno-we515 "
    "power_w=231.5,voltage_v=229.8,current_a=1.01,energy_total_kwh=1234.567 {ts}",
    "electricity,site=home,source=modbus,device=meter1,channel=total,model=orno-we515 "
    "power_w=640.25,frequency_hz=50.01 {ts}",
    "electricity,site=home,source=shelly,device=plug\\ kitchen,channel=relay\\,0,model=plus "
    'power_w=12.5,energy_total_kwh=3.25,relay_on=true,note="kettle \\"on\\"" {ts}',
    "homewatt_health,site=home,unit=collector cycle_lateness_ms=3i,read_errors=0i {ts}",
]


def sample_lines(start: int, count: int, step: int = 1) -> list[str]:
    lines = []
    for i in range(count):
        ts = start + i * step
        for template in ELECTRICITY:
            lines.append(template.format(ts=ts).replace("231.5", f"{231.5 + i % 7}"))
    return lines
