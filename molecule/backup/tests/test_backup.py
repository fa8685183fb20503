"""The backup role inside its Molecule instance, against the InfluxDB 2 stand-in run in the
instance (NOT InfluxDB 2, which cannot run here); backups stay on the Pi in this scenario."""

from __future__ import annotations

import json
import re

import testinfra.host


def test_timer_is_enabled_and_waiting(host: testinfra.host.Host) -> None:
    timer = host.service("homewatt-backup.timer")
    assert timer.is_enabled
    assert timer.is_running


def test_config_and_credentials_have_the_contracts_modes(host: testinfra.host.Host) -> None:
    config = host.file("/etc/homewatt/backup.yaml")
    assert (oct(config.mode), config.user) == ("0o644", "root")
    assert "token_credential: influxdb-operator-token" in config.content_string
    assert "azure" not in config.content_string
    token = host.file("/etc/homewatt/credentials/influxdb-operator-token")
    assert (oct(token.mode), token.user) == ("0o600", "root")


def test_the_drop_in_loads_only_the_operator_token_without_azure(
    host: testinfra.host.Host,
) -> None:
    """The unit's own list (with azure-sas) is reset; no SAS file exists on this Pi, so the
    backup run below starting at all proves the reset took effect (a missing LoadCredential=
    source fails the start). systemd 252's `show` prints this setting as [unprintable]."""
    text = host.file("/etc/systemd/system/homewatt-backup.service.d/homewatt.conf").content_string
    lines = [line for line in text.splitlines() if line.startswith("LoadCredential=")]
    assert lines == [
        "LoadCredential=",
        "LoadCredential=influxdb-operator-token:/etc/homewatt/credentials/influxdb-operator-token",
    ]
    assert not host.file("/etc/homewatt/credentials/azure-sas").exists


def test_exposure_is_at_most_2_0(host: testinfra.host.Host) -> None:
    out = host.check_output("systemd-analyze security homewatt-backup.service --no-pager")
    level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert level <= 2.0, out[-2000:]


def test_one_run_backs_up_the_standin_not_run_against_a_real_influxdb2(
    host: testinfra.host.Host,
) -> None:
    done = host.run("systemctl start homewatt-backup.service")
    journal = host.check_output("journalctl -u homewatt-backup.service --no-pager -n 30")
    assert done.rc == 0, journal
    assert host.check_output("systemctl show -P Result homewatt-backup.service") == "success"
    archives = host.check_output("find /var/lib/private/homewatt-backup -name '*.tar'")
    assert archives.strip(), journal
    # a daily full's manifest names the long-term bucket beside the raw one (the role's
    # backup_influxdb_extra_buckets; the prepare's stand-in has both buckets)
    daily = next(name for name in archives.split() if "/daily/" in name)
    manifest = json.loads(host.check_output(f"tar -xOf {daily} manifest.json"))
    assert [e["bucket"] for e in manifest["extra_buckets"]] == ["homewatt_longterm"], manifest
    assert {s["bucket"] for s in manifest["shards"]} <= {"homewatt", "homewatt_longterm"}
