"""The InfluxDB 2 engine against the repository's InfluxDB 2 stand-in (tests/support/influxdb2):
real data written, backed up, exported and restored over the HTTP API, with the stand-in's
reconstructed answers. NOT run against a real InfluxDB 2 (none can run here); each test name
says so. What the stand-in reconstructs, and from where, is in its package docstring."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import tenacity
import yaml

from homewatt_backup.config import InfluxDB2Config, Secrets
from homewatt_backup.engines.annotated_csv import annotated_csv_to_lines
from homewatt_backup.engines.http import InfluxHTTP
from homewatt_backup.engines.influxdb2 import InfluxDB2Engine, restore_bucket_request
from homewatt_backup.errors import InfluxError
from homewatt_backup.ledger import VerificationLedger
from homewatt_backup.models import ShardRecord
from tests.backup.conftest import Site, write_secret
from tests.support.azurite import Azurite
from tests.support.influxdb2 import VERSION, InfluxDB2StandIn, Recorded, Reply
from tests.support.processes import free_port

ORG, BUCKET, TOKEN = "homewatt", "homewatt", "stand-in-operator-token"
FIXTURES = Path(__file__).parent / "fixtures"
# Mondays 2026-10-19, 10-26 and 11-02 fall in three 7-day shard groups (Go-zero-time aligned
# weeks start on Monday): the homewatt bucket gets shards 1, 2, 3; the other bucket shard 4.
WEEK1, WEEK2, WEEK3 = 1792411200, 1793016000, 1793620800  # 12:00:00Z on each Monday
SEED = [
    f"electricity,channel=l1,device=meter\\ 1 power_w=231.5,energy_total_kwh=1234.5 {WEEK1}",
    f"electricity,channel=l1,device=meter\\ 1 power_w=230 {WEEK2}",
    f"homewatt_health,unit=collector read_errors=3i {WEEK2}",
    f'electricity,device=plug relay_on=true,note="kettle \\"on\\", 2 kW" {WEEK3}',
]


def write(server: InfluxDB2StandIn, bucket: str, lines: list[str], token: str = TOKEN) -> None:
    response = requests.post(
        f"{server.url}/api/v2/write",
        params={"org": ORG, "bucket": bucket, "precision": "s"},
        data="\n".join(lines).encode(),
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    assert response.status_code == 204, response.text


def points(server: InfluxDB2StandIn, bucket: str) -> list[str]:
    """Every stored point of a bucket, as sorted line protocol (read back over Flux)."""
    response = requests.post(
        f"{server.url}/api/v2/query",
        params={"org": ORG},
        json={
            "query": f'from(bucket: "{bucket}") |> range(start: 0)',
            "dialect": {"annotations": ["datatype", "group", "default"]},
        },
        headers={"Authorization": f"Token {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return sorted(annotated_csv_to_lines(response.text.splitlines(keepends=True), "s", "read"))


def create_bucket(server: InfluxDB2StandIn, name: str, token: str = TOKEN) -> str:
    org_id = server.store.all("orgs")[0]["id"]
    response = requests.post(
        f"{server.url}/api/v2/buckets",
        json={"orgID": org_id, "name": name, "retentionRules": []},
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def influx2(tmp_path: Path) -> Iterator[InfluxDB2StandIn]:
    server = InfluxDB2StandIn(tmp_path / "standin").start()
    try:
        server.setup(org=ORG, bucket=BUCKET, token=TOKEN)
        write(server, BUCKET, SEED)
        create_bucket(server, "other")
        write(server, "other", [f"m f=1 {WEEK1}"])
        server.requests.clear()
        yield server
    finally:
        server.stop()


def later(line: str, seconds: int) -> str:
    """The same line protocol point, `seconds` later."""
    rest, _, ts = line.rpartition(" ")
    return f"{rest} {int(ts) + seconds}"


def engine(url: str, token: str = TOKEN, attempts: int = 1) -> InfluxDB2Engine:
    config = InfluxDB2Config(
        engine="influxdb2",
        url=url,
        org=ORG,
        bucket=BUCKET,
        token_credential="influxdb-operator-token",
        timeout_s=5,
    )
    http = InfluxHTTP(url, 5, headers={"Authorization": f"Token {token}"}, attempts=attempts)
    return InfluxDB2Engine(config, Secrets(token, None, None), http=http)


def expire_shard_after_metadata(server: InfluxDB2StandIn, shard_id: int) -> dict[str, bytes]:
    """Retention drops `shard_id` right after the metadata answer (a shard that vanishes
    during a backup); returns the KV snapshot the metadata carried."""
    seen: dict[str, bytes] = {}

    def metadata_then_expire(request: Recorded) -> Reply:
        seen["kv"] = server.store.kv_snapshot()
        reply = server.answer(request)
        server.store.drop_shard(shard_id)
        return reply

    server.overrides[("GET", "/api/v2/backup/metadata")] = metadata_then_expire
    return seen


def test_influxdb2_full_backup_fetches_the_buckets_shards_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    archives = {sid: influx2.store.shard_archive(sid) for sid in (1, 2)}
    seen = expire_shard_after_metadata(influx2, 3)
    full = engine(influx2.url).dump_full(tmp_path, "20261123T030000Z")
    payload = full.files
    names = [name for name, _ in payload]
    assert names == [
        "influxdb2/20261123T030000Z.1.tar.gz",
        "influxdb2/20261123T030000Z.2.tar.gz",
        "influxdb2/20261123T030000Z.bolt.gz",
        "influxdb2/20261123T030000Z.manifest",
        "influxdb2/20261123T030000Z.sqlite.gz",
    ]
    [metadata] = influx2.calls("GET", "/api/v2/backup/metadata")
    assert metadata.header("Authorization") == f"Token {TOKEN}"
    assert metadata.header("Accept-Encoding") == "gzip"
    shards = [r.path for r in influx2.calls("GET", "/api/v2/backup/shards/")]
    assert shards == [
        "/api/v2/backup/shards/1",
        "/api/v2/backup/shards/2",
        "/api/v2/backup/shards/3",
    ]  # not shard 4 (another bucket)
    files = dict(payload)
    kv = files["influxdb2/20261123T030000Z.bolt.gz"]
    assert gzip.decompress(kv.read_bytes()) == seen["kv"]
    assert gzip.decompress(files["influxdb2/20261123T030000Z.1.tar.gz"].read_bytes()) == archives[1]
    sqlite = gzip.decompress(files["influxdb2/20261123T030000Z.sqlite.gz"].read_bytes())
    assert sqlite.startswith(b"SQLite format 3\x00")
    # the `influx backup` manifest layout (influx-cli manifestVersion 2): `influx restore` can
    # read an extracted archive; shard 3 vanished during the backup (404) and is left out
    manifest = json.loads(files["influxdb2/20261123T030000Z.manifest"].read_text())
    assert manifest["manifestVersion"] == 2
    assert manifest["kv"] == {
        "fileName": "20261123T030000Z.bolt.gz",
        "compression": 1,
        "size": kv.stat().st_size,
    }
    [bucket] = manifest["buckets"]
    assert bucket["bucketName"] == BUCKET
    groups = bucket["retentionPolicies"][0]["shardGroups"]
    assert [[s["id"] for s in g["shards"]] for g in groups] == [[1], [2], []]
    assert groups[0]["shards"][0]["fileName"] == "20261123T030000Z.1.tar.gz"
    assert groups[0]["shards"][0]["shardOwners"] == [{"nodeID": 0}]
    assert groups[0]["startTime"] == "2026-10-19T00:00:00Z"  # Monday: Go's Truncate(7d)
    # what the engine listed, and what became of each shard: sizes of the tars read whole
    assert full.shards == (
        ShardRecord(
            1, "saved", "influxdb2/20261123T030000Z.1.tar.gz", len(archives[1]), bucket=BUCKET
        ),
        ShardRecord(
            2, "saved", "influxdb2/20261123T030000Z.2.tar.gz", len(archives[2]), bucket=BUCKET
        ),
        ShardRecord(3, "expired", bucket=BUCKET),
    )


def test_influxdb2_full_backup_needs_the_operator_token_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    org_id = influx2.store.all("orgs")[0]["id"]
    types = ["authorizations", "buckets", "dashboards", "orgs", "tasks", "users", "dbrp"]
    all_access = requests.post(
        f"{influx2.url}/api/v2/authorizations",
        json={
            "orgID": org_id,
            "description": "all access",
            "permissions": [
                {"action": a, "resource": {"type": t, "orgID": org_id}}
                for t in types
                for a in ("read", "write")
            ],
        },
        headers={"Authorization": f"Token {TOKEN}"},
        timeout=10,
    )
    assert all_access.status_code == 201, all_access.text
    with pytest.raises(
        InfluxError,
        match=r"^full backup: metadata: InfluxDB rejected the token \(401 ",
    ):
        engine(influx2.url, token=all_access.json()["token"]).dump_full(tmp_path, "x")


def test_influxdb2_hourly_export_is_flux_per_chunk_to_lines_not_run_against_a_real_influxdb2(
    influx2: InfluxDB2StandIn,
) -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    ts = int(start.timestamp())
    window1 = [
        f"electricity,channel=l1,device=meter\\ 1 power_w=231.5 {ts + 1}",
        f"electricity,channel=l1,device=meter\\ 1 power_w=230 {ts + 2}",
        f"homewatt_health,unit=collector read_errors=3i {ts + 1}",
        f"electricity,device=plug relay_on=true {ts + 3}",
        f'electricity,device=plug note="kettle \\"on\\", 2 kW" {ts + 4}',
    ]
    window2 = [later(line, 3600) for line in window1]
    write(influx2, BUCKET, window1 + window2)
    influx2.requests.clear()
    out = io.StringIO()
    exported = engine(influx2.url).dump_incremental(start, start + timedelta(hours=2), out, "s")
    queries = influx2.calls("POST", "/api/v2/query")
    assert len(queries) == 2  # one query per query_chunk_hours window
    assert queries[0].query == {"org": [ORG]}
    body = queries[0].json()
    assert body["query"] == (
        'from(bucket: "homewatt")\n'
        "  |> range(start: 2026-11-23T10:00:00Z, stop: 2026-11-23T11:00:00Z)"
    )
    assert body["dialect"]["annotations"] == ["datatype", "group", "default"]
    assert queries[1].json()["query"].endswith("stop: 2026-11-23T12:00:00Z)")
    assert queries[0].header("Accept") == "application/csv"
    # tables come in storage order (measurement, tags, field), rows by time
    expected_window1 = [
        f"electricity,channel=l1,device=meter\\ 1 power_w=231.5 {ts + 1}",
        f"electricity,channel=l1,device=meter\\ 1 power_w=230.0 {ts + 2}",
        f'electricity,device=plug note="kettle \\"on\\", 2 kW" {ts + 4}',
        f"electricity,device=plug relay_on=true {ts + 3}",
        f"homewatt_health,unit=collector read_errors=3i {ts + 1}",
    ]
    expected_window2 = [later(line, 3600) for line in expected_window1]
    assert out.getvalue().splitlines() == expected_window1 + expected_window2
    assert exported.lines == 10
    assert exported.field_values == {"electricity": 8, "homewatt_health": 2}


def test_annotated_csv_precision_and_error_tables_not_run_against_a_real_influxdb2(
    influx2: InfluxDB2StandIn,
) -> None:
    # fixtures/influxdb2_export.csv: InfluxDB 2's annotated CSV (reconstructed from flux
    # csv/result.go: CRLF, dateTime:RFC3339, a null value, an escaped string)
    text = (FIXTURES / "influxdb2_export.csv").read_bytes().decode()
    assert "\r\n" in text
    lines = list(annotated_csv_to_lines(text.splitlines(keepends=True), "ms", "export"))
    assert lines[1].endswith(" 1795435202500")  # 12:00:02.5 in milliseconds
    # an error after the first table, as InfluxDB writes a failure once data has gone out
    influx2.query_fault = (1, 'failed to initialize execute state: could not find bucket "nope"')
    start = datetime(2026, 10, 19, 0, 0, tzinfo=UTC)
    with pytest.raises(
        InfluxError,
        match=r"query error: failed to initialize execute state: "
        r'could not find bucket "nope"',
    ):
        engine(influx2.url).dump_incremental(start, start + timedelta(days=30), io.StringIO(), "s")


def test_influxdb2_restore_makes_bucket_then_posts_shards_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    eng = engine(influx2.url)
    work = tmp_path / "backup"
    work.mkdir()
    original = points(influx2, BUCKET)
    archive_1 = influx2.store.shard_archive(1)
    payload = eng.dump_full(work, "20261123T030000Z").files
    assert all(path.is_relative_to(work) for _, path in payload)
    assert eng.target_state("restored") == "absent"
    eng.restore_full(work, "restored", merge=False)
    [create] = influx2.calls("POST", "/api/v2/restore/bucketMetadata")
    body = create.json()
    org_id = influx2.store.all("orgs")[0]["id"]
    assert body["bucketName"] == "restored" and body["organizationID"] == org_id
    shards = body["retentionPolicies"][0]["shardGroups"][0]["shards"]
    assert shards == [{"id": 1, "shardOwners": [{"nodeID": 0}]}]  # file details dropped
    posts = influx2.calls("POST", "/api/v2/restore/shards/")
    assert [r.path for r in posts] == [f"/api/v2/restore/shards/{n}" for n in (5, 6, 7)]
    assert posts[0].header("Content-Encoding") == "gzip"
    assert gzip.decompress(posts[0].body) == archive_1
    assert influx2.calls("DELETE", "/api/v2/buckets/") == []
    assert points(influx2, "restored") == original
    assert eng.target_state("restored") == "nonempty"


def test_influxdb2_merge_restore_uses_a_temporary_bucket_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    eng = engine(influx2.url)
    eng.dump_full(tmp_path, "20261123T030000Z")
    original = points(influx2, BUCKET)
    write(influx2, BUCKET, [f"electricity,device=new power_w=1 {WEEK3 + 60}"])
    eng.restore_full(tmp_path, BUCKET, merge=True)
    [create] = influx2.calls("POST", "/api/v2/restore/bucketMetadata")
    temp = create.json()["bucketName"]
    assert temp.startswith(f"{BUCKET}-restore-")
    copy = influx2.calls("POST", "/api/v2/query")[-1].json()["query"]
    assert copy == f'from(bucket: "{temp}")\n  |> range(start: 0)\n  |> to(bucket: "{BUCKET}")'
    [delete] = influx2.calls("DELETE", "/api/v2/buckets/")
    temp_id = json.loads(influx2.calls("POST", "/api/v2/restore/bucketMetadata")[0].body)
    assert delete.path.startswith("/api/v2/buckets/") and temp_id["bucketName"] == temp
    assert [b["name"] for b in influx2.store.all("buckets") if b["name"] == temp] == []
    merged = points(influx2, BUCKET)
    assert set(original) <= set(merged) and len(merged) == len(original) + 1


def test_restore_request_keeps_the_manifest_but_the_target_not_run_against_a_real_influxdb2() -> (
    None
):
    source: dict[str, Any] = {
        "organizationID": "0a1b2c3d4e5f6071",
        "organizationName": ORG,
        "bucketID": "1b2c3d4e5f607182",
        "bucketName": BUCKET,
        "defaultRetentionPolicy": "autogen",
        "retentionPolicies": [
            {
                "name": "autogen",
                "replicaN": 1,
                "duration": 0,
                "shardGroupDuration": 604800000000000,
                "shardGroups": [
                    {
                        "id": 1,
                        "startTime": "2026-11-16T00:00:00Z",
                        "endTime": "2026-11-23T00:00:00Z",
                        "shards": [
                            {
                                "id": 1,
                                "shardOwners": [{"nodeID": 0}],
                                "fileName": "x.1.tar.gz",
                                "size": 10,
                                "compression": 1,
                            }
                        ],
                    }
                ],
                "subscriptions": [],
            }
        ],
    }
    body = restore_bucket_request(source, "neworg", "newbucket")
    assert body["organizationID"] == "neworg" and body["bucketName"] == "newbucket"
    assert body["bucketID"] == "1b2c3d4e5f607182"
    assert body["retentionPolicies"][0]["shardGroups"][0]["shards"][0] == {
        "id": 1,
        "shardOwners": [{"nodeID": 0}],
    }
    assert body["retentionPolicies"][0]["shardGroupDuration"] == 604800000000000


def test_influxdb2_line_protocol_writes_and_the_health_point_not_run_against_a_real_influxdb2(
    influx2: InfluxDB2StandIn,
) -> None:
    eng = engine(influx2.url)
    eng.ensure_target("restored")
    [created] = influx2.calls("POST", "/api/v2/buckets")
    assert created.json()["name"] == "restored"
    lines = [f"m f={i} {1795435200 + i}" for i in range(12_000)]
    assert eng.write_lines(iter(lines), "restored", "s") == 12_000
    writes = influx2.calls("POST", "/api/v2/write")
    assert len(writes) == 3  # batches of 5000
    assert writes[0].query == {"org": [ORG], "bucket": ["restored"], "precision": ["s"]}
    assert writes[0].header("Content-Encoding") == "gzip"
    assert gzip.decompress(writes[2].body).decode().splitlines() == lines[10_000:]
    assert len(points(influx2, "restored")) == 12_000
    eng.write_health("homewatt_backup,kind=hourly,site=home ok=1i 1795435200")
    assert influx2.calls("POST", "/api/v2/write")[-1].query["bucket"] == [BUCKET]
    assert "homewatt_backup,kind=hourly,site=home ok=1i 1795435200" in points(influx2, BUCKET)


def test_influxdb2_bad_token_or_no_server_is_one_clear_error_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    with pytest.raises(
        InfluxError,
        match=r"^full backup: metadata: InfluxDB rejected the token "
        r"\(401 unauthorized\): check the token credential$",
    ):
        engine(influx2.url, token="wrong").dump_full(tmp_path, "x")
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InfluxError, match=rf"^InfluxDB ping: InfluxDB at {dead} is unreachable"):
        engine(dead, attempts=2).version()


def test_influxdb2_server_errors_are_retried_then_reported_not_run_against_a_real_influxdb2(
    influx2: InfluxDB2StandIn,
) -> None:
    answers = iter([Reply(503, b"busy"), Reply(200, b"", {"Content-Type": "text/csv"})])
    influx2.overrides[("POST", "/api/v2/query")] = lambda _r: next(answers)
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    eng = engine(influx2.url, attempts=3)
    eng.http.wait = tenacity.wait_none()
    assert eng.dump_incremental(start, start + timedelta(hours=1), io.StringIO(), "s").lines == 0
    assert len(influx2.calls("POST", "/api/v2/query")) == 2
    influx2.overrides[("POST", "/api/v2/query")] = lambda _r: Reply(500, b"internal error")
    with pytest.raises(InfluxError, match="incremental export: InfluxDB answered 500: internal"):
        eng.dump_incremental(start, start + timedelta(hours=1), io.StringIO(), "s")


def test_influxdb2_non_multipart_metadata_is_refused_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn
) -> None:
    def old_server(_r: Recorded) -> Reply:
        return Reply(200, b"{}", {"Content-Type": "application/json"})

    influx2.overrides[("GET", "/api/v2/backup/metadata")] = old_server
    with pytest.raises(InfluxError, match=r"not multipart \(InfluxDB 2.1 or later is needed\)"):
        engine(influx2.url).dump_full(tmp_path, "x")


@pytest.mark.integration
def test_influxdb2_cli_backup_upload_and_restore_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2StandIn, azurite: Azurite
) -> None:
    container = azurite.new_container()
    site = Site(
        tmp_path / "site",
        {
            "site": "home",
            "influxdb": {
                "engine": "influxdb2",
                "url": influx2.url,
                "org": ORG,
                "bucket": BUCKET,
                "token_credential": "influxdb-operator-token",
            },
            "clock": {"wait_for_sync": False},  # no NTP on the test machines
            "azure": {
                "account_url": azurite.account_url,
                "container": container,
                "retention": "rotation",
                "sas_credential": "azure-sas",
            },
        },
    )
    site.root.mkdir()
    write_secret(site.credentials / "influxdb-operator-token", TOKEN)
    write_secret(site.credentials / "azure-sas", azurite.sas(container, "rcwdl"))
    site.save()
    original = points(influx2, BUCKET)
    daily = site.cli("run", "--kind", "daily")
    assert daily.exit_code == 0, daily.output
    hourly = site.cli("run", "--kind", "hourly")
    assert hourly.exit_code == 0, hourly.output
    blobs = {
        b.name: b.metadata for b in azurite.container(container).list_blobs(include=["metadata"])
    }
    assert len(blobs) == 2
    for meta in blobs.values():
        assert meta["engine"] == "influxdb2" and meta["engineversion"] == VERSION
        assert meta["source"] == f"{ORG}/{BUCKET}" and "verified" not in meta
    verified = VerificationLedger(site.state_dir).verified()
    assert verified == {name: meta["sha256"] for name, meta in blobs.items()}
    health = [gzip.decompress(r.body).decode() for r in influx2.calls("POST", "/api/v2/write")]
    assert [h.split(" ")[0] for h in health] == [
        "homewatt_backup,kind=daily,site=home",
        "homewatt_backup,kind=hourly,site=home",
    ]
    daily_name = next(n for n in blobs if "/daily/" in n)
    refused = site.cli("restore", daily_name)
    assert refused.exit_code == 1 and "already holds data" in refused.stderr
    (site.state_dir / "archives").rename(tmp_path / "gone")  # restore from Azure only
    restored = site.cli("restore", daily_name, "--target", "fresh")
    assert restored.exit_code == 0, restored.output
    [create] = influx2.calls("POST", "/api/v2/restore/bucketMetadata")
    assert create.json()["bucketName"] == "fresh"
    assert len(influx2.calls("POST", "/api/v2/restore/shards/")) == 3
    assert points(influx2, "fresh") == original  # the daily full holds the data before it
    assert yaml.safe_load(site.config_path.read_text())["site"] == "home"
