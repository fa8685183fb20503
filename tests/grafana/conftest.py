"""Fixtures for the Grafana suites: the contract, the generated files, and one InfluxDB 1.6.7
filled by homewatt's own code (built once per session: a real collector run, 400 days of
simulated history, the downsampling), stopped by pid at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homewatt_grafana import contract as contract_module
from homewatt_grafana import render
from homewatt_grafana.contract import Contract
from tests.grafana.dataset import Dataset, build

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"


@pytest.fixture(scope="session")
def contract() -> Contract:
    return contract_module.load()


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboards, by uid (what Grafana loads)."""
    out = {}
    for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json")):
        data = json.loads(path.read_text())
        out[data["uid"]] = data
    return out


@pytest.fixture(scope="session")
def generated(contract: Contract) -> dict[str, str]:
    return render.files(contract)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory, contract: Contract) -> Iterator[Dataset]:
    data = build(tmp_path_factory.mktemp("grafana-data"), contract)
    try:
        yield data
    finally:
        data.influx.stop()
