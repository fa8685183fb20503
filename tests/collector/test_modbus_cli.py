"""`modbus read`, `modbus scan` and `run` with a Modbus line: what a user does after wiring the
adapter; `read` and `scan`, their hidden aliases for one release."""

from __future__ import annotations

import grp
import os
import pwd
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homewatt_collector.cli.app import app
from tests.collector.conftest import MeterBus, write_config
from tests.collector.meters_data import (
    ORNO_WE515_HOLDING,
    orno_with_gap_registers,
    sdm630_input_registers,
)
from tests.collector.test_cli import cli
from tests.support.processes import ServerProcess, wait_until
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration

StartBus = Callable[..., MeterBus]


def test_read_prints_one_meters_values_with_units(meter_bus: StartBus) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}})
    result = cli(
        "modbus",
        "read",
        "--port",
        bus.port,
        "--model",
        "orno-we515",
        "--id",
        "1",
        "--settings",
        "9600 8N1",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in (
        r"voltage\s+.*total\s+.*230\.12 V\s+.*FC03 0x0131",
        r"frequency\s+.*50\.02 Hz",
        r"energy total\s+.*98,765\.43 kWh\s+.*FC03 0xa000",
        r"energy t3\s+.*0 kWh\s+.*0xa006\s+.*unverified address",
        r"power factor\s+.*0\.997",
    ):
        assert re.search(row, out), row
    assert "main" not in out and "orno-we515, id 1 on" in out
    assert "0 read errors" in out


def test_read_explains_a_meter_that_does_not_answer(meter_bus: StartBus) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}})
    result = cli(
        "modbus",
        "read",
        "--port",
        bus.port,
        "--model",
        "orno-we515",
        "--id",
        "9",
        "--settings",
        "9600 8N1",
        "--timeout",
        "0.2",
    )
    assert result.returncode == 1
    assert "did not answer: check the wiring (A/B swapped?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_read_of_an_unknown_model_or_port_is_one_clear_error(tmp_path: Path) -> None:
    result = cli("modbus", "read", "--port", "/dev/ttyUSB9", "--model", "orno-we999")
    assert result.returncode == 1
    assert result.stderr == (
        "homewatt-collector: error: --model: unknown model 'orno-we999' (known: orno-we514,"
        " orno-we515, orno-we516, orno-we517, sdm120, sdm630)\n"
    )
    result = cli("modbus", "read", "--port", str(tmp_path / "nothing"), "--model", "sdm630")
    assert result.returncode == 1
    assert result.stderr == (
        f"homewatt-collector: error: serial port {tmp_path / 'nothing'} is not there (is the"
        " adapter plugged in? ls /dev/serial/by-id/ lists what is)\n"
    )


def as_nobody(args: list[str]) -> tuple[int, str]:
    """The collector's command line run as user nobody, in a forked child of this process (its
    modules already imported: the checkout, e.g. a private CI directory, need not be readable by
    nobody). Exit code and stderr."""
    nobody = pwd.getpwnam("nobody")
    CliRunner().invoke(app, [*args[:2], "--port", "/nonexistent", *args[4:]])  # import what it uses
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, run the command, report, exit
        status = 1
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
            os.write(writer, f"{result.exit_code}\n{result.stderr}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"the child failed: {report}"
    code, _, stderr = report.partition("\n")
    return int(code), stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="making a port another user may not open needs root")
@pytest.mark.parametrize(
    "command", [["modbus", "read", "--model", "sdm630"], ["modbus", "scan", "--ids", "1"]]
)
def test_a_port_the_user_may_not_open_says_permission_denied_and_the_fix(
    command: list[str],
) -> None:
    # a real tty the way udev makes /dev/ttyUSB0: root:dialout, 0660; the command runs as nobody
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        os.chown(port, 0, grp.getgrnam("dialout").gr_gid)
        Path(port).chmod(0o660)
        code, stderr = as_nobody([*command[:2], "--port", port, *command[2:]])
    finally:
        os.close(slave)
        os.close(master)
    assert code == 1
    assert stderr == (
        f"homewatt-collector: error: serial port {port}: permission denied: this user is not"
        " in group dialout (sudo usermod -aG dialout $USER, then log in again; the unit gets the"
        " group from its serial drop-in)\n"
    )


def test_check_config_warns_of_a_port_that_is_not_there_yet_and_passes(tmp_path: Path) -> None:
    port = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K-if00-port0"
    config = write_config(
        tmp_path / "main.yaml",
        "http://127.0.0.1:8086",
        tmp_path / "state",
        source={
            "kind": "modbus",
            "port": port,
            "meters": [{"name": "main", "model": "orno-we515", "device_id": 1}],
        },
    )
    line = next(n for n, t in enumerate(config.read_text().splitlines(), 1) if "port:" in t)
    result = cli("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"homewatt-collector: warning: {config}:{line}: source.port: {port} does not exist now"
        " (is the adapter plugged in? the collector waits for it)\n"
    )
    assert result.stdout.splitlines()[1] == (
        f"  source modbus: port {port} at 9600 8E1, meters main (orno-we515, id 1)"
    )
    assert result.stdout.splitlines()[-1] == "ok (1 warning)"


def test_read_with_an_id_out_of_range_is_one_line_naming_the_option() -> None:
    result = cli("modbus", "read", "--port", "/dev/ttyUSB9", "--model", "orno-we515", "--id", "300")
    assert result.returncode == 2
    assert result.stderr == (
        "homewatt-collector: error: --id: Input should be less than or equal to 247"
        " (see homewatt-collector modbus read --help)\n"
    )


def test_scan_finds_the_meters_at_their_real_baud_rate_and_names_the_model(
    meter_bus: StartBus,
) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}, 3: {"input": sdm630_input_registers()}})
    result = cli(
        "modbus",
        "scan",
        "--port",
        bus.port,
        "--ids",
        "1-4",
        "--settings",
        "9600 8N1,2400 8N1",
        "--timeout",
        "0.2",
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if re.match(r"\W*\d+\s", line)]
    assert len(rows) == 2, result.stdout
    assert re.search(r"1\s+.*9600 8N1\s+.*orno-we514, orno-we515", rows[0])
    assert re.search(r"3\s+.*9600 8N1\s+.*sdm630", rows[1])
    assert "2400" not in result.stdout, "at the wrong baud rate nothing answers"


def test_scan_says_so_when_nothing_answers(meter_bus: StartBus) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}})
    result = cli(
        "modbus",
        "scan",
        "--port",
        bus.port,
        "--ids",
        "5-6",
        "--settings",
        "9600 8N1",
        "--timeout",
        "0.1",
    )
    assert result.returncode == 1
    assert "nothing answered on" in result.stderr and "try --full" in result.stderr


def test_scan_refuses_bad_id_ranges() -> None:
    result = cli("modbus", "scan", "--port", "/dev/null", "--ids", "0-300")
    assert result.returncode == 1
    assert result.stderr == (
        "homewatt-collector: error: --ids: '0-300': Modbus device ids are 1..247\n"
    )


def test_the_collector_delivers_meter_readings_and_survives_an_unplug(
    tmp_path: Path,
    meter_bus: StartBus,
    victoria: VictoriaMetrics,
    collector_process: Callable[..., ServerProcess],
) -> None:
    bus = meter_bus({1: {"holding": orno_with_gap_registers()}})
    config = write_config(
        tmp_path / "main.yaml",
        victoria.url,
        tmp_path / "state",
        source={
            "kind": "modbus",
            "port": bus.port,
            "serial": {"baudrate": 9600, "parity": "N"},
            "meters": [{"name": "main", "model": "orno-we515", "device_id": 1}],
        },
    )
    collector = collector_process(config)
    wait_until(
        lambda: len(victoria.samples("electricity_energy_total_kwh")) >= 3, 30, "meter samples"
    )
    bus.line.unplug()
    time.sleep(3)
    bus.line.replug()
    wait_until(lambda: "is back" in collector.log_tail(), 15, "the adapter to be picked up again")
    before = len(victoria.samples("electricity_energy_total_kwh"))
    wait_until(
        lambda: len(victoria.samples("electricity_energy_total_kwh")) >= before + 3,
        30,
        "samples again",
    )
    assert collector.stop() == 0
    values = {v for _, v, _ in victoria.samples("electricity_energy_total_kwh", device="main")}
    assert values == {98765.43}
    (labels,) = {
        tuple(sorted(lbl.items())) for _, _, lbl in victoria.samples("electricity_voltage_v")
    }
    assert dict(labels)["model"] == "orno-we515" and dict(labels)["source"] == "modbus"
    errors = sum(v for _, v, _ in victoria.samples("homewatt_health_read_errors"))
    assert errors >= 2, "the cycles without the adapter are counted"
    log = collector.log_tail(50)
    assert log.count("waiting for it to come back") == 1
    assert "Traceback" not in log


@pytest.mark.parametrize("command", ["read", "scan"])
def test_read_and_scan_at_the_top_level_still_work_and_say_where_they_moved(
    command: str, meter_bus: StartBus
) -> None:
    bus = meter_bus({1: {"holding": ORNO_WE515_HOLDING}})
    options = {
        "read": ["--model", "orno-we515", "--id", "1"],
        "scan": ["--ids", "1-2", "--timeout", "0.2"],
    }[command]
    args = ["--port", bus.port, *options, "--settings", "9600 8N1"]
    new = cli("modbus", command, *args)
    old = cli(command, *args)
    assert new.returncode == 0, new.stderr
    assert old.returncode == 0, old.stderr
    # the values and the timing line differ from one read to the next: compare the table rows
    assert [line.split()[:2] for line in old.stdout.splitlines()] == [
        line.split()[:2] for line in new.stdout.splitlines()
    ]
    assert "orno-we515" in old.stdout
    moved = (
        f"homewatt-collector: warning: `homewatt-collector {command}` moves to"
        f" `homewatt-collector modbus {command}`; it goes away in the next release\n"
    )
    assert old.stderr.startswith(moved), old.stderr  # then the same log lines as `modbus ...`
    assert "moves to" not in new.stderr


def test_the_aliases_are_hidden_from_help_and_the_modbus_group_lists_both() -> None:
    top = cli("--help")
    assert top.returncode == 0, top.stderr
    listed = {line.split()[1] for line in top.stdout.splitlines() if line.startswith("│ ")}
    assert {"modbus", "shelly", "emporia", "cost", "run", "outbox"} <= listed
    assert not {"read", "scan"} & listed
    group = cli("modbus", "--help")
    assert group.returncode == 0, group.stderr
    assert {"read", "scan"} <= {
        line.split()[1] for line in group.stdout.splitlines() if line.startswith("│ ")
    }
    alias = cli("read", "--help")  # still documented when asked for by name
    assert alias.returncode == 0 and "homewatt-collector modbus read" in alias.stdout
