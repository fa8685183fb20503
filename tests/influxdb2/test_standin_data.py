"""The stand-in's data path: line protocol in, annotated CSV and InfluxQL JSON out, partial
writes, retention, the Flux and InfluxQL subsets and their limits. Expected bytes are
InfluxDB 2.7.12's as reconstructed from its source and Flux's (see tests/support/influxdb2);
NOT run against a real InfluxDB 2, which cannot run here."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import requests

from tests.influxdb2.conftest import BUCKET, ORG, TOKEN, Api
from tests.support.influxdb2 import InfluxDB2StandIn

T0 = 1795435200  # 2026-11-23T12:00:00Z
NOW_NS = (T0 + 3600) * 10**9
OLD_RANGE = (
    f'from(bucket: "{BUCKET}") |> range(start: 2020-01-01T00:00:00Z, stop: 2020-01-02T00:00:00Z)'
)


def test_write_then_flux_read_back_is_crlf_annotated_csv_in_storage_order(operator: Api) -> None:
    lines = (
        f'electricity,device=plug note="kettle \\"on\\", 2 kW",relay_on=true {T0 + 4}\n'
        f"electricity,channel=l1,device=meter\\ 1 power_w=231.5 {T0 + 1}\n"
        f"electricity,channel=l1,device=meter\\ 1 power_w=230 {T0 + 2}\n"
        f"homewatt_health,unit=collector read_errors=3i {T0 + 1}\n"
    )
    assert operator.write(lines).status_code == 204
    answer = operator.flux(
        f'from(bucket: "{BUCKET}")'
        " |> range(start: 2026-11-23T12:00:00Z, stop: 2026-11-23T13:00:00Z)"
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["Transfer-Encoding"] == "chunked"
    start, stop = "2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z"
    head = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,"
    assert answer.content.decode() == (
        f"{head}double,string,string,string,string\r\n"
        "#group,false,false,true,true,false,false,true,true,true,true\r\n"
        "#default,_result,,,,,,,,,\r\n"
        ",result,table,_start,_stop,_time,_value,_field,_measurement,channel,device\r\n"
        f",,0,{start},{stop},2026-11-23T12:00:01Z,231.5,power_w,electricity,l1,meter 1\r\n"
        f",,0,{start},{stop},2026-11-23T12:00:02Z,230,power_w,electricity,l1,meter 1\r\n"
        "\r\n"
        f"{head}string,string,string,string\r\n"
        "#group,false,false,true,true,false,false,true,true,true\r\n"
        "#default,_result,,,,,,,,\r\n"
        ",result,table,_start,_stop,_time,_value,_field,_measurement,device\r\n"
        f',,1,{start},{stop},2026-11-23T12:00:04Z,"kettle ""on"", 2 kW",note,electricity,plug\r\n'
        "\r\n"
        f"{head}boolean,string,string,string\r\n"
        "#group,false,false,true,true,false,false,true,true,true\r\n"
        "#default,_result,,,,,,,,\r\n"
        ",result,table,_start,_stop,_time,_value,_field,_measurement,device\r\n"
        f",,2,{start},{stop},2026-11-23T12:00:04Z,true,relay_on,electricity,plug\r\n"
        "\r\n"
        f"{head}long,string,string,string\r\n"
        "#group,false,false,true,true,false,false,true,true,true\r\n"
        "#default,_result,,,,,,,,\r\n"
        ",result,table,_start,_stop,_time,_value,_field,_measurement,unit\r\n"
        f",,3,{start},{stop},2026-11-23T12:00:01Z,3,read_errors,homewatt_health,collector\r\n"
        "\r\n"
    )
    empty = operator.flux(OLD_RANGE)
    assert empty.content == b"\r\n"  # a result without tables is just the result delimiter


def test_writes_take_gzip_bodies_and_every_precision(operator: Api) -> None:
    body = gzip.compress(f"m,p=s f=1 {T0}\n".encode())
    assert (
        operator.write(body, precision="s", headers={"Content-Encoding": "gzip"}).status_code == 204
    )
    assert operator.write(f"m,p=ms f=1 {T0 * 1000}", precision="ms").status_code == 204
    assert operator.write(f"m,p=us f=1 {T0 * 10**6}", precision="us").status_code == 204
    assert operator.write(f"m,p=ns f=1 {T0 * 10**9}", precision="ns").status_code == 204
    answer = operator.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)', annotations=[])
    times = {row.split(",")[5] for row in answer.text.splitlines()[1:] if row}
    assert times == {"2026-11-23T12:00:00Z"}
    bad = operator.write("m f=1", precision="h")
    assert bad.status_code == 400
    assert bad.json()["message"] == "invalid precision; valid precision units are ns, us, ms, and s"
    broken = operator.write(b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert broken.status_code == 500  # influxd: gzip.NewReader's error is not a platform error
    assert broken.json() == {"code": "internal error", "message": "An internal error has occurred"}


def test_bad_line_protocol_is_400_naming_every_bad_line_and_nothing_is_stored(
    operator: Api,
) -> None:
    answer = operator.write(f"good f=1 {T0}\nbad_line\nm f=tru {T0}\nm,t=1,t=2 f=1\nm f=1 12ab\n")
    assert answer.status_code == 400
    assert answer.json() == {
        "code": "invalid",
        "message": "unable to parse 'bad_line': missing fields\n"
        "unable to parse 'm f=tru 1795435200': invalid boolean\n"
        "unable to parse 'm,t=1,t=2 f=1': duplicate tags\n"
        "unable to parse 'm f=1 12ab': bad timestamp",
    }
    assert operator.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)').content == b"\r\n"


def test_writes_to_unknown_buckets_and_orgs_are_404(operator: Api) -> None:
    assert operator.write("m f=1", bucket="nope").json() == {
        "code": "not found",
        "message": 'bucket "nope" not found',
    }
    no_bucket = operator("POST", "/api/v2/write", params={"org": ORG}, data=b"m f=1")
    assert no_bucket.status_code == 404 and no_bucket.json()["message"] == "bucket not found"
    no_org = operator(
        "POST", "/api/v2/write", params={"org": "nope", "bucket": BUCKET}, data=b"m f=1"
    )
    assert no_org.status_code == 404
    assert no_org.json()["message"] == 'organization name "nope" not found'


def test_points_beyond_retention_are_a_422_partial_write_and_the_rest_is_stored(
    tmp_path: Path,
) -> None:
    with InfluxDB2StandIn(tmp_path, now_ns=lambda: NOW_NS) as server:
        server.setup(org=ORG, bucket=BUCKET, token=TOKEN, retention_s=3600)
        api = Api(server.url, TOKEN)
        bucket_id = server.store.all("buckets")[-1]["id"]
        bucket_id = next(b["id"] for b in server.store.all("buckets") if b["name"] == BUCKET)
        answer = api.write(f"m,d=a f=1 {T0 - 10}\nm,d=b f=2 {T0 - 5}\nm,d=c f=3 {T0 + 10}\n")
        assert answer.status_code == 422
        bound = "2026-11-23T12:00:00Z"
        assert answer.json() == {
            "code": "unprocessable entity",
            "message": "failure writing points to database: partial write: dropped 2 points "
            "outside retention policy of duration 1h0m0s - oldest point m,d=a at "
            "2026-11-23T11:59:50Z dropped because it violates a Retention Policy Lower Bound at "
            f"{bound}, newest point m,d=b at 2026-11-23T11:59:55Z dropped because it violates a "
            f"Retention Policy Lower Bound at {bound} dropped=2 for database: {bucket_id} for "
            "retention policy: autogen",
        }
        kept = api.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)', annotations=[]).text
        assert [row.split(",")[-1] for row in kept.splitlines()[1:] if row] == ["c"]


def test_a_field_type_conflict_in_a_shard_is_a_422_partial_write(operator: Api) -> None:
    assert operator.write(f"electricity power_w=230.5 {T0}").status_code == 204
    answer = operator.write(
        f"electricity power_w=231i {T0 + 1}\nelectricity power_w=232.5 {T0 + 2}"
    )
    assert answer.status_code == 422
    assert answer.json()["message"] == (
        "failure writing points to database: partial write: field type conflict: input field "
        '"power_w" '
        'on measurement "electricity" is type integer, already exists as type float dropped=1'
    )


def test_retention_enforcement_drops_shard_groups_past_retention(tmp_path: Path) -> None:
    now = [NOW_NS]
    with InfluxDB2StandIn(tmp_path, now_ns=lambda: now[0]) as server:
        server.setup(org=ORG, bucket=BUCKET, token=TOKEN, retention_s=3600)
        api = Api(server.url, TOKEN)
        assert api.write(f"m f=1 {T0 + 60}").status_code == 204  # the 12:00-13:00 shard group
        assert server.store.enforce_retention() == []
        now[0] += 2 * 3600 * 10**9  # 15:00: the group ended 13:00, plus 1h retention is past
        assert server.store.enforce_retention() == [1]
        assert api.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)').content == b"\r\n"


def test_flux_filter_limit_last_and_to(standin: InfluxDB2StandIn, operator: Api) -> None:
    org_id = standin.store.all("orgs")[0]["id"]
    assert (
        operator("POST", "/api/v2/buckets", json={"orgID": org_id, "name": "copy"}).status_code
        == 201
    )
    operator.write(
        "\n".join(
            f"electricity,device=m{i % 2} power_w={i},voltage_v=230 {T0 + i}" for i in range(10)
        )
    )
    query = (
        f'from(bucket: "{BUCKET}")\n  |> range(start: 2026-11-23T00:00:00Z)\n'
        '  |> filter(fn: (r) => r._measurement == "electricity" and r._field == "power_w"'
        ' and r["device"] == "m1")\n'
    )
    rows = operator.flux(query + "  |> limit(n: 2)", annotations=[]).text.splitlines()[1:]
    assert [r.split(",")[6] for r in rows if r] == ["1", "3"]
    last = operator.flux(query + "  |> last()", annotations=[]).text.splitlines()[1:]
    assert [r.split(",")[6] for r in last if r] == ["9"]
    copied = operator.flux(query + '  |> to(bucket: "copy")')
    assert copied.status_code == 200
    back = operator.flux(
        'from(bucket: "copy") |> range(start: 0)', annotations=[]
    ).text.splitlines()[1:]
    assert [r.split(",")[6] for r in back if r] == ["1", "3", "5", "7", "9"]


def test_flux_count_gives_one_row_per_table_key_columns_then_value(operator: Api) -> None:
    """flux execute/aggregate.go: the group key columns, then _value as a long."""
    operator.write(
        "\n".join(f'electricity,device=m{i % 2} power_w={i},note="x" {T0 + i}' for i in range(5))
    )
    answer = operator.flux(
        f'from(bucket: "{BUCKET}")\n  |> range(start: 2026-11-23T12:00:00Z, '
        "stop: 2026-11-23T13:00:00Z)\n  |> count()"
    )
    assert answer.status_code == 200
    assert answer.text.split("\r\n")[:6] == [
        "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,string,string,string,long",
        "#group,false,false,true,true,true,true,true,false",
        "#default,_result,,,,,,,",
        ",result,table,_start,_stop,_field,_measurement,device,_value",
        ",,0,2026-11-23T12:00:00Z,2026-11-23T13:00:00Z,note,electricity,m0,3",
        ",,1,2026-11-23T12:00:00Z,2026-11-23T13:00:00Z,power_w,electricity,m0,3",
    ]
    assert answer.text.count("\r\n,,") == 4  # note and power_w of m0 and m1


def test_flux_empty_tables_get_their_own_schema_with_the_key_as_defaults(operator: Api) -> None:
    """csv.ResultEncoder: an empty table (limit(n: 0) keeps it) is written as its schema with
    the table id and group key in #default, and the table after it gets a schema again."""
    operator.write(f"m,t=a f=1 {T0}\nm,t=b f=2 {T0}")
    answer = operator.flux(
        f'from(bucket: "{BUCKET}") |> range(start: 2026-11-23T12:00:00Z, '
        "stop: 2026-11-23T13:00:00Z) |> limit(n: 0)"
    )
    assert answer.text.split("\r\n") == [
        "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,"
        "string,string,string",
        "#group,false,false,true,true,false,false,true,true,true",
        "#default,_result,0,2026-11-23T12:00:00Z,2026-11-23T13:00:00Z,,,f,m,a",
        ",result,table,_start,_stop,_time,_value,_field,_measurement,t",
        "",
        "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,"
        "string,string,string",
        "#group,false,false,true,true,false,false,true,true,true",
        "#default,_result,1,2026-11-23T12:00:00Z,2026-11-23T13:00:00Z,,,f,m,b",
        ",result,table,_start,_stop,_time,_value,_field,_measurement,t",
        "",
        "",
    ]


def test_flux_beyond_the_subset_is_a_400_that_names_the_stand_ins_limit(operator: Api) -> None:
    answer = operator.flux(
        f'from(bucket: "{BUCKET}") |> range(start: -1h) |> aggregateWindow(every: 1m, fn: mean)'
    )
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(
        "influxdb stand-in: Flux function aggregateWindow() is not supported "
        "(supported: from, range"
    )
    unbounded = operator.flux(f'from(bucket: "{BUCKET}")')
    assert unbounded.status_code == 400 and "unbounded read" in unbounded.json()["message"]
    unknown = operator.flux('from(bucket: "nope") |> range(start: 0)')
    assert unknown.status_code == 404
    assert unknown.json() == {
        "code": "not found",
        "message": 'failed to initialize execute state: could not find bucket "nope"',
    }
    bad_dialect = operator(
        "POST",
        "/api/v2/query",
        params={"org": ORG},
        json={"query": "x", "dialect": {"annotations": ["nope"]}},
    )
    assert (
        bad_dialect.json()["message"]
        == "failed to decode request body: unknown dialect annotation type: nope"
    )


def test_an_error_after_data_becomes_an_error_table_in_the_stream(
    standin: InfluxDB2StandIn, operator: Api
) -> None:
    operator.write(f"a f=1 {T0}\nb f=1 {T0}")
    standin.query_fault = (1, "panic: something broke")
    answer = operator.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)')
    assert answer.status_code == 200
    assert answer.text.endswith(
        "\r\n#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n"
        ",error,reference\r\n,panic: something broke,\r\n"
    )


def test_large_query_answers_are_gzip_compressed_when_the_client_accepts_it(operator: Api) -> None:
    operator.write("\n".join(f"m f={i} {T0 + i}" for i in range(200)))
    raw = requests.post(
        operator.url + "/api/v2/query",
        params={"org": ORG},
        json={"query": f'from(bucket: "{BUCKET}") |> range(start: 0)'},
        headers={"Authorization": f"Token {TOKEN}", "Accept-Encoding": "gzip"},
        stream=True,
        timeout=10,
    )
    assert raw.headers["Content-Encoding"] == "gzip" and raw.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(raw.raw.read(decode_content=False)).count(b"\r\n") > 200
    small = operator.flux(
        OLD_RANGE,
        headers={"Accept-Encoding": "gzip"},
    )
    assert "Content-Encoding" not in small.headers  # gziphandler: under 1400 bytes stays plain


def test_v1_query_through_dbrp_mappings(standin: InfluxDB2StandIn, operator: Api) -> None:
    operator.write(
        f"electricity,device=m1 power_w=230.5,voltage_v=230 {T0}\n"
        f"electricity,device=m2 power_w=12 {T0 + 1}\n"
    )

    def q(query: str, **params: str) -> requests.Response:
        return operator("GET", "/query", params={"db": BUCKET, "q": query, **params})

    [databases] = q("SHOW DATABASES").json()["results"][0]["series"]
    assert databases["name"] == "databases" and databases["columns"] == ["name"]
    assert sorted(v[0] for v in databases["values"]) == ["_monitoring", "_tasks", BUCKET]
    answer = q("SELECT power_w FROM electricity WHERE time >= '2026-11-23T00:00:00Z'", epoch="s")
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.content == (
        b'{"results":[{"statement_id":0,"series":[{"name":"electricity","columns":["time","power_w"],'
        b'"values":[[1795435200,230.5],[1795435201,12]]}]}]}\n'
    )
    grouped = q('SELECT * FROM "electricity" GROUP BY *').json()["results"][0]["series"]
    assert [(s["tags"], s["columns"]) for s in grouped] == [
        ({"device": "m1"}, ["time", "power_w", "voltage_v"]),
        ({"device": "m2"}, ["time", "power_w", "voltage_v"]),
    ]
    assert grouped[1]["values"] == [["2026-11-23T12:00:01Z", 12, None]]
    missing = operator("GET", "/query", params={"db": "nope", "q": "SELECT * FROM m"}).json()
    assert missing == {"results": [{"statement_id": 0, "error": "database not found: nope"}]}
    unsupported = q("SELECT mean(power_w) FROM electricity GROUP BY time(1m)")
    assert unsupported.status_code == 400
    assert unsupported.json()["message"].startswith(
        "influxdb stand-in: functions such as mean() are not supported"
    )
    by_password = requests.get(
        f"{standin.url}/query",
        params={"db": BUCKET, "q": "SHOW MEASUREMENTS", "u": "any", "p": TOKEN},
        timeout=5,
    )
    assert by_password.json()["results"][0]["series"][0]["values"] == [["electricity"]]
    refused = requests.get(f"{standin.url}/query", params={"q": "SHOW DATABASES"}, timeout=5)
    assert refused.status_code == 401
    v1_write = operator(
        "POST", "/write", params={"db": BUCKET, "precision": "s"}, data=f"m f=1 {T0}".encode()
    )
    assert v1_write.status_code == 204


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("m", "missing fields"),
        (",t=1 f=1", "missing measurement"),
        ("m,t f=1", "missing tag value"),
        ("m,=1 f=1", "missing tag key"),
        ("m,t=a=b f=1", "invalid tag format"),
        ("m f=", "missing field value"),
        ("m =1", "missing field key"),
        ('m f="open', "unbalanced quotes"),
        ("m f=1.2.3", "invalid number"),
        ("m f=1i2", "invalid number"),
        ("m f=1 1 2", "point is invalid"),
        ("m,time=1 f=1", 'cannot use reserved tag key "time"'),
        ("m,_field=1 f=1", 'cannot use reserved tag key "_field"'),
    ],
)
def test_line_protocol_errors_use_influxdbs_words(operator: Api, line: str, reason: str) -> None:
    answer = operator.write(line)
    assert answer.status_code == 400
    assert answer.json()["message"] == f"unable to parse '{line}': {reason}"
