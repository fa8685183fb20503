"""Circuits and plugs: what each Emporia circuit and each Shelly or Emporia plug draws and used.

Everything here is `source` shelly or emporia, per device and channel; nothing is added up
across devices, so a plug behind a monitored circuit or behind the main meter is shown beside
them, never counted twice.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dashboard_models

from homewatt_grafana import queries as q
from homewatt_grafana.contract import Contract
from homewatt_grafana.dashboards import base, site_variable, tag_variable
from homewatt_grafana.panels import (
    KWH,
    WATT,
    Step,
    bar_gauge_panel,
    lay_out,
    series_panel,
)
from homewatt_grafana.sdk import InfluxQL, datasource_ref

UID = "homewatt-circuits"

RAW = q.ELECTRICITY
FILTERS = (q.SITE, q.SUBMETERS, q.DEVICE, q.CHANNEL)
GROUP = ("device", "channel")
ALIAS = "$tag_device $tag_channel"
POWER_STEPS = (Step("green"), Step("orange", 2000), Step("red", 3500))
DAY_STEPS = (Step("green"), Step("orange", 5), Step("red", 10))


def build(contract: Contract) -> dashboard_builders.Dashboard:
    lt = contract.longterm_from

    def target(query: str) -> list[InfluxQL]:
        return [InfluxQL(contract, "A", query).alias(ALIAS)]

    power_now = bar_gauge_panel(
        contract,
        "Power now per circuit and plug",
        "What each Emporia circuit and each Shelly or Emporia plug draws: its latest power "
        "reading (W) of the last ten minutes (Shelly every few seconds; Emporia once a minute, "
        "the minute before last: the cloud's lag). Negative while a channel exports.",
        WATT,
        target(q.latest("power_w", RAW, FILTERS, GROUP)),
        steps=POWER_STEPS,
        decimals=0,
        time_from="10m",
    )
    house_today = q.energy_in_range(
        contract, RAW, "energy_total_kwh", (q.SITE, q.HOUSE, q.TOTAL), ("device",)
    )
    energy_today = bar_gauge_panel(
        contract,
        "Energy today per circuit and plug",
        "kWh since midnight (site time) of each circuit and plug, from its energy_total_kwh "
        "counter (the device's own on Shelly, the running sum of Emporia's per-minute kWh): its "
        "latest reading minus its last reading before midnight; and the same of the meter "
        "chosen as House meter, whose bar is the longest: all bars share one scale, so each "
        "bar's length is its share of the house. Shelly EM and 3EM channels count import and "
        "export instead: see the home dashboard.",
        KWH,
        [
            *target(q.energy_in_range(contract, RAW, "energy_total_kwh", FILTERS, GROUP)),
            InfluxQL(contract, "B", house_today).alias("house: $tag_device"),
        ],
        steps=DAY_STEPS,
        decimals=2,
        time_from="now/d",
    )
    power = series_panel(
        contract,
        "Power per circuit and plug",
        "Power of each circuit and plug over the dashboard's range (mean per interval; "
        "Emporia's per-minute points, and its per-second ones where `detailed` fetched them, "
        "which arrive once an hour).",
        WATT,
        target(q.series("mean", "power_w", RAW, FILTERS, GROUP)),
        steps=POWER_STEPS,
        decimals=0,
        min_interval="1s",
        soft_min=0,
    )
    per_day = series_panel(
        contract,
        "Energy per day per circuit and plug",
        "kWh of each calendar day (site time) of the last two weeks per circuit and plug, from "
        "the long-term bucket's counter readings: the last of the day minus the last of the "
        "day before.",
        KWH,
        target(q.energy_per_period(contract, lt, "energy_total_kwh", FILTERS, GROUP)),
        steps=DAY_STEPS,
        bars=True,
        decimals=2,
        time_from="now-13d/d",
    )

    board = base(
        contract,
        UID,
        "homewatt: circuits and plugs",
        "Emporia circuits and Shelly and Emporia plugs: power now and over time, energy today "
        "and per day, per device and channel (never added up, so nothing is counted twice).",
        "now-24h",
    )
    devices = tag_variable(
        contract,
        "device",
        "Device",
        "The Shelly and Emporia devices of the chosen sites (the config's names, Emporia's "
        "app names).",
        f'SHOW TAG VALUES FROM "electricity" WITH KEY = "device" WHERE {q.SITE} AND {q.SUBMETERS}',
    )
    channels = tag_variable(
        contract,
        "channel",
        "Channel",
        "Circuits and plug channels of the chosen devices (Shelly switch0, pm0...; Emporia: "
        "the circuit's name, total for a Vue's mains or a smart plug, balance).",
        'SHOW TAG VALUES FROM "electricity" WITH KEY = "channel" '
        f"WHERE {q.SITE} AND {q.SUBMETERS} AND {q.DEVICE}",
    )
    house = (
        dashboard_builders.QueryVariable("house")
        .label("House meter")
        .description(
            "The meter that measures the whole house (a Modbus meter, an Emporia Vue's mains): "
            "the scale of Energy today. The data do not say which one it is: choose it."
        )
        .datasource(datasource_ref(contract))
        .query(
            f'SHOW TAG VALUES FROM "electricity" WITH KEY = "device" WHERE {q.SITE} AND {q.TOTAL}'
        )
        .refresh(dashboard_models.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(False)
        .include_all(False)
    )
    board = board.with_variable(site_variable(contract)).with_variable(devices)
    board = board.with_variable(channels).with_variable(house)
    return lay_out(
        board,
        [
            ("Now and today", [(power_now, 12, 10), (energy_today, 12, 10)]),
            ("Over time", [(power, 24, 9), (per_day, 24, 9)]),
        ],
    )
