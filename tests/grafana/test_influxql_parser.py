"""The InfluxQL parser accepts what InfluxDB 2's /query documents and refuses the rest, with a
line that names the clause and the page."""

from __future__ import annotations

import pytest

from homewatt_grafana.influxql import QueryError, all_statements, parse

DOCUMENTED = [
    # select.md, where.md, group-by.md, time-and-timezone.md (examples shaped like theirs)
    'SELECT "water_level" FROM "h2o_feet" WHERE "location" = \'santa_monica\' '
    "AND time >= '2019-08-18T00:00:00Z' AND time <= '2019-08-18T00:12:00Z'",
    'SELECT MEAN("water_level") FROM "h2o_feet" WHERE time >= 1566190800s '
    'AND time <= 1566191520s GROUP BY time(12m), "location" fill(none)',
    'SELECT "water_level" FROM "h2o_feet" WHERE time > 24043524m - 6m',
    'SELECT "water_level" FROM "h2o_feet" WHERE time > now() - 1h',
    'SELECT COUNT("water_level") FROM "h2o_feet" WHERE time >= 0s AND time < 1h '
    "GROUP BY time(1w, -3d) tz('America/Chicago')",
    'SELECT MAX("water_level"),"location" FROM "h2o_feet" GROUP BY /l/',
    'SELECT "level description" FROM "noaa"."autogen"."h2o_feet"'.replace('"noaa".', ""),
    'SELECT SUM("max") FROM (SELECT MAX("water_level") FROM "h2o_feet" GROUP BY "location")',
    'SELECT last("a") - first("a") AS "growth" FROM "m" WHERE time > now() - 15m GROUP BY "u"',
    'SELECT moving_average(count("x"), 3) FROM "m" WHERE time > now() - 1h '
    "GROUP BY time(1m) fill(0)",
    'SELECT non_negative_difference(last("e")) AS "kwh" FROM "rp"."m" '
    'WHERE time >= 1700000000000ms - 1d AND time <= 1700086400000ms GROUP BY time(1d), "d" '
    "tz('Europe/Berlin')",
    'SHOW TAG VALUES FROM "electricity" WITH KEY = "site"',
    'SHOW TAG VALUES WITH KEY = "device" WHERE "site" =~ /^(home|cabin)$/',
    'SHOW TAG VALUES WITH KEY IN ("location", "randtag") WHERE "randtag" =~ /./ LIMIT 3',
    "SHOW MEASUREMENTS",
    'SHOW FIELD KEYS FROM "h2o_feet"',
    'SELECT "a" FROM "m" ORDER BY time DESC LIMIT 3 OFFSET 1 SLIMIT 1 SOFFSET 1',
    'SELECT "a"::field FROM "m" WHERE "b"::tag = \'x\'',
]


@pytest.mark.parametrize("query", DOCUMENTED)
def test_documented_influxql_is_accepted(query: str) -> None:
    parse(query)


REFUSED = [
    ('SELECT mean("a") INTO "rp"."m2" FROM "m" GROUP BY time(1m), *', "SELECT INTO"),
    ('CREATE DATABASE "x"', "CREATE"),
    ('DROP MEASUREMENT "m"', "DROP"),
    ('DELETE FROM "m"', "DELETE"),
    ("SHOW RETENTION POLICIES", "not documented"),
    ("SHOW CONTINUOUS QUERIES", "not documented"),
    ('SELECT "a" FROM "m"; SELECT "b" FROM "m"', "one statement"),
    ('SELECT mode_of("a") FROM "m"', "not an InfluxQL function"),
    ('SELECT "a" FROM "m" WHERE time > now()-1h', "space between"),
    ('SELECT "a" FROM "m" WHERE time > 1s OR time < 0s', "OR between time"),
    ('SELECT "a" FROM "db"."rp"."m"', "names a database"),
    ('SHOW TAG VALUES ON "db" WITH KEY = "x"', "ON <database>"),
    ('SELECT "a" FROM "m" GROUP BY time(1mo)', "expected a duration"),
    ('SELECT "a" FROM "m" GROUP BY time(1m) fill(zero)', "fill()"),
    ('SELECT "a" FROM "m" tz(Europe/Berlin)', "tz()"),
    ('SELECT "a" FROM "m" ORDER BY "a"', "orders by time only"),
    ('SHOW TAG VALUES FROM "m"', "needs WITH KEY"),
    ('SELECT "a" FROM "m" WHERE "b" = \'x', "unexpected character"),
]


@pytest.mark.parametrize(("query", "reason"), REFUSED)
def test_influxql_outside_the_v2_documentation_is_refused_with_the_reason(
    query: str, reason: str
) -> None:
    with pytest.raises(QueryError, match=reason):
        parse(query)


def test_the_parse_names_what_a_statement_reads() -> None:
    stmt = parse(
        'SELECT sum("kwh") AS "kwh" FROM (SELECT non_negative_difference(last("energy_total_kwh"))'
        ' AS "kwh" FROM "longterm"."electricity" WHERE "site" =~ /^home$/ AND "channel" = '
        "'total' AND time >= 0ms - 1d AND time <= 1ms GROUP BY time(1d), \"device\" "
        "tz('Europe/Berlin')) WHERE time >= 0ms AND time <= 1ms GROUP BY \"device\""
    )
    inner = stmt.subqueries[0]
    assert stmt.columns == ["kwh"] and stmt.fields == {"kwh"} and stmt.tags == {"device"}
    assert inner.sources[0].retention_policy == "longterm"
    assert inner.sources[0].measurement == "electricity"
    assert inner.fields == {"energy_total_kwh"}
    assert inner.tags == {"site", "channel", "device"}
    assert inner.group_by_time == ("1d", None)
    assert inner.tz == "Europe/Berlin"
    assert inner.functions == ["non_negative_difference", "last"]
    assert len(all_statements(stmt)) == 2
