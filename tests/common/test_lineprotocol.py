"""homewatt_common.lineprotocol against contracts/line-protocol.json: every case encodes to its
line and reads back from a real InfluxDB 1.6.7 exactly as given; every refused value is refused,
and the line a non-refusing encoder would write is indeed lost or changed by InfluxDB 1.6.7 and
by the InfluxDB 2 stand-in's parser (reconstructed from 2.7.12's models/points.go; not a real
InfluxDB 2, which cannot run here)."""

from __future__ import annotations

import math
import urllib.error
from collections.abc import Iterator

import pytest

from homewatt_common.lineprotocol import (
    LineProtocolError,
    encode_line,
    name_problem,
    series_key,
    series_of_line,
)
from tests.support.influxdb1 import InfluxDB1
from tests.support.influxdb2.lineprotocol import LineProtocolError as StandInParseError
from tests.support.influxdb2.lineprotocol import parse as standin_parse
from tests.support.lineprotocol_cases import CASES, REFUSED, Case, expected_point, stored_points

# InfluxQL field types (SHOW FIELD KEYS) as Python types (its JSON writes 230.0 as 230)
_JSON_TYPES = {"float": float, "integer": int, "boolean": bool, "string": str}


@pytest.fixture(scope="module")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path_factory.mktemp("lineprotocol") / "influxdb1").start()
    try:
        yield server
    finally:
        server.stop()


def _ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_each_case_encodes_to_the_contracts_line(case: Case) -> None:
    line = encode_line(case.measurement, case.tags, case.fields, case.ts)
    assert line == case.line
    assert series_of_line(line) == series_key(case.measurement, case.tags)


@pytest.mark.parametrize("case", REFUSED, ids=_ids(REFUSED))
def test_each_value_line_protocol_cannot_carry_is_refused_with_its_reason(case: Case) -> None:
    with pytest.raises(LineProtocolError) as refused:
        encode_line(case.measurement, case.tags, case.fields, case.ts)
    assert case.error in str(refused.value)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_each_case_reads_back_from_influxdb_1_6_7_as_it_was_given(
    case: Case, influxdb1: InfluxDB1
) -> None:
    if "influxdb1" in case.skip:
        pytest.skip(case.skip["influxdb1"])
    db = f"case{CASES.index(case)}"
    influxdb1.create_database(db)
    influxdb1.write(db, [case.line])
    [(measurement, tags, ts, fields)] = stored_points(influxdb1, db)
    want_measurement, want_tags, _, want_fields = expected_point(case)
    assert (measurement, tags, ts) == (want_measurement, want_tags, case.ts)
    assert fields == want_fields  # exact: every digit, every character
    types = {key: kind for (_, key), kind in influxdb1.field_types(db).items()}
    assert {k: _JSON_TYPES[t] for k, t in types.items()} == {
        k: bool if isinstance(v, bool) else int if isinstance(v, int) else type(v)
        for k, v in want_fields.items()
    }


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_each_case_parses_back_in_the_influxdb_2_standin_as_it_was_given(case: Case) -> None:
    [point] = standin_parse((case.line + "\n").encode(), "s", 0)
    want_measurement, want_tags, _, want_fields = expected_point(case)
    assert point.measurement == want_measurement
    assert dict(point.tags) == want_tags
    assert {name: value for name, _, value in point.fields} == want_fields
    assert point.time_ns == case.ts * 1_000_000_000


@pytest.mark.parametrize(
    "case", [c for c in REFUSED if "influxdb1" in c.answers], ids=lambda c: c.name
)
def test_what_a_non_refusing_encoder_writes_is_lost_or_changed_by_influxdb_1_6_7(
    case: Case, influxdb1: InfluxDB1
) -> None:
    db = f"refused{REFUSED.index(case)}"
    influxdb1.create_database(db)
    try:
        influxdb1.write(db, [case.naive_line])
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and case.answers["influxdb1"].startswith("400")
        return
    assert case.answers["influxdb1"].startswith("204")
    want_measurement, want_tags, _, want_fields = expected_point(case)
    assert all(
        (m, t, f) != (want_measurement, want_tags, want_fields)
        for m, t, _, f in stored_points(influxdb1, db)  # nothing stored, or something else
    )


@pytest.mark.parametrize(
    "case", [c for c in REFUSED if "influxdb2" in c.answers], ids=lambda c: c.name
)
def test_what_a_non_refusing_encoder_writes_is_lost_or_changed_by_the_influxdb_2_standin(
    case: Case,
) -> None:
    try:
        points = standin_parse((case.naive_line + "\n").encode(), "s", 0)
    except StandInParseError as exc:
        assert case.answers["influxdb2"].startswith("unable to parse")
        assert case.answers["influxdb2"].split(": ", 1)[1].split(" (")[0] in str(exc)
        return
    assert not case.answers["influxdb2"].startswith("unable to parse")
    want_measurement, want_tags, _, want_fields = expected_point(case)
    want = (want_measurement, want_tags, want_fields)
    assert all(
        (p.measurement, dict(p.tags), {n: v for n, _, v in p.fields}) != want for p in points
    )


def test_name_problem_says_what_the_encoder_refuses_and_passes_what_it_writes() -> None:
    assert name_problem("C:\\", "tag value") == (
        "ends with a backslash, which line protocol cannot carry"
    )
    assert name_problem("a\nb", "tag key") is not None
    assert name_problem("", "tag value") is None  # left out of the line
    assert name_problem("time", "field key") is not None
    assert name_problem("time", "tag value") is None
    for case in CASES:
        assert name_problem(case.measurement, "measurement") is None
        assert all(name_problem(key, "field key") is None for key in case.fields)


def test_a_non_finite_float_is_never_written() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(LineProtocolError):
            encode_line("m", {}, {"f": value}, 1)


def test_the_contract_has_cases_of_every_field_type_and_unique_names() -> None:
    kinds = {type(v).__name__ for case in CASES for v in case.fields.values()}
    assert kinds == {"float", "int", "bool", "str", "Unsigned"}
    assert len({c.name for c in CASES + REFUSED}) == len(CASES) + len(REFUSED)
