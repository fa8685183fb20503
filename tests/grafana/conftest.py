"""Fixtures for the Grafana suites: the contract, the generated files, and one InfluxDB 1.6.7
filled by homewatt's own code (built once per clock instant of CLOCKS: a real collector run,
400 days of simulated history, the downsampling), stopped by pid at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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


BERLIN = ZoneInfo("Europe/Berlin")  # the site's time zone in the dashboard tests

# The instants the dataset ends at (the evaluation time of every dashboard query): the real now,
# whatever it is when the tests run, and two where calendars disagree, so that a check which
# holds only on most days fails on every run, not on the night CI happens to cross one:
CLOCKS: dict[str, datetime | None] = {
    "now": None,
    # a minute into a year, a month and a day in Berlin while UTC is still in the old year:
    # "today" holds a minute or two (the collector runs) and no Emporia minute yet (the API's
    # lag), "last month" is December, "last year" 2026.
    "new-year-00h01-berlin": datetime(2027, 1, 1, 0, 1, 10, tzinfo=BERLIN),
    # the morning of the day Berlin's clocks go from 02:00 to 03:00 (a 23-hour day), in a month
    # after February (a 28-day "last month"), on a Sunday (a weekly bucket's last day).
    "spring-forward-05h00-berlin": datetime(2027, 3, 28, 5, 0, tzinfo=BERLIN),
}


@pytest.fixture(scope="session", params=list(CLOCKS))
def dataset(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, contract: Contract
) -> Iterator[Dataset]:
    """The dataset (dataset.py) ending at each of CLOCKS in turn: every test that uses it runs
    once per instant."""
    data = build(tmp_path_factory.mktemp("grafana-data"), contract, CLOCKS[request.param])
    try:
        yield data
    finally:
        data.influx.stop()
