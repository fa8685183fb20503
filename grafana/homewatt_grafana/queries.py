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
  never power x time; a counter that drops (a replaced meter) gives no row rather than a
  negative one.
"""

from __future__ import annotations

from homewatt_grafana.contract import Contract

SITE = '"site" =~ /^${site:regex}$/'
DEVICE = '"device" =~ /^${device:regex}$/'
CHANNEL = '"channel" =~ /^${channel:regex}$/'
HOUSE = '"device" =~ /^${house:regex}$/'  # the meter the user names the house's
SUBMETERS = '"source" =~ /^(shelly|emporia)$/'  # circuits and plugs (README: the data model)
TOTAL = "\"channel\" = 'total'"
PHASES = '"channel" =~ /^l[123]$/'

ELECTRICITY = '"electricity"'
HEALTH = '"homewatt_health"'
DEVICE_HEALTH = '"homewatt_device_health"'
BACKUP = '"homewatt_backup"'
ENERGY_COST = '"energy_cost"'
BILL = "\"period\" = 'bill'"


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
    """kWh per calendar day, week or hour, from the counter `field`: each row is the last reading
    of the period minus the last reading of the period before. InfluxDB reads one period before
    the range by itself for a difference over GROUP BY time(), so the first period in view has
    its predecessor (https://docs.influxdata.com/influxdb/v2/query-data/influxql/functions/
    transformations/#difference)."""
    interval = {
        "hour": "time(1h)",
        "day": contract.daily_group_by,
        "week": contract.weekly_group_by,
    }[period]
    return (
        f'SELECT non_negative_difference(last("{field}")) AS "kwh" FROM {source} '
        f"WHERE {where(*filters, '$timeFilter')} "
        f"GROUP BY {interval}, {tags(*group)} {tz(contract)}"
    )


def energy_in_range(
    contract: Contract, source: str, field: str, filters: tuple[str, ...], group: tuple[str, ...]
) -> str:
    """kWh in the panel's time range (a calendar period such as now/d or now/M): the sum of its
    hours, each computed from the counter as in `energy_per_period`, i.e. the last reading in
    the range minus the last reading in the hour before it. Hours, not days: InfluxDB reaches
    back one interval of absolute time for the first difference, and a day before a range can
    have 23 hours, which would pull in a whole extra day; an hour is always an hour. No time
    filter on the outer query: InfluxQL would apply it to the subquery and drop that reach."""
    hours = energy_per_period(contract, source, field, filters, group, period="hour")
    return f'SELECT sum("kwh") AS "kwh" FROM ({hours}) GROUP BY {tags(*group)}'


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


def cost_from(contract: Contract) -> str:
    """Where `homewatt-collector cost --write` writes energy_cost: the long-term retention
    policy (collector/cost.example.yaml: write_retention_policy), kept for years."""
    return f'"{contract.longterm.name}".{ENERGY_COST}'


def bill_per_day(contract: Contract, filters: tuple[str, ...], group: tuple[str, ...]) -> str:
    """The daily bill (currency) per calendar day: the `bill` point the cost command writes at
    each local midnight, summed by site time day (one point a day and site)."""
    return (
        f'SELECT sum("cost") AS "cost" FROM {cost_from(contract)} '
        f"WHERE {where(*filters, BILL, '$timeFilter')} "
        f"GROUP BY {contract.daily_group_by}, {tags(*group)} {tz(contract)}"
    )


def bill_in_range(contract: Contract, filters: tuple[str, ...], group: tuple[str, ...]) -> str:
    """The bill of the panel's range (whole days: each day's point is at its local midnight)."""
    return (
        f'SELECT sum("cost") AS "cost" FROM {cost_from(contract)} '
        f"WHERE {where(*filters, BILL, '$timeFilter')} GROUP BY {tags(*group)}"
    )
