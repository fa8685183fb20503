"""The InfluxDB 2 engine, checked against a recording HTTP stub: request construction,
manifest handling and error mapping. NOT run against a real InfluxDB 2 (none can run here);
each test name says so."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from homewatt_backup.config import InfluxDB2Config, Secrets
from homewatt_backup.dump import (
    InfluxDB2Engine,
    InfluxHTTP,
    annotated_csv_to_lines,
    restore_bucket_request,
)
from homewatt_backup.errors import InfluxError
from homewatt_backup.ledger import VerificationLedger
from tests.backup import influxdb2_stub as stub
from tests.backup.conftest import Site, write_secret
from tests.backup.influxdb2_stub import InfluxDB2Stub, Recorded, Reply
from tests.support.azurite import Azurite
from tests.support.processes import free_port


@pytest.fixture
def influx2() -> Iterator[InfluxDB2Stub]:
    server = InfluxDB2Stub().start()
    try:
        yield server
    finally:
        server.stop()


def engine(url: str, token: str = stub.TOKEN, attempts: int = 1) -> InfluxDB2Engine:
    config = InfluxDB2Config(
        engine="influxdb2",
        url=url,
        org=stub.ORG,
        bucket=stub.BUCKET,
        token_credential="influxdb-token",
        timeout_s=5,
    )
    http = InfluxHTTP(url, 5, headers={"Authorization": f"Token {token}"}, attempts=attempts)
    return InfluxDB2Engine(config, Secrets(token, None, None), http=http)


def test_influxdb2_full_backup_fetches_the_buckets_shards_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2Stub
) -> None:
    payload = engine(influx2.url).dump_full(tmp_path, "20261123T030000Z")
    names = [name for name, _ in payload]
    assert names == [
        "influxdb2/20261123T030000Z.1.tar.gz",
        "influxdb2/20261123T030000Z.2.tar.gz",
        "influxdb2/20261123T030000Z.bolt.gz",
        "influxdb2/20261123T030000Z.manifest",
        "influxdb2/20261123T030000Z.sqlite.gz",
    ]
    [metadata] = influx2.calls("GET", "/api/v2/backup/metadata")
    assert metadata.headers["Authorization"] == f"Token {stub.TOKEN}"
    assert metadata.headers["Accept-Encoding"] == "gzip"
    shards = [r.path for r in influx2.calls("GET", "/api/v2/backup/shards/")]
    assert shards == [
        "/api/v2/backup/shards/1",
        "/api/v2/backup/shards/2",
        "/api/v2/backup/shards/3",
    ]  # not shard 9 (another bucket)
    files = dict(payload)
    kv = files["influxdb2/20261123T030000Z.bolt.gz"]
    assert gzip.decompress(kv.read_bytes()) == stub.KV_BYTES
    assert (
        gzip.decompress(files["influxdb2/20261123T030000Z.1.tar.gz"].read_bytes())
        == stub.SHARD_BYTES[1]
    )
    # the `influx backup` manifest layout (influx-cli manifestVersion 2): `influx restore` can
    # read an extracted archive; shard 3 vanished during the backup (404) and is left out
    manifest = json.loads(files["influxdb2/20261123T030000Z.manifest"].read_text())
    assert manifest["manifestVersion"] == 2
    assert manifest["kv"] == {
        "fileName": "20261123T030000Z.bolt.gz",
        "compression": 1,
        "size": files["influxdb2/20261123T030000Z.bolt.gz"].stat().st_size,
    }
    [bucket] = manifest["buckets"]
    assert bucket["bucketName"] == stub.BUCKET
    groups = bucket["retentionPolicies"][0]["shardGroups"]
    assert [[s["id"] for s in g["shards"]] for g in groups] == [[1], [2], []]
    assert groups[0]["shards"][0]["fileName"] == "20261123T030000Z.1.tar.gz"
    assert groups[0]["shards"][0]["shardOwners"] == [{"nodeID": 0}]


def test_influxdb2_hourly_export_is_flux_per_chunk_to_lines_not_run_against_a_real_influxdb2(
    influx2: InfluxDB2Stub,
) -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    out = io.StringIO()
    count = engine(influx2.url).dump_incremental(start, start + timedelta(hours=2), out, "s")
    queries = influx2.calls("POST", "/api/v2/query")
    assert len(queries) == 2  # one query per query_chunk_hours window
    assert queries[0].query == {"org": [stub.ORG]}
    body = queries[0].json()
    assert body["query"] == (
        'from(bucket: "homewatt")\n'
        "  |> range(start: 2026-11-23T10:00:00Z, stop: 2026-11-23T11:00:00Z)"
    )
    assert body["dialect"]["annotations"] == ["datatype", "group", "default"]
    assert queries[1].json()["query"].endswith("stop: 2026-11-23T12:00:00Z)")
    assert queries[0].headers["Accept"] == "application/csv"
    assert out.getvalue().splitlines() == stub.EXPECTED_LINES * 2
    assert count == 10


def test_annotated_csv_precision_and_error_tables_not_run_against_a_real_influxdb2() -> None:
    lines = list(annotated_csv_to_lines(stub.ANNOTATED_CSV.splitlines(), "ms"))
    assert lines[1].endswith(" 1795435202500")  # 12:00:02.5 in milliseconds
    with pytest.raises(
        InfluxError,
        match=r"query error: failed to initialize execute state: "
        r'could not find bucket "nope"',
    ):
        list(annotated_csv_to_lines(stub.ERROR_CSV.splitlines(), "s"))


def test_influxdb2_restore_makes_bucket_then_posts_shards_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2Stub
) -> None:
    eng = engine(influx2.url)
    work = tmp_path / "backup"
    work.mkdir()
    payload = eng.dump_full(work, "20261123T030000Z")
    assert all(path.is_relative_to(work) for _, path in payload)
    assert eng.target_state("restored") == "absent"
    eng.restore_full(work, "restored", merge=False)
    [create] = influx2.calls("POST", "/api/v2/restore/bucketMetadata")
    body = create.json()
    assert body["bucketName"] == "restored" and body["organizationID"] == stub.ORG_ID
    shards = body["retentionPolicies"][0]["shardGroups"][0]["shards"]
    assert shards == [{"id": 1, "shardOwners": [{"nodeID": 0}]}]  # file details dropped
    posts = influx2.calls("POST", "/api/v2/restore/shards/")
    assert [r.path for r in posts] == ["/api/v2/restore/shards/501", "/api/v2/restore/shards/502"]
    assert posts[0].headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(posts[0].body) == stub.SHARD_BYTES[1]
    assert influx2.calls("DELETE", "/api/v2/buckets/") == []


def test_influxdb2_merge_restore_uses_a_temporary_bucket_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2Stub
) -> None:
    eng = engine(influx2.url)
    eng.dump_full(tmp_path, "20261123T030000Z")
    eng.restore_full(tmp_path, stub.BUCKET, merge=True)
    [create] = influx2.calls("POST", "/api/v2/restore/bucketMetadata")
    temp = create.json()["bucketName"]
    assert temp.startswith(f"{stub.BUCKET}-restore-")
    copy = influx2.calls("POST", "/api/v2/query")[-1].json()["query"]
    assert copy == (
        f'from(bucket: "{temp}")\n  |> range(start: 0)\n  |> to(bucket: "{stub.BUCKET}")'
    )
    [delete] = influx2.calls("DELETE", "/api/v2/buckets/")
    assert delete.path == f"/api/v2/buckets/{influx2.buckets[temp]}"


def test_restore_request_keeps_the_manifest_but_the_target_not_run_against_a_real_influxdb2() -> (
    None
):
    source: dict[str, Any] = json.loads(json.dumps(stub.METADATA_BUCKETS[0]))
    source["retentionPolicies"][0]["shardGroups"][0]["shards"][0].update(
        fileName="x.1.tar.gz", size=10, compression=1
    )
    body = restore_bucket_request(source, "neworg", "newbucket")
    assert body["organizationID"] == "neworg" and body["bucketName"] == "newbucket"
    assert body["bucketID"] == stub.BUCKET_ID
    assert body["retentionPolicies"][0]["shardGroups"][0]["shards"][0] == {
        "id": 1,
        "shardOwners": [{"nodeID": 0}],
    }
    assert body["retentionPolicies"][0]["shardGroupDuration"] == 604800000000000


def test_influxdb2_line_protocol_writes_and_the_health_point_not_run_against_a_real_influxdb2(
    influx2: InfluxDB2Stub,
) -> None:
    eng = engine(influx2.url)
    lines = [f"m f={i} {1795435200 + i}" for i in range(12_000)]
    assert eng.write_lines(iter(lines), "restored", "s") == 12_000
    writes = influx2.calls("POST", "/api/v2/write")
    assert len(writes) == 3  # batches of 5000
    assert writes[0].query == {"org": [stub.ORG], "bucket": ["restored"], "precision": ["s"]}
    assert writes[0].headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(writes[2].body).decode().splitlines() == lines[10_000:]
    eng.write_health("homewatt_backup,kind=hourly,site=home ok=1i 1795435200")
    assert influx2.calls("POST", "/api/v2/write")[-1].query["bucket"] == [stub.BUCKET]


def test_influxdb2_bad_token_or_no_server_is_one_clear_error_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2Stub
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
    influx2: InfluxDB2Stub,
) -> None:
    answers = iter([Reply(503, b"busy"), Reply(200, b"", {"Content-Type": "text/csv"})])
    influx2.overrides[("POST", "/api/v2/query")] = lambda _r: next(answers)
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    eng = engine(influx2.url, attempts=3)
    eng.http.wait = __import__("tenacity").wait_none()
    assert eng.dump_incremental(start, start + timedelta(hours=1), io.StringIO(), "s") == 0
    assert len(influx2.calls("POST", "/api/v2/query")) == 2
    influx2.overrides[("POST", "/api/v2/query")] = lambda _r: Reply(500, b"internal error")
    with pytest.raises(InfluxError, match="incremental export: InfluxDB answered 500: internal"):
        eng.dump_incremental(start, start + timedelta(hours=1), io.StringIO(), "s")


def test_influxdb2_non_multipart_metadata_is_refused_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2Stub
) -> None:
    def old_server(_r: Recorded) -> Reply:
        return Reply(200, b"{}", {"Content-Type": "application/json"})

    influx2.overrides[("GET", "/api/v2/backup/metadata")] = old_server
    with pytest.raises(InfluxError, match=r"not multipart \(InfluxDB 2.1 or later is needed\)"):
        engine(influx2.url).dump_full(tmp_path, "x")


@pytest.mark.integration
def test_influxdb2_cli_backup_upload_and_restore_not_run_against_a_real_influxdb2(
    tmp_path: Path, influx2: InfluxDB2Stub, azurite: Azurite
) -> None:
    container = azurite.new_container()
    site = Site(
        tmp_path / "site",
        {
            "site": "home",
            "influxdb": {
                "engine": "influxdb2",
                "url": influx2.url,
                "org": stub.ORG,
                "bucket": stub.BUCKET,
                "token_credential": "influxdb-token",
            },
            "azure": {
                "account_url": azurite.account_url,
                "container": container,
                "retention": "rotation",
                "sas_credential": "azure-sas",
            },
        },
    )
    site.root.mkdir()
    write_secret(site.credentials / "influxdb-token", stub.TOKEN)
    write_secret(site.credentials / "azure-sas", azurite.sas(container, "rcwdl"))
    site.save()
    daily = site.cli("run", "--kind", "daily")
    assert daily.exit_code == 0, daily.output
    hourly = site.cli("run", "--kind", "hourly")
    assert hourly.exit_code == 0, hourly.output
    blobs = {
        b.name: b.metadata for b in azurite.container(container).list_blobs(include=["metadata"])
    }
    assert len(blobs) == 2
    for meta in blobs.values():
        assert meta["engine"] == "influxdb2" and meta["engineversion"] == stub.VERSION
        assert meta["source"] == f"{stub.ORG}/{stub.BUCKET}" and "verified" not in meta
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
    assert len(influx2.calls("POST", "/api/v2/restore/shards/")) == 2
    assert yaml.safe_load(site.config_path.read_text())["site"] == "home"
