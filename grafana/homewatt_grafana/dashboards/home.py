"""Home: what the house draws now, today and this month, and the state of each phase."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat, timeseries

from homewatt_grafana import queries as q
from homewatt_grafana.contract import Contract
from homewatt_grafana.dashboards import base, device_variable, site_variable
from homewatt_grafana.panels import (
    AMP,
    HERTZ,
    KWH,
    RATIO,
    VOLT,
    WATT,
    Step,
    lay_out,
    series_panel,
    stat_panel,
)
from homewatt_grafana.sdk import InfluxQL

UID = "homewatt-home"

RAW = q.ELECTRICITY
METER = (q.SITE, q.DEVICE, q.TOTAL)
PHASE = (q.SITE, q.DEVICE, q.PHASES)
POWER_STEPS = (Step("green"), Step("orange", 3000), Step("red", 6000))
MONTH_STEPS = (Step("green"), Step("orange", 400), Step("red", 600))
# EN 50160: 230 V +-10 %; orange from +-6 %.
VOLTAGE_STEPS = (
    Step("red"),
    Step("orange", 207),
    Step("green", 216),
    Step("orange", 244),
    Step("red", 253),
)


def build(contract: Contract) -> dashboard_builders.Dashboard:
    lt = contract.longterm_from

    def energy_stat(
        title: str,
        description: str,
        source: str,
        steps: tuple[Step, ...],
        *,
        time_from: str,
        time_shift: str | None = None,
    ) -> stat.Panel:
        query = q.energy_in_range(contract, source, "energy_total_kwh", METER, ("device",))
        return stat_panel(
            contract,
            title,
            description,
            KWH,
            [InfluxQL(contract, "A", query).alias("$tag_device")],
            steps=steps,
            decimals=1,
            time_from=time_from,
            time_shift=time_shift,
        )

    power_now = stat_panel(
        contract,
        "Power now",
        "What each meter draws at this moment: its latest power reading (W) of the last five "
        "minutes; blank when a meter has been silent that long.",
        WATT,
        [
            InfluxQL(contract, "A", q.latest("power_w", RAW, METER, ("device",))).alias(
                "$tag_device"
            )
        ],
        steps=POWER_STEPS,
        decimals=0,
        time_from="5m",
    )
    today = energy_stat(
        "Energy today",
        "Energy since midnight (site time), from the meter's own counter: its latest reading "
        "minus its last reading before midnight (raw data, so it is current to the second).",
        RAW,
        (Step("green"), Step("orange", 15), Step("red", 25)),
        time_from="now/d",
    )
    peak_today = stat_panel(
        contract,
        "Peak today",
        "The highest one-second power reading since midnight (site time).",
        WATT,
        [
            InfluxQL(
                contract,
                "A",
                f'SELECT max("power_w") FROM {RAW} WHERE {q.where(*METER, "$timeFilter")} '
                'GROUP BY "device"',
            ).alias("$tag_device")
        ],
        steps=POWER_STEPS,
        decimals=0,
        time_from="now/d",
    )
    month = energy_stat(
        "This month so far",
        "Energy since the first of the month (site time), from the long-term bucket's "
        "counter readings (each minute's last).",
        lt,
        MONTH_STEPS,
        time_from="now/M",
    )
    last_month_to_date = energy_stat(
        "Last month, same days",
        "Energy of last month from its first day to the same day and hour as now: the fair "
        "comparison with 'This month so far'.",
        lt,
        MONTH_STEPS,
        time_from="now/M",
        time_shift="1M",
    )
    last_month = energy_stat(
        "Last month",
        "Energy of the whole of last month (site time).",
        lt,
        MONTH_STEPS,
        time_from="now/M",
        time_shift="1M/M",
    )
    live = series_panel(
        contract,
        "Live power",
        "Power of each meter, one point a second over the last fifteen minutes (mean per "
        "interval when the panel is narrower than 900 points).",
        WATT,
        [
            InfluxQL(contract, "A", q.series("mean", "power_w", RAW, METER, ("device",))).alias(
                "$tag_device"
            )
        ],
        steps=POWER_STEPS,
        min_interval="1s",
        time_from="15m",
        soft_min=0,
    )

    def phase(
        title: str,
        description: str,
        field: str,
        unit: str,
        *,
        steps: tuple[Step, ...],
        decimals: int,
    ) -> timeseries.Panel:
        query = q.series("mean", field, RAW, PHASE, ("device", "channel"))
        return series_panel(
            contract,
            title,
            description,
            unit,
            [InfluxQL(contract, "A", query).alias("$tag_device $tag_channel")],
            steps=steps,
            decimals=decimals,
            min_interval="1s",
        )

    voltage = phase(
        "Voltage per phase",
        "Voltage of each phase of a three-phase meter (mean per interval). A phase near 0 V has "
        "lost its supply; EN 50160 allows 230 V +-10 %.",
        "voltage_v",
        VOLT,
        steps=VOLTAGE_STEPS,
        decimals=1,
    )
    current = phase(
        "Current per phase",
        "Current on each phase (mean per interval): an unbalanced house shows one phase far "
        "above the others.",
        "current_a",
        AMP,
        steps=(Step("green"), Step("orange", 25), Step("red", 32)),
        decimals=2,
    )
    power_factor = phase(
        "Power factor per phase",
        "Power factor of each phase (mean per interval, dimensionless, 1 is purely resistive; "
        "negative on Eastron meters when the phase exports).",
        "power_factor",
        RATIO,
        steps=(Step("orange"), Step("green", 0.9)),
        decimals=3,
    )
    phase_power = phase(
        "Power per phase",
        "Power on each phase (mean per interval); negative while a phase exports.",
        "power_w",
        WATT,
        steps=POWER_STEPS,
        decimals=0,
    )
    frequency = series_panel(
        contract,
        "Grid frequency",
        "Mains frequency measured by each meter (mean per interval); 50 Hz +-1 % is normal in "
        "Europe.",
        HERTZ,
        [
            InfluxQL(
                contract, "A", q.series("mean", "frequency_hz", RAW, METER, ("device",))
            ).alias("$tag_device")
        ],
        steps=(Step("red"), Step("green", 49.5), Step("red", 50.5)),
        decimals=3,
        min_interval="1s",
    )

    def flow(ref: str, field: str, label: str) -> InfluxQL:
        query = q.energy_per_period(contract, lt, field, METER, ("device",))
        return InfluxQL(contract, ref, query).alias(f"$tag_device {label}")

    import_export = series_panel(
        contract,
        "Import and export per day",
        "Energy bought from the grid (import) and sold to it (export) each day of the last two "
        "weeks (site time), for meters that count both directions; a meter that only counts "
        "import shows no export bars.",
        KWH,
        [flow("A", "energy_import_kwh", "import"), flow("B", "energy_export_kwh", "export")],
        steps=(Step("green"),),
        bars=True,
        decimals=1,
        time_from="now-13d/d",
    )

    board = base(
        contract,
        UID,
        "homewatt: home",
        "What the house draws now, today and this month, and each phase of three-phase meters.",
        "now-24h",
        refresh="10s",
    )
    board = board.with_variable(site_variable(contract)).with_variable(device_variable(contract))
    return lay_out(
        board,
        [
            (
                "Now and today",
                [(power_now, 6, 5), (today, 6, 5), (peak_today, 6, 5), (month, 6, 5)],
            ),
            ("This month against last month", [(last_month_to_date, 12, 4), (last_month, 12, 4)]),
            ("Live", [(live, 24, 8)]),
            (
                "Phases (three-phase meters)",
                [(voltage, 12, 8), (current, 12, 8), (phase_power, 12, 8), (power_factor, 12, 8)],
            ),
            ("Grid", [(frequency, 12, 8), (import_export, 12, 8)]),
        ],
    )
