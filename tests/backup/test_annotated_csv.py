"""InfluxDB 2's annotated CSV read the same whatever the chunking: a reconstructed answer
(the stand-in's encoder, byte for byte flux v0.196.1's csv.ResultEncoder: CRLF, several tables
with different columns, an empty table, quoted strings holding commas, quotes and line ends,
an error table after data) cut at every byte offset, in 1-byte chunks and at random, and
with LF line ends, always gives the same points. NOT an answer recorded from a real
InfluxDB 2 (none runs here)."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homewatt_backup.engines.annotated_csv import (
    annotated_csv_to_lines,
    read_records,
    rfc3339_to_epoch,
)
from homewatt_backup.engines.http import text_stream
from homewatt_backup.errors import InfluxError
from tests.support.influxdb2.annotated_csv import Table, encode_error, encode_tables

T0 = 1795435200_000_000_000  # 2026-11-23T12:00:00Z in ns
ANNOTATIONS = ["datatype", "group", "default"]
START, STOP = T0, T0 + 3600_000_000_000


def storage_table(
    measurement: str, field: str, kind: str, tags: dict[str, str], values: list[object]
) -> Table:
    """A table as a storage read gives it: one series and field, rows a second apart."""
    names = sorted(tags)
    columns = [
        ("_start", "time"),
        ("_stop", "time"),
        ("_time", "time"),
        ("_value", kind),
        ("_field", "string"),
        ("_measurement", "string"),
        *((n, "string") for n in names),
    ]
    group = {"_start", "_stop", "_field", "_measurement", *names}
    rows = [
        [START, STOP, T0 + i * 1_000_000_000, v, field, measurement, *(tags[n] for n in names)]
        for i, v in enumerate(values)
    ]
    key = {"_start": START, "_stop": STOP, "_field": field, "_measurement": measurement, **tags}
    return Table(columns, group, rows, key)


TABLES = [
    storage_table(
        "electricity",
        "power_w",
        "float",
        {"channel": "l1", "device": "meter 1"},
        [231.5, 230.0, 0.125],
    ),
    storage_table(
        "electricity", "power_w", "float", {"channel": "l2", "device": "meter 1"}, [12.0]
    ),
    storage_table("homewatt_health", "read_errors", "integer", {"unit": "collector"}, [3, 0]),
    storage_table("electricity", "relay_on", "boolean", {"device": "plug"}, []),  # empty
    storage_table("electricity", "relay_on", "boolean", {"device": "plug"}, [True, False]),
    storage_table(
        "electricity",
        "note",
        "string",
        {"device": "plug, kitchen"},
        ['kettle "on", 2 kW', "two\nlines\r\nhere", " lead"],
    ),
    storage_table("electricity", "energy_total_kwh", "unsigned", {"device": "plug"}, [12345678901]),
]
EXPECTED = [
    "electricity,channel=l1,device=meter\\ 1 power_w=231.5 1795435200",
    "electricity,channel=l1,device=meter\\ 1 power_w=230.0 1795435201",
    "electricity,channel=l1,device=meter\\ 1 power_w=0.125 1795435202",
    "electricity,channel=l2,device=meter\\ 1 power_w=12.0 1795435200",
    "homewatt_health,unit=collector read_errors=3i 1795435200",
    "homewatt_health,unit=collector read_errors=0i 1795435201",
    "electricity,device=plug relay_on=true 1795435200",
    "electricity,device=plug relay_on=false 1795435201",
    'electricity,device=plug\\,\\ kitchen note="kettle \\"on\\", 2 kW" 1795435200',
    'electricity,device=plug\\,\\ kitchen note="two\nlines\nhere" 1795435201',
    'electricity,device=plug\\,\\ kitchen note=" lead" 1795435202',
    "electricity,device=plug energy_total_kwh=12345678901u 1795435200",
]


def answer() -> bytes:
    return "".join(encode_tables(TABLES, annotations=ANNOTATIONS)).encode()


def parse(chunks: list[bytes]) -> list[str]:
    return list(annotated_csv_to_lines(text_stream(chunks), "s", "export"))


def test_the_reconstructed_answer_has_what_makes_it_hard() -> None:
    raw = answer()
    assert raw.count(b"\r\n") > 30 and b"\n" not in raw.replace(b"\r\n", b"")
    assert b'"two\r\nlines\r\nhere"' in raw  # Go's csv writer: a line end inside quotes is CRLF
    # the empty table: its own schema, its group key in #default, no rows, then a new schema
    assert (
        b"#default,_result,3,2026-11-23T12:00:00Z,2026-11-23T13:00:00Z,,,relay_on,electricity,plug\r\n"
        in raw
    )
    assert raw.count(b"#datatype") == 6


def test_one_chunk_gives_every_point() -> None:
    assert parse([answer()]) == EXPECTED


def test_a_chunk_boundary_at_every_byte_offset_gives_the_same_points() -> None:
    """The field fault: a CRLF cut between two reads became a blank line, which ended the
    table; the next row was taken as a header and the rest of the table skipped."""
    raw = answer()
    wrong = [i for i in range(len(raw) + 1) if parse([raw[:i], raw[i:]]) != EXPECTED]
    assert wrong == []


def test_one_byte_chunks_give_the_same_points() -> None:
    raw = answer()
    assert parse([raw[i : i + 1] for i in range(len(raw))]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(answer())), max_size=40))
def test_any_chunking_gives_the_same_points(cuts: list[int]) -> None:
    raw = answer()
    edges = [0, *sorted(cuts), len(raw)]
    assert parse([raw[a:b] for a, b in itertools.pairwise(edges)]) == EXPECTED


def test_lf_line_ends_give_the_same_points() -> None:
    raw = answer().replace(b"\r\n", b"\n")
    assert parse([raw]) == EXPECTED
    assert parse([raw[:100], raw[100:101], raw[101:]]) == EXPECTED


def test_an_error_table_after_data_fails_the_export_naming_influxdbs_message() -> None:
    raw = (
        answer()
        + encode_error("panic: runtime error: out of memory", ANNOTATIONS, after_data=True).encode()
    )
    records = read_records(text_stream([raw[i : i + 7] for i in range(0, len(raw), 7)]), "export")
    with pytest.raises(
        InfluxError, match=r"^export: InfluxDB query error: panic: runtime error: out of memory$"
    ):
        list(records)


def test_an_error_table_alone_fails_too() -> None:
    raw = encode_error('could not find bucket "nope"', ANNOTATIONS, after_data=False).encode()
    with pytest.raises(InfluxError, match='could not find bucket "nope"'):
        parse([raw])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda raw: raw.replace(b",,0,", b",,0,,", 1),
            r"malformed at row 5: 12 cells under a header of 11",
        ),
        (
            lambda raw: raw.split(b"\r\n", 3)[3],
            r"row 2 holds an untyped value, which is not a field type",
        ),
        (
            lambda raw: raw.split(b"\r\n", 4)[4],
            r"row 2 lacks the column\(s\) _measurement, _field, _value, _time",
        ),
    ],
    ids=["row wider than its header", "no annotations", "no annotations and no header"],
)
def test_an_answer_that_cannot_be_read_fails_instead_of_skipping_rows(
    damage: object, message: str
) -> None:
    raw = damage(answer())  # type: ignore[operator]
    with pytest.raises(InfluxError, match=message):
        parse([raw])


def test_times_in_every_precision_and_bad_times() -> None:
    assert rfc3339_to_epoch("2026-11-23T12:00:00.123456789Z", "ns") == T0 + 123456789
    assert rfc3339_to_epoch("2026-11-23T12:00:00.123456789Z", "us") == (T0 + 123456789) // 1000
    assert rfc3339_to_epoch("2026-11-23T12:00:00.5Z", "ms") == T0 // 1_000_000 + 500
    assert rfc3339_to_epoch("1969-12-31T23:59:59Z", "s") == -1
    with pytest.raises(ValueError, match="not an RFC3339 UTC time"):
        rfc3339_to_epoch("2026-11-23T12:00:00+01:00", "s")


def test_text_stream_keeps_multibyte_characters_cut_between_chunks() -> None:
    raw = "Zählerstand µ ✓\r\n".encode()
    for i in range(len(raw) + 1):
        assert io.TextIOWrapper.read(text_stream([raw[:i], raw[i:]])) == "Zählerstand µ ✓\r\n"
