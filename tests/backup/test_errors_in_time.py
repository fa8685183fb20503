"""Errors that name what they are about, in full, and come in time (issue 11 item 4): a person
running `list`, `verify` or `restore` hears of an unreachable Azure within 15 s (5 s to connect,
at most one retry; the timer's `run` alone retries for minutes), and `run` with a wrong
InfluxDB URL says so at once instead of first waiting for Azure. Real InfluxDB 1.6.7 and a
closed loopback port as the unreachable server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.backup.conftest import make_site
from tests.support.azurite import Azurite
from tests.support.influxdb1 import InfluxDB1
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

NAME = "home/daily/20261123T030000Z.tar"


@pytest.mark.parametrize(
    "command", [("list",), ("verify", NAME), ("restore", NAME, "--target", "restored")]
)
def test_interactive_commands_report_an_unreachable_azure_within_15_s_naming_it_in_full(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite, command: tuple[str, ...]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    site = make_site(tmp_path / "site", influxdb1, azurite, account_url=dead)
    started = time.monotonic()
    done = site.cli(*command)
    elapsed = time.monotonic() - started
    assert done.exit_code == 1
    [line] = done.stderr.strip().splitlines()
    assert f"Azure Blob Storage at {dead} is unreachable (" in line, line
    assert line.endswith("); the next run retries"), line  # the library's reason, not cut
    assert elapsed < 15, f"{elapsed:.1f} s"


def test_run_with_a_wrong_influxdb_url_fails_at_once_without_waiting_for_azure(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site = make_site(
        tmp_path / "site",
        influxdb1,
        azurite,
        account_url=f"http://127.0.0.1:{free_port()}/devstoreaccount1",
    )
    wrong = f"http://127.0.0.1:{free_port()}"
    site.config["influxdb"]["url"] = wrong
    site.config["health"] = False
    site.save()
    started = time.monotonic()
    done = site.cli("run")
    elapsed = time.monotonic() - started
    assert done.exit_code == 1
    assert f"InfluxDB at {wrong} is unreachable" in done.stderr.splitlines()[-1]
    assert "Azure" not in done.stderr
    assert elapsed < 15, f"{elapsed:.1f} s"
