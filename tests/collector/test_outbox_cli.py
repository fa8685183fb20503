"""The outbox commands as an operator runs them: the outbox found from the config, the
instance name or the demo run, without exporting anything; run as root, the files they create
in the service's state directory stay the service's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.collector.conftest import COLLECTOR_BIN, wait_for_samples, write_config
from tests.collector.test_cli import cli, run_demo
from tests.support.faultproxy import FaultProxy
from tests.support.processes import wait_until
from tests.support.victoria import VictoriaMetrics

SERVICE_USER = (4242, 4242)  # a DynamicUser= uid/gid, as systemd gives the service


def backlog_of(status: str) -> int:
    found = re.search(r"pending samples \(backlog\)\W*(\d+)", status)
    assert found, status
    return int(found.group(1))


def test_the_instance_option_reads_the_units_config() -> None:
    result = cli("check-config", "--instance", "nosuch")
    assert result.returncode == 1
    assert result.stderr == (
        "homewatt-collector: error: /etc/homewatt/collector/nosuch.yaml: the file does not exist\n"
    )
    result = cli("outbox", "--instance", "main", "-c", "/tmp/x.yaml")
    assert result.returncode == 1
    assert result.stderr == (
        "homewatt-collector: error: --instance: give --config or --instance, not both\n"
    )


def test_outbox_demo_without_a_demo_run_here_says_where_to_run_it(tmp_path: Path) -> None:
    result = cli("outbox", "--demo", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"homewatt-collector: error: --demo: no demo run here ({tmp_path}/homewatt-demo/demo.yaml"
        " is missing): run the outbox commands where `homewatt-collector run --demo` ran\n"
    )


@pytest.mark.integration
def test_the_demo_runs_outbox_is_found_and_replayed_to_the_demos_sink(
    tmp_path: Path, victoria: VictoriaMetrics, victoria_proxy: FaultProxy
) -> None:
    victoria_proxy.down()
    result = run_demo(tmp_path, 4, "--sink-url", victoria_proxy.url, "--no-table")
    assert result.returncode == 0, result.stderr
    status = cli("outbox", "--demo", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    backlog = backlog_of(status.stdout)
    assert backlog >= 2
    assert re.search(r"size\W+\d+\.\d MB of 200 MB", status.stdout), status.stdout
    victoria_proxy.up()
    replay = cli("outbox", "replay", "--demo", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout == f"sink local: {backlog} samples delivered, 0 pending\n"
    wait_until(
        lambda: len(victoria.samples("electricity_power_w", site="demo")) >= 1, 15, "demo samples"
    )


def owners(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.lstat().st_uid, p.lstat().st_gid) for p in sorted(directory.iterdir())}


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="a root replay needs root")
def test_a_root_replay_leaves_every_file_to_the_outbox_directorys_owner(
    tmp_path: Path, victoria: VictoriaMetrics, victoria_proxy: FaultProxy
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "main.yaml", victoria_proxy.url, state)
    settings = yaml.safe_load(config.read_text())
    settings["sinks"][0]["timeout_s"] = 60  # a slow server holds the replay mid-write
    config.write_text(yaml.safe_dump(settings))
    victoria_proxy.down()
    collector = subprocess.Popen([str(COLLECTOR_BIN), "run", "-c", str(config), "--no-table"])
    wait_for_samples(state / "outbox-local.sqlite", 4)
    collector.send_signal(signal.SIGTERM)
    assert collector.wait(timeout=30) == 0
    # what the service left, handed to its user as systemd's StateDirectory= does; without its
    # lock file (an outbox restored from a copy), so the root replay creates one. (SQLite itself
    # gives the -wal and -shm files it creates as root the database file's owner.)
    for path in [state, *state.iterdir()]:
        os.chown(path, *SERVICE_USER)
    (state / "outbox-local.sqlite.lock").unlink()
    victoria_proxy.up()

    victoria_proxy.delay_s = 30
    replay = subprocess.Popen(
        [str(COLLECTOR_BIN), "outbox", "replay", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: victoria_proxy.stats.requests >= 1, 30, "the replay's first write")
    time.sleep(0.5)
    during = owners(state)
    assert {"outbox-local.sqlite.lock", "outbox-local.sqlite-wal"} <= set(during), during
    assert set(during.values()) == {SERVICE_USER}, during
    replay.kill()  # a replay that dies mid-way leaves its journal behind
    replay.wait(timeout=10)
    assert set(owners(state).values()) == {SERVICE_USER}, owners(state)

    victoria_proxy.delay_s = 0
    done = cli("outbox", "replay", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"sink local: \d+ samples delivered, 0 pending\n", done.stdout)
    assert set(owners(state).values()) == {SERVICE_USER}, owners(state)
    assert (state.stat().st_uid, state.stat().st_gid) == SERVICE_USER
