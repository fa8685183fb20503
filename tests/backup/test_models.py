"""Backup names follow the contract's pattern; manifests survive a JSON round trip."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from homewatt_backup.models import (
    SITE_PATTERN,
    ArchiveRecord,
    BackupId,
    Engine,
    ExtraBucket,
    FieldValueCheck,
    FileEntry,
    Kind,
    Manifest,
    RemoteBackup,
    ShardRecord,
    extra_member,
    site_ok,
)

CONTRACT = json.loads(
    (Path(__file__).resolve().parents[2] / "contracts" / "backup-azure.json").read_text()
)


def contract_regex() -> re.Pattern[str]:
    pattern = CONTRACT["blob_name_pattern"]
    assert pattern == "<site>/<kind>/<UTC timestamp YYYYMMDDTHHMMSSZ>[.r<N>].<ext>"
    kinds = "|".join(CONTRACT["backup_kinds"])
    return re.compile(rf"^[a-z0-9-]+/({kinds})/\d{{8}}T\d{{6}}Z(\.r[1-9]\d{{0,3}})?\.[a-z.]+$")


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=0)),
    st.sampled_from(list(Kind)),
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
)
def test_backup_names_match_the_contract_pattern_and_parse_back(
    ts: datetime, kind: Kind, site: str
) -> None:
    backup_id = BackupId(ts, kind, site)
    assert contract_regex().match(backup_id.name)
    assert BackupId.parse(backup_id.name) == backup_id
    for revision in (1, 9999):  # a re-upload after a failed verification
        name = backup_id.blob_name(revision)
        assert contract_regex().match(name)
        assert name.startswith(f"{site}/{kind.value}/") and name.endswith(f".r{revision}.tar")
        assert BackupId.parse_blob(name) == (backup_id, revision)
    assert BackupId.parse_blob(backup_id.stem + ".r0.tar") is None  # revision 0 has no suffix


def test_backup_kinds_are_the_contracts() -> None:
    assert [k.value for k in Kind] == CONTRACT["backup_kinds"]


def test_names_that_are_not_backups_do_not_parse() -> None:
    for name in [
        "home/hourly/20261123T190000Z.tar.partial",
        "home/weekly/20261123T190000Z.tar",
        "home/hourly/2026-11-23.tar",
        "../home/hourly/20261123T190000Z.tar",
        "x",
    ]:
        assert BackupId.parse(name) is None


def test_manifest_and_record_round_trip_through_json() -> None:
    created = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    manifest = Manifest(
        "home",
        Kind.HOURLY,
        created,
        Engine.INFLUXDB1,
        "1.6.7",
        "homewatt",
        datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        created,
        "s",
        (FileEntry("data.lp.gz", 10, "ab" * 32),),
        lines=3,
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    record = ArchiveRecord(manifest, "cd" * 32, 2048, "bWQ1")
    assert ArchiveRecord.from_json(record.to_json()) == record
    meta = record.blob_metadata()
    assert meta["sha256"] == "cd" * 32
    assert meta["rangestart"] == "2026-11-23T12:00:00Z"
    assert meta["engineversion"] == "1.6.7"
    assert all(re.fullmatch(r"[a-z][a-z0-9]*", k) for k in meta)  # valid Azure metadata names
    assert all(v.isascii() for v in meta.values())


def test_a_full_manifest_keeps_each_shards_counts_and_reads_earlier_ones_without() -> None:
    created = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    week = datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    shards = (
        ShardRecord(3, "saved", "influxdb1/x.s3.tar.gz", 4096, "autogen", *week, {"e": 12}),
        ShardRecord(4, "expired"),
    )
    manifest = Manifest(
        "home", Kind.DAILY, created, Engine.INFLUXDB1, "1.6.7", "homewatt", None, created, "s",
        (FileEntry("influxdb1/x.s3.tar.gz", 4096, "ab" * 32),), shards=shards,
    )  # fmt: skip
    data = json.loads(manifest.to_json())
    assert data["shards"] == [
        {
            "id": 3,
            "state": "saved",
            "file": "influxdb1/x.s3.tar.gz",
            "size": 4096,
            "retention_policy": "autogen",
            "start": "2026-11-16T00:00:00Z",
            "end": "2026-11-23T00:00:00Z",
            "field_values": {"e": 12},
        },
        {"id": 4, "state": "expired"},
    ]
    assert Manifest.from_json(manifest.to_json()) == manifest
    data["shards"][0] = {"id": 3, "state": "saved", "file": "influxdb1/x.s3.tar.gz", "size": 1}
    earlier = Manifest.from_dict(data).shards[0]
    assert earlier == ShardRecord(3, "saved", "influxdb1/x.s3.tar.gz", 1)
    assert earlier.field_values is None


def test_the_site_pattern_is_the_contracts() -> None:
    """The app ships without the repository, so it defines the pattern itself: it must be the
    contract's string (tests/terraform/test_contract.py holds Terraform's `sites` to it)."""
    assert CONTRACT["site_pattern"] == SITE_PATTERN
    for site in CONTRACT["site_examples"]["valid"]:
        assert site_ok(site), site
    for site in CONTRACT["site_examples"]["invalid"]:
        assert not site_ok(site), site


def test_backup_names_of_sites_terraform_refuses_do_not_parse() -> None:
    ts = "20261123T190000Z"
    assert BackupId.parse(f"{'a' * 40}/daily/{ts}.tar") is not None
    for site in ("a" * 41, "a--b", "home-", "-home"):
        assert BackupId.parse(f"{site}/daily/{ts}.tar") is None, site


def test_a_remote_backup_is_verified_by_the_ledger_or_the_legacy_metadata_key() -> None:
    name = "home/daily/20261123T030000Z.tar"
    backup_id = BackupId.parse(name)
    assert backup_id is not None
    created = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    plain = RemoteBackup(backup_id, 1, created, {"sha256": "ab" * 32})
    assert plain.is_verified({name: "ab" * 32})
    assert not plain.is_verified({})
    assert not plain.is_verified({name: "cd" * 32})  # verified content was another blob's
    assert not plain.is_verified({"home/daily/20261124T030000Z.tar": "ab" * 32})
    legacy = RemoteBackup(backup_id, 1, created, {"sha256": "ab" * 32, "verified": "2026-11-23"})
    assert legacy.is_verified({})  # made by a version that wrote `verified` into the blob
    no_checksum = RemoteBackup(backup_id, 1, created, {"verified": "2026-11-23"})
    assert not no_checksum.is_verified({name: ""})


@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4, unique=True))
def test_extra_buckets_get_safe_distinct_members_and_survive_the_manifest_and_metadata(
    buckets: list[str],
) -> None:
    members = [extra_member(b) for b in buckets]
    assert len(set(members)) == len(buckets)  # no two buckets share a member
    for member in members:
        assert member.isascii() and member.startswith("data/") and member.endswith(".lp.gz")
        assert "/" not in member.removeprefix("data/") and "," not in member
    created = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    check = FieldValueCheck({"energy_cost": 2}, {"energy_cost": 2}, {"energy_cost": 2})
    extras = tuple(ExtraBucket(b, extra_member(b), 1, check) for b in buckets)
    manifest = Manifest(
        "home", Kind.HOURLY, created, Engine.INFLUXDB2, "2.7.12", "homewatt/homewatt", created,
        created, "s", (), extra_buckets=extras,
    )  # fmt: skip
    assert Manifest.from_json(manifest.to_json()) == manifest
    meta = ArchiveRecord(manifest, "cd" * 32, 2048, "bWQ1").blob_metadata()
    assert meta["extrabuckets"].isascii()
    blob = RemoteBackup(manifest.backup_id, 2048, created, meta)
    assert blob.extra_buckets == tuple(buckets)


def test_a_manifest_of_the_single_bucket_version_reads_with_no_extra_buckets() -> None:
    created = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    manifest = Manifest(
        "home", Kind.DAILY, created, Engine.INFLUXDB2, "2.7.12", "homewatt/homewatt", None,
        created, "s", (), shards=(ShardRecord(1, "saved", "influxdb2/x.1.tar.gz", 10),),
    )  # fmt: skip
    data = manifest.to_dict()
    del data["extra_buckets"]
    data["shards"] = [{"id": 1, "state": "saved", "file": "influxdb2/x.1.tar.gz", "size": 10}]
    assert Manifest.from_dict(data) == manifest
    assert "extrabuckets" not in ArchiveRecord(manifest, "cd" * 32, 1, "bWQ1").blob_metadata()
    assert RemoteBackup(manifest.backup_id, 1, created, {}).extra_buckets == ()
