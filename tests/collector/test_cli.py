"""The command line as a user meets it: one clear line per mistake, tables, the outbox commands."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from homewatt_collector import __version__
from tests.collector.conftest import COLLECTOR_BIN, REPO, wait_for_samples, write_config
from tests.support.faultproxy import FaultProxy
from tests.support.processes import ServerProcess, free_port, wait_until
from tests.support.victoria import VictoriaMetrics


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it (outside systemd: no credentials directory)."""
    base = {
        k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
    }
    return subprocess.run(
        [str(COLLECTOR_BIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
        env={**base, "COLUMNS": "200", **(env or {})},
    )


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of `path` containing `text`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_version_is_printed() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"homewatt-collector {__version__}"


def test_check_config_explains_a_valid_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "main.yaml", "http://127.0.0.1:8086", tmp_path / "state")
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{config}: site test, unit main, a reading every 1 s",
        "  source demo: a simulated household meter (device sim, seed 1)",
        "  sink local: http://127.0.0.1:8086 org=homewatt bucket=homewatt",
        "    no token (anonymous)",
        f"  outbox {tmp_path / 'state'} (at most 200 MB per sink)",
        "ok",
    ]
    assert result.stderr == ""


def test_check_config_of_the_example_assumes_the_units_values_outside_systemd() -> None:
    example = REPO / "collector" / "collector.example.yaml"
    result = cli("check-config", "--no-secrets", "-c", str(example))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:] == [
        "  sink local: http://127.0.0.1:8086 org=homewatt bucket=homewatt",
        "    token from credential influxdb-write-token",
        "    assumed outside systemd: /etc/homewatt/credentials/influxdb-write-token,"
        " the file the unit hands over as credential influxdb-write-token",
        "    not read (--no-secrets)",
        "  outbox /var/lib/homewatt-collector/collector.example (at most 200 MB per sink)",
        "    assumed outside systemd: the unit's StateDirectory= for instance collector.example",
        "ok",
    ]


def test_check_config_prints_ok_only_when_everything_passed(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "main.yaml",
        "http://127.0.0.1:8086",
        tmp_path / "state",
        sinks=[
            {
                "url": "http://127.0.0.1:8086",
                "org": "o",
                "bucket": "b",
                "token_credential": "influxdb-write-token",
            }
        ],
    )
    empty = tmp_path / "credentials"
    empty.mkdir()
    result = cli("check-config", "-c", str(config), env={"CREDENTIALS_DIRECTORY": str(empty)})
    assert result.returncode == 1
    assert "ok" not in result.stdout.splitlines()
    line = line_of(config, "token_credential:")
    assert result.stderr == (
        f"homewatt-collector: error: {config}:{line}: sinks[0].token_credential:"
        f" {empty / 'influxdb-write-token'}: does not exist\n"
    )


def test_a_bad_config_is_one_clear_error_and_exit_status_1(tmp_path: Path) -> None:
    config = tmp_path / "main.yaml"
    config.write_text("site: home\nsource: {kind: demo}\nsinks: []\n")
    for command in (["check-config"], ["run", "--no-table"]):
        result = cli(*command, "-c", str(config))
        assert result.returncode == 1
        assert result.stderr == (
            f"homewatt-collector: error: {config}:3: sinks:"
            " List should have at least 1 item after validation, not 0\n"
        )
        assert result.stdout == ""


def test_a_bad_demo_option_is_one_line_naming_the_option(tmp_path: Path) -> None:
    result = cli("run", "--demo", "--sink-url", "ftp://x", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "homewatt-collector: error: --sink-url: 'ftp://x' is not an http:// or https:// URL\n"
    )
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    token.chmod(0o644)
    result = cli("run", "--demo", "--token-file", str(token), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"homewatt-collector: error: --token-file: {token}: is readable by group or others"
        f" (mode 0644): run: sudo chmod 600 {token}\n"
    )


def test_run_needs_a_config_or_demo() -> None:
    result = cli("run")
    assert result.returncode == 1
    assert result.stderr == (
        "homewatt-collector: error: --config: give the config file,"
        " or --demo to try the simulated meter\n"
    )


def test_the_json_schema_command_prints_the_published_schema() -> None:
    result = cli("schema")
    assert result.stdout == (REPO / "collector" / "collector-config.schema.json").read_text()


def run_demo(cwd: Path, seconds: float, *args: str) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        [str(COLLECTOR_BIN), "run", "--demo", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    # Count the seconds from the outbox's creation, not from the fork: under load, importing
    # the collector alone can take longer than the whole run was meant to last.
    outbox = cwd / "homewatt-demo" / "outbox-local.sqlite"
    try:
        wait_until(lambda: outbox.exists() or process.poll() is not None, 60, "the demo's outbox")
    except AssertionError:
        process.kill()
        raise
    time.sleep(seconds)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.integration
def test_the_demo_shows_a_live_table_and_delivers(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    result = run_demo(tmp_path, 4, "--sink-url", victoria.url, "--table")
    assert result.returncode == 0, result.stderr
    for text in ("power", "W", "energy total", "kWh", "voltage", "delivery", "local", "backlog"):
        assert text in result.stdout
    assert (tmp_path / "homewatt-demo" / "outbox-local.sqlite").exists()
    wait_until(
        lambda: len(victoria.samples("electricity_power_w", site="demo")) >= 2, 15, "demo samples"
    )


@pytest.mark.integration
def test_the_outbox_fills_while_no_database_listens_and_replay_drains_it(
    tmp_path: Path, victoria: VictoriaMetrics, victoria_proxy: FaultProxy
) -> None:
    config = write_config(tmp_path / "main.yaml", victoria_proxy.url, tmp_path / "state")
    victoria_proxy.down()
    run = subprocess.Popen([str(COLLECTOR_BIN), "run", "-c", str(config), "--no-table"])
    wait_for_samples(tmp_path / "state" / "outbox-local.sqlite", 4)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 0

    status = cli("outbox", "-c", str(config))
    assert status.returncode == 0, status.stderr
    assert "pending samples (backlog)" in status.stdout
    found = re.search(r"pending samples \(backlog\)\W*(\d+)", status.stdout)
    assert found, status.stdout
    backlog = int(found.group(1))
    assert backlog >= 4

    victoria_proxy.up()
    replay = cli("outbox", "-c", str(config), "replay")
    assert replay.returncode == 0, replay.stderr
    assert f"sink local: {backlog} samples delivered, 0 pending" in replay.stdout
    wait_until(
        lambda: (
            len(victoria.samples("electricity_power_w"))
            + len(victoria.samples("homewatt_health_read_errors"))
            + len(victoria.samples("homewatt_device_health_read_errors"))
            == backlog
        ),
        15,
        "the replayed samples",
    )


@pytest.mark.integration
def test_replay_refuses_while_the_service_holds_the_outbox(
    tmp_path: Path, collector_process: Callable[..., ServerProcess]
) -> None:
    config = write_config(tmp_path / "main.yaml", "http://127.0.0.1:9", tmp_path / "state")
    collector_process(config)
    wait_until((tmp_path / "state" / "outbox-local.sqlite").exists, 15, "the outbox")
    result = cli("outbox", "-c", str(config), "replay")
    assert result.returncode == 1
    assert "in use by another process" in result.stderr and "stop it first" in result.stderr


@pytest.mark.integration
def test_systemd_hears_ready_watchdog_and_stopping(
    tmp_path: Path, victoria: VictoriaMetrics, collector_process: Callable[..., ServerProcess]
) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(15)
    config = write_config(tmp_path / "main.yaml", victoria.url, tmp_path / "state")
    collector = collector_process(
        config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"}
    )
    messages = []
    while messages.count("WATCHDOG=1") < 3:
        messages.append(listener.recv(4096).decode())
    collector.stop()
    listener.settimeout(2)
    try:
        while True:
            messages.append(listener.recv(4096).decode())
    except TimeoutError:
        pass
    listener.close()
    assert messages[0] == "READY=1"
    assert "STOPPING=1" in messages
    assert any(m.startswith("STATUS=collecting every 1 s") for m in messages)


def test_a_password_in_a_sink_url_is_never_shown_and_check_config_says_why_it_does_nothing(
    tmp_path: Path,
) -> None:
    url = "http://homewatt:s3cret@127.0.0.1:9"
    config = write_config(tmp_path / "main.yaml", url, tmp_path / "state")
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "  sink local: http://homewatt:***@127.0.0.1:9 org=homewatt bucket=homewatt" in (
        result.stdout
    )
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"homewatt-collector: warning: {config}:")
    assert "sinks[0].url: holds a password, which is never sent" in warning
    assert result.stdout.splitlines()[-1] == "ok (1 warning)"
    assert "s3cret" not in result.stdout + result.stderr

    wrong = write_config(tmp_path / "wrong.yaml", "ftp://homewatt:s3cret@host", tmp_path / "state")
    refused = cli("check-config", "-c", str(wrong))
    assert refused.returncode == 1
    assert "'ftp://homewatt:***@host' is not an http:// or https:// URL" in refused.stderr
    assert "s3cret" not in refused.stdout + refused.stderr


def test_a_password_in_a_sink_url_never_reaches_the_log_of_a_running_collector(
    tmp_path: Path, collector_process: Callable[..., ServerProcess]
) -> None:
    port = free_port()  # nothing listens there: connection refused
    config = write_config(
        tmp_path / "main.yaml", f"http://homewatt:s3cret@127.0.0.1:{port}", tmp_path / "state"
    )
    collector = collector_process(config)
    wait_until(lambda: "retrying" in collector.log_tail(), 20, "a failed write in the log")
    collector.stop()
    log = collector.log_tail(100)
    assert "http://homewatt:***@127.0.0.1" in log
    assert "s3cret" not in log
