"""The base role, checked inside its Molecule instance (testinfra, systemd as PID 1).

udev does not run in a container: the RS485 rule is checked as a file here, and its match keys
by tests/ansible/test_udev_rule.py.
"""

from __future__ import annotations

import testinfra.host


def test_the_site_time_zone_is_set(host: testinfra.host.Host) -> None:
    assert host.check_output("timedatectl show -p Timezone --value") == "Europe/Berlin"
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"


def test_config_directory_is_world_readable_and_credentials_root_only(
    host: testinfra.host.Host,
) -> None:
    config = host.file("/etc/homewatt")
    assert config.is_directory
    assert (config.user, config.group, config.mode) == ("root", "root", 0o755)
    credentials = host.file("/etc/homewatt/credentials")
    assert credentials.is_directory
    assert (credentials.user, credentials.group, credentials.mode) == ("root", "root", 0o700)


def test_time_sync_target_waits_for_the_clock(host: testinfra.host.Host) -> None:
    assert host.service("systemd-timesyncd").is_enabled
    wait = host.service("systemd-time-wait-sync")
    assert wait.is_enabled
    assert "time-sync.target" in host.check_output(
        "systemctl show -p Before --value systemd-time-wait-sync.service"
    )


def test_journal_is_bounded_for_an_sd_card(host: testinfra.host.Host) -> None:
    conf = host.file("/etc/systemd/journald.conf.d/homewatt.conf")
    assert conf.mode == 0o644
    assert "SystemMaxUse=64M" in conf.content_string
    assert "Storage=persistent" in conf.content_string
    assert host.service("systemd-journald").is_running


def test_each_rs485_adapter_gets_a_rule_for_its_stable_name(host: testinfra.host.Host) -> None:
    rules = host.file("/etc/udev/rules.d/99-homewatt-rs485.rules")
    assert rules.mode == 0o644
    lines = [line for line in rules.content_string.splitlines() if line.startswith("SUBSYSTEM")]
    assert len(lines) == 2
    assert 'ATTRS{serial}=="A10K1ABC"' in lines[0]
    assert 'SYMLINK+="homewatt-rs485-main"' in lines[0]
    assert 'SYMLINK+="homewatt-rs485-heatpump"' in lines[1]


def test_unattended_upgrades_take_security_updates_only_and_never_reboot(
    host: testinfra.host.Host,
) -> None:
    conf = host.file("/etc/apt/apt.conf.d/52homewatt-unattended-upgrades").content_string
    assert "-security" in conf
    assert 'Automatic-Reboot "false"' in conf
    assert host.package("unattended-upgrades").is_installed
