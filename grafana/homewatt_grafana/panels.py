"""Panel builders with the house rules applied: every panel has a title, a description, a unit,
thresholds and the contract's datasource; queries are InfluxQL (see `sdk.InfluxQL`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models

from homewatt_grafana.contract import Contract
from homewatt_grafana.sdk import InfluxQL, datasource_ref

# Grafana unit ids (https://grafana.com/docs/grafana/latest/panels-visualizations/configure-standard-options/#unit)
WATT = "watt"
KWH = "kwatth"
VOLT = "volt"
AMP = "amp"
HERTZ = "hertz"
MS = "ms"
SECONDS = "s"
BYTES = "decbytes"
COUNT = "short"
RATIO = "none"
TIME_AGO = "dateTimeFromNow"

PanelBuilder = cogbuilder.Builder[dashboard_models.Panel]


@dataclass(frozen=True)
class Step:
    """A threshold: from `value` up (None: the base step), shown in `color`."""

    color: str
    value: float | None = None


def thresholds(*steps: Step) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_models.Threshold(value=s.value, color=s.color) for s in steps])
    )


OK_ONLY = (Step("green"),)


def stat_panel(
    contract: Contract,
    title: str,
    description: str,
    unit: str,
    queries: Sequence[InfluxQL],
    *,
    steps: Sequence[Step] = OK_ONLY,
    decimals: int | None = None,
    time_from: str | None = None,
    time_shift: str | None = None,
    calc: str = "lastNotNull",
    fields: str = "",
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref(contract))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builders.ReduceDataOptions().calcs([calc]).fields(fields))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if time_from:
        panel = panel.time_from(time_from)
    if time_shift:
        panel = panel.time_shift(time_shift)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def bar_gauge_panel(
    contract: Contract,
    title: str,
    description: str,
    unit: str,
    queries: Sequence[InfluxQL],
    *,
    steps: Sequence[Step] = OK_ONLY,
    decimals: int | None = None,
    time_from: str | None = None,
) -> bargauge.Panel:
    """One horizontal bar per series (its last value): many devices and channels side by side."""
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref(contract))
        .unit(unit)
        .min(0)
        .thresholds(thresholds(*steps))
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .value_mode(common.BarGaugeValueMode.COLOR)
        .show_unfilled(True)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields(""))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if time_from:
        panel = panel.time_from(time_from)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def series_panel(
    contract: Contract,
    title: str,
    description: str,
    unit: str,
    queries: Sequence[InfluxQL],
    *,
    steps: Sequence[Step] = OK_ONLY,
    bars: bool = False,
    decimals: int | None = None,
    min_interval: str | None = None,
    time_from: str | None = None,
    soft_min: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref(contract))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .line_width(1)
        .fill_opacity(80 if bars else 10)
        .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    if min_interval:
        panel = panel.interval(min_interval)
    if time_from:
        panel = panel.time_from(time_from)
    if soft_min is not None:
        panel = panel.axis_soft_min(soft_min)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def lay_out(
    board: dashboard_builders.Dashboard,
    rows: Sequence[tuple[str, Sequence[tuple[PanelBuilder, int, int]]]],
) -> dashboard_builders.Dashboard:
    """Rows of (panel, width, height), placed by the SDK on Grafana's 24-column grid top to
    bottom; every panel gets a stable id (its position in the dashboard)."""
    panel_id = 1
    for title, panels in rows:
        board = board.with_row(dashboard_builders.Row(title).id(panel_id))
        panel_id += 1
        for panel, width, height in panels:
            board = board.with_panel(_Sized(panel, panel_id, width, height))
            panel_id += 1
    return board


class _Sized(cogbuilder.Builder[dashboard_models.Panel]):
    """A panel builder's result with its id and size set."""

    def __init__(self, panel: PanelBuilder, panel_id: int, width: int, height: int) -> None:
        self._panel, self._id, self._w, self._h = panel, panel_id, width, height

    def build(self) -> dashboard_models.Panel:
        built = self._panel.build()
        built.id_val = self._id
        built.grid_pos = dashboard_models.GridPos(h=self._h, w=self._w)
        return built
