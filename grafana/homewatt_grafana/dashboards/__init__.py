"""The dashboards: one module each, every one built by `build(contract)`.

`base()` and `variables()` give all of them the same frame: unique uid, the site's time zone
(Grafana's default, see contracts/influxdb-grafana.json), weeks from Monday, and the `site`,
`device` (and `channel`) template variables, so one dashboard serves a single Pi and a fleet.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dashboard_models

from homewatt_grafana.contract import Contract
from homewatt_grafana.sdk import datasource_ref

TAG = "homewatt"
ALL = ".*"


def base(
    contract: Contract, uid: str, title: str, description: str, since: str, *, refresh: str = "1m"
) -> dashboard_builders.Dashboard:
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone(contract.dashboard_timezone)
        .week_start("monday")
        .time(since, "now")
        .refresh(refresh)
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard_builders.DashboardLink("homewatt")
            .type(dashboard_models.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(False)
            .include_vars(True)
            .keep_time(False)
        )
    )


def tag_variable(
    contract: Contract, name: str, label: str, description: str, query: str, *, default: str = ALL
) -> dashboard_builders.QueryVariable:
    """A multi-value variable from SHOW TAG VALUES; 'All' is `.*` (a regex, not a list)."""
    current = (
        dashboard_models.VariableOption(text="All", value="$__all")
        if default == ALL
        else dashboard_models.VariableOption(text=default, value=default)
    )
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(datasource_ref(contract))
        .query(query)
        .refresh(dashboard_models.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(current)
    )


def site_variable(contract: Contract) -> dashboard_builders.QueryVariable:
    return tag_variable(
        contract,
        "site",
        "Site",
        "The sites that wrote data (the collector's `site`); a single Pi has one.",
        'SHOW TAG VALUES FROM "electricity" WITH KEY = "site"',
    )


def device_variable(
    contract: Contract, measurement: str = "electricity"
) -> dashboard_builders.QueryVariable:
    """The meters of the chosen sites, from the `device` tag of `measurement` (the health
    dashboard's: homewatt_device_health, which also lists a meter that never answered)."""
    return tag_variable(
        contract,
        "device",
        "Meter",
        "The meters of the chosen sites (the collector's meter names).",
        f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "device" '
        'WHERE "site" =~ /^${site:regex}$/',
    )


def channel_variable(contract: Contract) -> dashboard_builders.QueryVariable:
    return tag_variable(
        contract,
        "channel",
        "Channel",
        "total: the whole meter; l1, l2, l3: its phases (three-phase meters).",
        'SHOW TAG VALUES FROM "electricity" WITH KEY = "channel" '
        'WHERE "site" =~ /^${site:regex}$/ AND "device" =~ /^${device:regex}$/',
        default="total",
    )
