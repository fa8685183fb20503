"""`homewatt-collector shelly discover` as a real command, probing only 127.0.0.x where the
Shelly test devices listen (mDNS is not tried: no multicast responder runs here)."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from homewatt_collector.sources.shelly.config import ShellySourceConfig
from homewatt_collector.sources.shelly.discover import hosts_of, paced
from tests.support.shelly_devices import FakeShelly

COLLECTOR = str(Path(sys.executable).with_name("homewatt-collector"))
SUBNET_BASE = 64  # the devices listen on 127.0.0.65-68, inside 127.0.0.64/26


def shared_port() -> int:
    """A port free on 127.0.0.65 (and, all but surely, on its neighbours)."""
    with socket.socket() as probe:
        probe.bind((f"127.0.0.{SUBNET_BASE + 1}", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def found_devices() -> Iterator[tuple[int, list[FakeShelly]]]:
    port = shared_port()
    devices = [
        FakeShelly("gen1-3em", f"127.0.0.{SUBNET_BASE + 1}", port).start(),
        FakeShelly("gen2-pro-3em", f"127.0.0.{SUBNET_BASE + 2}", port, password="pw").start(),
        FakeShelly("gen3-2pm", f"127.0.0.{SUBNET_BASE + 3}", port).start(),
        FakeShelly("gen1-plug-s", f"127.0.0.{SUBNET_BASE + 4}", port, password="pw").start(),
    ]
    yield port, devices
    for device in devices:
        device.stop()


def discover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COLLECTOR, "shelly", "discover", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_discover_prints_every_device_as_config_ready_to_paste(
    found_devices: tuple[int, list[FakeShelly]],
) -> None:
    port, _ = found_devices
    started = time.monotonic()
    result = discover("--subnet", f"127.0.0.{SUBNET_BASE}/26", "--port", str(port))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # at most 50 probes a second: the 62 addresses take at least 61 / 50 s
    assert took >= 61 / 50
    out = result.stdout
    assert "# Shelly 3EM (SHEM-3, Gen1); channels: l1, l2, l3, total" in out
    assert "# Pro3EM (SPEM-003CEBEU, Gen2); channels: unknown" in out
    assert "# 2PMG3 (S3SW-002P16EU, Gen3); channels: switch0, switch1" in out
    assert "# Shelly Plug S (SHPLG-S, Gen1); channels: switch0" in out
    source = ShellySourceConfig.model_validate(yaml.safe_load(out)["source"])
    assert [d.host for d in source.devices] == [
        f"127.0.0.{SUBNET_BASE + i}:{port}" for i in range(1, 5)
    ]
    assert [d.password_credential is not None for d in source.devices] == [
        False,
        True,
        False,
        True,
    ]


def test_discover_refuses_more_than_a_slash_22_without_force() -> None:
    result = discover("--subnet", "127.0.0.0/21")
    assert result.returncode == 1
    assert "more than a /22 (1024): name a smaller subnet, or add --force" in result.stderr
    assert len(hosts_of("127.0.0.0/21", force=True)) == 2046


def test_discover_names_a_subnet_it_cannot_read() -> None:
    result = discover("--subnet", "192.168.1.300/24")
    assert result.returncode == 1
    assert "--subnet '192.168.1.300/24' is not a subnet in CIDR form" in result.stderr


def test_discover_says_when_nothing_answered() -> None:
    result = discover("--subnet", "127.0.0.200/30", "--port", str(shared_port()))
    assert result.returncode == 1
    assert "no Shelly device answered in 127.0.0.200/30" in result.stderr


def test_probes_are_paced_at_the_rate() -> None:
    now = [0.0]
    starts = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    for _ in paced([str(i) for i in range(101)], 50, clock=lambda: now[0], sleep=sleep):
        starts.append(now[0])
    assert starts[-1] == pytest.approx(2.0)
    assert all(b - a == pytest.approx(0.02) for a, b in itertools.pairwise(starts))
