"""Fixtures shared by every suite: real servers on free loopback ports, stopped by pid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.victoria import VictoriaMetrics


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A fresh VictoriaMetrics accepting the InfluxDB v2 write API."""
    vm = VictoriaMetrics(tmp_path / "victoria").start()
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture
def victoria_proxy(victoria: VictoriaMetrics) -> Iterator[FaultProxy]:
    """A fault proxy in front of `victoria`: the sink talks to the proxy's URL."""
    proxy = FaultProxy(victoria.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
