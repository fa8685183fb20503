"""Errors that name what they are about, in full, and come in time (issue 11 item 4): a person
running `list`, `verify`, `restore` or `check-config` hears of an unreachable Azure or InfluxDB
within 15 s (5 s to connect, at most one retry; the timer's `run` alone retries for minutes),
and `run` with a wrong InfluxDB URL says so at once instead of first waiting for Azure; bars
and spinners are drawn on a terminal only, never into a pipe or the journal. Real InfluxDB
1.6.7 and Azurite; as the unreachable server a closed loopback port (refused at once) or a
listener whose SYNs are dropped (a connect that really times out, as to a host that is down)."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.backup.conftest import DB, Site, make_influxdb2_site, make_site, sample_lines
from tests.support.azurite import Azurite
from tests.support.influxdb1 import InfluxDB1
from tests.support.processes import free_port, unreachable_address

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


CLI = str(Path(sys.executable).with_name("homewatt-backup"))


def cli_argv(site: Site, *args: str) -> list[str]:
    """The installed `homewatt-backup` with the site's files."""
    return [
        CLI,
        *("--config", str(site.config_path), "--credentials-dir", str(site.credentials)),
        *("--state-dir", str(site.state_dir), *args),
    ]


@contextlib.contextmanager
def silent_address() -> Iterator[str]:
    """`127.0.0.1:port` that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes handshakes; nothing is ever read or sent
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("engine", "server", "reason"),
    [
        ("influxdb1", unreachable_address, "is unreachable (connect timed out)"),
        ("influxdb2", unreachable_address, "is unreachable (connect timed out)"),
        ("influxdb1", silent_address, "accepted the connection but did not answer in time"),
    ],
    ids=["influxdb1-connect-times-out", "influxdb2-connect-times-out", "influxdb1-silent"],
)
def test_restore_reports_an_unreachable_influxdb_within_15_s_naming_it_in_full(
    tmp_path: Path,
    influxdb1: InfluxDB1,
    azurite: Azurite,
    *,
    engine: str,
    server: Callable[[], contextlib.AbstractContextManager[str]],
    reason: str,
) -> None:
    with server() as address:
        dead = f"http://{address}"
        if engine == "influxdb1":
            site = make_site(tmp_path / "site", influxdb1, azurite)
            site.config["influxdb"]["url"] = dead
            site.save()
        else:
            site = make_influxdb2_site(
                tmp_path / "site",
                dead,
                org="home",
                bucket="homewatt",
                token="t0ken",
                azurite=azurite,
            )
        started = time.monotonic()
        done = subprocess.run(
            cli_argv(site, "restore", NAME, "--target", "restored"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"homewatt-backup: error: InfluxDB ping: InfluxDB at {dead} {reason}")
    # two attempts of 5 s each: the timeout really happened, and no third attempt
    assert 10 <= elapsed < 15, f"{elapsed:.1f} s"


@pytest.mark.parametrize(
    "command", [("list",), ("verify", NAME), ("check-config",)], ids=lambda c: c[0]
)
def test_interactive_commands_that_need_no_influxdb_answer_at_once_when_it_is_down(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite, command: tuple[str, ...]
) -> None:
    with unreachable_address() as address:
        site = make_site(tmp_path / "site", influxdb1, azurite)
        site.config["influxdb"]["url"] = f"http://{address}"
        site.save()
        started = time.monotonic()
        done = subprocess.run(
            cli_argv(site, *command), capture_output=True, text=True, timeout=120, check=False
        )
        elapsed = time.monotonic() - started
    assert "InfluxDB" not in done.stderr, done.stderr
    if command[0] == "verify":  # it asks Azure only
        assert done.returncode == 1 and f"blob {NAME} does not exist" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
    assert elapsed < 5, f"{elapsed:.1f} s"


# what rich draws while a person waits: escape sequences (cursor, colour), bar and spinner glyphs
DRAWING = re.compile("\x1b|[\u2800-\u28ff\u2501\u2578\u257a\u2580-\u259f]")


def backed_up_site(tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite) -> tuple[Site, str]:
    """A site with one daily backup in Azure only (local archives gone), so a restore downloads."""
    influxdb1.write(DB, sample_lines(int(time.time()) - 3600, 300, step=10))
    site = make_site(tmp_path / "site", influxdb1, azurite)
    done = subprocess.run(
        cli_argv(site, "run", "--kind", "daily"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not DRAWING.search(done.stdout + done.stderr), repr(done.stdout + done.stderr)
    [name] = re.findall(r"daily backup (home/daily/\S+\.tar)", done.stdout)
    shutil.rmtree(site.state_dir / "archives")
    return site, name


def test_off_a_terminal_run_verify_and_restore_print_no_progress_or_spinner(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site, name = backed_up_site(tmp_path, influxdb1, azurite)
    for args in (("verify", name), ("restore", name, "--target", "restored"), ("list",)):
        done = subprocess.run(
            cli_argv(site, *args), capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
        output = done.stdout + done.stderr
        assert not DRAWING.search(output), f"{args[0]}: {output!r}"
    assert influxdb1.points("restored", "/electricity/")


def test_on_a_terminal_restore_draws_its_progress(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    site, name = backed_up_site(tmp_path, influxdb1, azurite)
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        cli_argv(site, "restore", name, "--target", "restored"),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
        close_fds=True,
    )
    os.close(secondary)
    drawn = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    assert process.wait(timeout=60) == 0, drawn.decode(errors="replace")
    text = drawn.decode(errors="replace")
    assert f"download {name}" in text and f"restored {name} into restored" in text, text
    assert "\x1b[?25l" in text, repr(text)  # rich's live display hides the cursor while drawing
    assert "\u2501" in text, repr(text)  # the bar
