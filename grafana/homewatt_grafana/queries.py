"""The InfluxQL the dashboards run, built in one place so every panel filters and groups alike.

Conventions (see grafana/README.md):
- raw data is read without naming a retention policy (the DBRP mapping marked default answers);
  long-term data from `"longterm"."electricity"` (contracts/influxdb-grafana.json);
- template variables are always written `${name:regex}` inside `/^...$/`, so Grafana escapes each
  value and joins several as `(a|b)`; "All" is the custom value `.*`;
- calendar periods (day, week) are grouped with `tz('${__timezone:raw}')`, the dashboard's time
  zone, which the grafana role sets to the site's;
- energy always comes from the meters' cumulative counters: the energy of a day is the last
  reading of the day minus the last reading of the day before (`non_negative_difference(last())`),
  never power x time.
"""

from __future__ import annotations

from homewatt_grafana.contract import Contract

SITE = '"site" =~ /^${site:regex}$/'
DEVICE = '"device" =~ /^${device:regex}$/'
CHANNEL = '"channel" =~ /^${channel:regex}$/'
TOTAL = "\"channel\" = 'total'"
PHASES = '"channel" =~ /^l[123]$/'
FROM_MS = "${__from}ms"
TO_MS = "${__to}ms"

ELECTRICITY = '"electricity"'
HEALTH = '"homewatt_health"'
BACKUP = '"homewatt_backup"'


def where(*conditions: str) -> str:
    return " AND ".join(conditions)


def tz(contract: Contract) -> str:
    return contract.tz_clause


def tags(*keys: str) -> str:
    return ", ".join(f'"{key}"' for key in keys)


def series(
    aggregate: str,
    field: str,
    source: str,
    filters: tuple[str, ...],
    group: tuple[str, ...],
    *,
    fill: str = "null",
) -> str:
    """A time series at Grafana's interval: `aggregate(field)` per group, `fill` for gaps."""
    return (
        f'SELECT {aggregate}("{field}") FROM {source} WHERE {where(*filters, "$timeFilter")} '
        f"GROUP BY time($__interval), {tags(*group)} fill({fill})"
    )


def latest(field: str, source: str, filters: tuple[str, ...], group: tuple[str, ...]) -> str:
    """The last value of `field` in the panel's time range, per group."""
    return (
        f'SELECT last("{field}") FROM {source} WHERE {where(*filters, "$timeFilter")} '
        f"GROUP BY {tags(*group)}"
    )


def energy_per_period(
    contract: Contract,
    source: str,
    field: str,
    filters: tuple[str, ...],
    group: tuple[str, ...],
    *,
    period: str = "day",
) -> str:
    """kWh per calendar day or week, from the counter `field`: each row is the last reading of
    the period minus the last reading of the period before. The range starts one period early
    so that the first period in view has its predecessor (that extra row lies before the range)."""
    interval, back = {
        "day": (contract.daily_group_by, "1d"),
        "week": (contract.weekly_group_by, "7d"),
    }[period]
    return (
        f'SELECT non_negative_difference(last("{field}")) AS "kwh" FROM {source} '
        f"WHERE {where(*filters, f'time >= {FROM_MS} - {back}', f'time <= {TO_MS}')} "
        f"GROUP BY {interval}, {tags(*group)} {tz(contract)}"
    )


def energy_in_range(
    contract: Contract, source: str, field: str, filters: tuple[str, ...], group: tuple[str, ...]
) -> str:
    """kWh in the panel's time range (a calendar period such as now/d or now/M): the sum of the
    days in the range, each computed from the counter as in `energy_per_period`."""
    days = energy_per_period(contract, source, field, filters, group, period="day")
    return (
        f'SELECT sum("kwh") AS "kwh" FROM ({days}) '
        f"WHERE time >= {FROM_MS} AND time <= {TO_MS} GROUP BY {tags(*group)}"
    )


def daily(
    contract: Contract,
    selection: str,
    source: str,
    filters: tuple[str, ...],
    group: tuple[str, ...],
) -> str:
    """`selection` (e.g. 'max("power_w_max")') per calendar day in the site's time zone."""
    return (
        f"SELECT {selection} FROM {source} WHERE {where(*filters, '$timeFilter')} "
        f"GROUP BY {contract.daily_group_by}, {tags(*group)} {tz(contract)}"
    )
