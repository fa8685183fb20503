"""Energy: kWh per day, week, month and year from the long-term bucket, by meter and channel."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat

from homewatt_grafana import queries as q
from homewatt_grafana.contract import Contract
from homewatt_grafana.dashboards import base, channel_variable, device_variable, site_variable
from homewatt_grafana.panels import KWH, RATIO, WATT, Step, lay_out, series_panel, stat_panel
from homewatt_grafana.sdk import InfluxQL

UID = "homewatt-energy"

FILTERS = (q.SITE, q.DEVICE, q.CHANNEL)
GROUP = ("device", "channel")
ALIAS = "$tag_device $tag_channel"
DAY_STEPS = (Step("green"), Step("orange", 15), Step("red", 25))
WEEK_STEPS = (Step("green"), Step("orange", 100), Step("red", 175))
MONTH_STEPS = (Step("green"), Step("orange", 400), Step("red", 600))
YEAR_STEPS = (Step("green"), Step("orange", 4500), Step("red", 7000))
SITE_ONLY = (q.SITE,)
COST_DAY_STEPS = (Step("green"), Step("orange", 15), Step("red", 30))
COST_MONTH_STEPS = (Step("green"), Step("orange", 400), Step("red", 800))


def build(contract: Contract) -> dashboard_builders.Dashboard:
    lt = contract.longterm_from

    def per_period(period: str) -> InfluxQL:
        query = q.energy_per_period(contract, lt, "energy_total_kwh", FILTERS, GROUP, period=period)
        return InfluxQL(contract, "A", query).alias(ALIAS)

    def total(
        title: str,
        description: str,
        steps: tuple[Step, ...],
        *,
        time_from: str,
        time_shift: str | None = None,
    ) -> stat.Panel:
        query = q.energy_in_range(contract, lt, "energy_total_kwh", FILTERS, GROUP)
        return stat_panel(
            contract,
            title,
            description,
            KWH,
            [InfluxQL(contract, "A", query).alias(ALIAS)],
            steps=steps,
            decimals=0,
            time_from=time_from,
            time_shift=time_shift,
        )

    daily = series_panel(
        contract,
        "Energy per day",
        "kWh of each calendar day (site time) in the dashboard's range: the meter's counter at "
        "the end of the day minus at the end of the day before. Days of a daylight-saving "
        "change have 23 or 25 hours.",
        KWH,
        [per_period("day")],
        steps=DAY_STEPS,
        bars=True,
        decimals=1,
    )
    weekly = series_panel(
        contract,
        "Energy per week",
        "kWh of each week, Monday 00:00 to Monday 00:00 site time, over the last twelve weeks.",
        KWH,
        [per_period("week")],
        steps=WEEK_STEPS,
        bars=True,
        decimals=0,
        time_from="now-11w/w",
    )
    peak = series_panel(
        contract,
        "Peak power per day",
        "The highest one-minute power maximum of each day (site time): what the main fuse and "
        "the grid connection must carry.",
        WATT,
        [
            InfluxQL(
                contract, "A", q.daily(contract, 'max("power_w_max")', lt, FILTERS, GROUP)
            ).alias(ALIAS)
        ],
        steps=(Step("green"), Step("orange", 5000), Step("red", 7000)),
        bars=True,
        decimals=0,
    )
    this_month = total(
        "This month so far",
        "kWh since the first of this month, 00:00 site time, from the meters' counters.",
        MONTH_STEPS,
        time_from="now/M",
    )
    last_month = total(
        "Last month",
        "kWh of the whole of last month, first to last day in site time.",
        MONTH_STEPS,
        time_from="now/M",
        time_shift="1M/M",
    )
    two_months_ago = total(
        "Two months ago",
        "kWh of the whole month before last, first to last day in site time.",
        MONTH_STEPS,
        time_from="now/M",
        time_shift="2M/M",
    )
    this_year = total(
        "This year so far",
        "kWh since 1 January, 00:00 site time, from the meters' counters.",
        YEAR_STEPS,
        time_from="now/y",
    )
    last_year = total(
        "Last year",
        "kWh of the whole of last year, 1 January to 31 December in site time.",
        YEAR_STEPS,
        time_from="now/y",
        time_shift="1y/y",
    )

    def bill(
        title: str, description: str, *, time_from: str, time_shift: str | None = None
    ) -> stat.Panel:
        return stat_panel(
            contract,
            title,
            description,
            RATIO,
            [
                InfluxQL(contract, "A", q.bill_in_range(contract, SITE_ONLY, ("site",))).alias(
                    "$tag_site"
                )
            ],
            steps=COST_MONTH_STEPS,
            decimals=2,
            time_from=time_from,
            time_shift=time_shift,
        )

    cost_daily = series_panel(
        contract,
        "Bill per day",
        "The bill of each calendar day (site time) in the tariff's currency, as the nightly "
        "homewatt-cost timer wrote it (energy_cost, period bill): the billed devices' import "
        "at each tariff period's price, less the export credit, plus the standing charge. "
        "Empty until the cost timer runs (README: Set a tariff, read the bill).",
        RATIO,
        [
            InfluxQL(contract, "A", q.bill_per_day(contract, SITE_ONLY, ("site",))).alias(
                "$tag_site"
            )
        ],
        steps=COST_DAY_STEPS,
        bars=True,
        decimals=2,
    )
    cost_month = bill(
        "Bill this month so far",
        "The sum of this month's daily bills up to yesterday (the tariff's currency).",
        time_from="now/M",
    )
    cost_last_month = bill(
        "Bill last month",
        "The sum of last month's daily bills, first to last day in site time.",
        time_from="now/M",
        time_shift="1M/M",
    )

    board = base(
        contract,
        UID,
        "homewatt: energy",
        "kWh per day, week, month and year from the long-term bucket (one reading a minute, "
        "kept for years), by meter and channel, in the site's time zone.",
        "now-30d/d",
    )
    board = (
        board.with_variable(site_variable(contract))
        .with_variable(device_variable(contract))
        .with_variable(channel_variable(contract))
    )
    return lay_out(
        board,
        [
            ("Days and weeks", [(daily, 24, 9), (weekly, 12, 8), (peak, 12, 8)]),
            (
                "Months and years",
                [
                    (this_month, 8, 5),
                    (last_month, 8, 5),
                    (two_months_ago, 8, 5),
                    (this_year, 12, 5),
                    (last_year, 12, 5),
                ],
            ),
            ("Cost", [(cost_daily, 12, 8), (cost_month, 6, 8), (cost_last_month, 6, 8)]),
        ],
    )
