"""A backup that says ok holds every point: each hourly dump is checked against InfluxDB's own
count of field values per measurement in its range (before and after the dump), each full one
against the shards the engine listed; any shortfall fails the run and its health point, and
nothing is kept. Through the CLI, against real InfluxDB 1.6.7 and the InfluxDB 2 stand-in
(answers reconstructed from v2.7.12's source: NOT a real InfluxDB 2; those tests say so)."""

from __future__ import annotations

import gzip
import json
import stat
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from homewatt_backup.archive import LocalArchives
from homewatt_backup.models import Manifest
from tests.backup.conftest import DB, Site, make_influxdb2_site, make_site, sample_lines
from tests.support.faultproxy import FaultProxy
from tests.support.influxdb1 import InfluxDB1
from tests.support.influxdb2 import InfluxDB2StandIn, Recorded, Reply

pytestmark = pytest.mark.integration

ORG, BUCKET, TOKEN = "homewatt", "homewatt", "stand-in-operator-token"
POINTS = 1000  # timestamps; sample_lines writes 4 points (12 field values) for each
FIELD_VALUES = {"electricity": 10 * POINTS, "homewatt_health": 2 * POINTS}


def four_thousand_points() -> list[str]:
    lines = sample_lines(int(time.time()) - 3500, POINTS, step=3)
    assert len(lines) == 4000
    return lines


def archived(site: Site) -> tuple[Manifest, list[str]]:
    """The newest local archive's manifest and its line protocol (hourly) or file names."""
    [backup] = LocalArchives(site.state_dir).list()[-1:]
    with tarfile.open(LocalArchives(site.state_dir).path_for(backup.id)) as tar:
        manifest = Manifest.from_json(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        if "data.lp.gz" not in tar.getnames():
            return manifest, tar.getnames()
        data = gzip.decompress(tar.extractfile("data.lp.gz").read())  # type: ignore[union-attr]
    return manifest, data.decode().splitlines()


def write2(server: InfluxDB2StandIn, lines: list[str]) -> None:
    response = requests.post(
        f"{server.url}/api/v2/write",
        params={"org": ORG, "bucket": BUCKET, "precision": "s"},
        data="\n".join(lines).encode(),
        headers={"Authorization": f"Token {TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 204, response.text


def health_points(server: InfluxDB2StandIn) -> list[str]:
    bodies = [
        gzip.decompress(r.body) if r.header("Content-Encoding") == "gzip" else r.body
        for r in server.calls("POST", "/api/v2/write")
    ]
    return [b.decode().strip() for b in bodies if b.startswith(b"homewatt_backup")]


def health_fields(line: str) -> dict[str, str]:
    _, fields, _ = line.split(" ")
    return dict(f.split("=") for f in fields.split(","))


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[InfluxDB2StandIn]:
    server = InfluxDB2StandIn(tmp_path / "standin").start()
    try:
        server.setup(org=ORG, bucket=BUCKET, token=TOKEN)
        yield server
    finally:
        server.stop()


def influxdb2_site(tmp_path: Path, server: InfluxDB2StandIn) -> Site:
    return make_influxdb2_site(tmp_path / "site", server.url, org=ORG, bucket=BUCKET, token=TOKEN)


# --- InfluxDB 2 (the stand-in) -------------------------------------------------------------


def test_an_influxdb2_hourly_backup_holds_all_4000_points_not_run_against_a_real_influxdb2(
    tmp_path: Path, standin: InfluxDB2StandIn
) -> None:
    """The field fault: 814 of 4,000 points kept and exit 0. The stand-in streams CRLF CSV in
    chunks as InfluxDB does; lines cut across reads no longer end a table early."""
    write2(standin, four_thousand_points())
    site = influxdb2_site(tmp_path, standin)
    ran = site.cli("run", "--kind", "hourly")
    assert ran.exit_code == 0, ran.output
    manifest, lines = archived(site)
    assert len(lines) == 12 * POINTS  # InfluxDB 2 exports one field value a line
    assert manifest.field_values is not None
    assert manifest.field_values.to_dict() == {
        "before": FIELD_VALUES,
        "archived": FIELD_VALUES,
        "after": FIELD_VALUES,
    }
    assert manifest.lines == 12 * POINTS
    assert (
        "12000 field values archived in 12000 lines; InfluxDB counted 12000 before and "
        "12000 after the dump"
    ) in ran.stderr
    [health] = health_points(standin)
    assert health_fields(health)["ok"] == "1i"


def test_an_influxdb2_export_losing_points_fails_and_keeps_nothing_not_run_against_a_real_influxdb2(
    tmp_path: Path, standin: InfluxDB2StandIn
) -> None:
    write2(standin, four_thousand_points())
    site = influxdb2_site(tmp_path, standin)

    def drop_rows(request: Recorded) -> Reply:
        """The export answer loses every 5th data row of electricity; count() is honest."""
        reply = standin.answer(request)
        if "count()" in request.json()["query"]:
            return reply
        assert not isinstance(reply.body, bytes)
        text = b"".join(reply.body).decode()
        kept = [
            line
            for n, line in enumerate(text.split("\r\n"))
            if not (",electricity," in line and not line.startswith("#") and n % 5 == 0)
        ]
        return Reply(200, "\r\n".join(kept).encode(), reply.headers)

    standin.overrides[("POST", "/api/v2/query")] = drop_rows
    ran = site.cli("run", "--kind", "hourly")
    assert ran.exit_code == 1
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith("homewatt-backup: error: home/hourly/")
    assert " not kept: the export of " in last
    assert "does not match what InfluxDB counted: electricity: " in last
    assert f"archived, InfluxDB counted {FIELD_VALUES['electricity']} before and " in last
    assert "homewatt_health" not in last.split("counted:")[1]
    assert LocalArchives(site.state_dir).list() == []
    assert [p for p in (site.state_dir / "tmp").iterdir()] == []
    [health] = health_points(standin)
    assert health.startswith("homewatt_backup,kind=hourly,site=home ")
    assert health_fields(health)["ok"] == "0i"


def test_points_delivered_during_the_dump_are_allowed_not_run_against_a_real_influxdb2(
    tmp_path: Path, standin: InfluxDB2StandIn
) -> None:
    """A late outbox delivery lands in the range while the dump runs: the archive holds more
    than the first count and at most the second, and the run is ok."""
    lines = four_thousand_points()
    write2(standin, lines)
    site = influxdb2_site(tmp_path, standin)
    late = [line.replace("collector", "late") for line in lines if "homewatt_health" in line][:7]
    exports = []

    def deliver_late(request: Recorded) -> Reply:
        if "count()" not in request.json()["query"] and not exports:
            exports.append(request)
            write2(standin, late)  # arrives after the first count, before the export
        return standin.answer(request)

    standin.overrides[("POST", "/api/v2/query")] = deliver_late
    ran = site.cli("run", "--kind", "hourly")
    assert ran.exit_code == 0, ran.output
    manifest, _ = archived(site)
    assert manifest.field_values is not None
    assert manifest.field_values.before == FIELD_VALUES
    grown = {**FIELD_VALUES, "homewatt_health": FIELD_VALUES["homewatt_health"] + 14}
    assert manifest.field_values.archived == grown == manifest.field_values.after


def test_an_influxdb2_shard_cut_short_fails_the_full_backup_not_run_against_a_real_influxdb2(
    tmp_path: Path, standin: InfluxDB2StandIn
) -> None:
    write2(standin, four_thousand_points())
    site = influxdb2_site(tmp_path, standin)

    def truncated(request: Recorded) -> Reply:
        whole = gzip.compress(standin.store.shard_archive(int(request.path.rsplit("/", 1)[1])))
        headers = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}
        return Reply(200, whole[: len(whole) // 2], headers)

    [bucket_id] = [b["id"] for b in standin.store.all("buckets") if b["name"] == BUCKET]
    shard_id = standin.store.shard_groups(bucket_id)[0].shard_id
    standin.overrides[("GET", f"/api/v2/backup/shards/{shard_id}")] = truncated
    ran = site.cli("run", "--kind", "daily")
    assert ran.exit_code == 1
    assert f"full backup: shard {shard_id} (" in ran.stderr
    assert "is incomplete or unreadable" in ran.stderr
    assert LocalArchives(site.state_dir).list() == []


# --- InfluxDB 1.6.7 ------------------------------------------------------------------------


def test_an_influxdb1_hourly_backup_holds_all_4000_points(
    tmp_path: Path, influxdb1: InfluxDB1
) -> None:
    influxdb1.write(DB, four_thousand_points())
    site = make_site(tmp_path / "site", influxdb1)
    ran = site.cli("run", "--kind", "hourly")
    assert ran.exit_code == 0, ran.output
    manifest, lines = archived(site)
    assert len(lines) == 4000  # InfluxDB 1.x exports a point (all its fields) a line
    assert manifest.field_values is not None
    assert manifest.field_values.to_dict() == {
        "before": FIELD_VALUES,
        "archived": FIELD_VALUES,
        "after": FIELD_VALUES,
    }


def test_an_influxdb1_export_that_lost_points_fails_the_run_and_its_health_point(
    tmp_path: Path, influxdb1: InfluxDB1
) -> None:
    influxdb1.write(DB, four_thousand_points())
    proxy = FaultProxy(int(influxdb1.url.rsplit(":", 1)[1])).start()
    try:

        def lose_values(path: str, body: bytes) -> bytes | None:
            """The chunked SELECT of electricity answers one row less per series."""
            if "SELECT+%2A+FROM" not in path or "electricity" not in path:
                return None
            out = []
            for line in body.decode().splitlines():
                answer = json.loads(line)
                for result in answer.get("results", []):
                    for series in result.get("series", []):
                        series["values"] = series["values"][:-1]
                out.append(json.dumps(answer))
            return ("\n".join(out) + "\n").encode()

        proxy.rewrite_answers(lose_values)
        site = make_site(tmp_path / "site", influxdb1)
        site.config["influxdb"]["url"] = proxy.url
        site.save()
        ran = site.cli("run", "--kind", "hourly")
    finally:
        proxy.stop()
    assert ran.exit_code == 1
    assert "does not match what InfluxDB counted: electricity: " in ran.stderr
    assert LocalArchives(site.state_dir).list() == []
    [series] = influxdb1.query("SELECT ok FROM homewatt_backup", db=DB)[0]["series"]
    assert [row[1] for row in series["values"]] == [0]


def fake_influxd(tmp_path: Path, then: str) -> Path:
    """`influxd` that runs the real one, then damages what it wrote (a shell snippet with the
    backup directory in $dir): a full disk, a bug, a shard lost on the way."""
    script = tmp_path / "influxd"
    script.write_text(
        "#!/bin/sh\n"
        "real=$(command -v influxd)\n"
        '"$real" "$@" || exit $?\n'
        "for dir; do :; done\n"
        f"{then}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            'f=$(ls "$dir"/*.s*.tar.gz | head -n 1); head -c 100 "$f" > "$f.x"; mv "$f.x" "$f"',
            "is incomplete or unreadable",
        ),
        (
            'rm "$dir"/*.manifest; printf \'{"files": []}\' > "$dir/x.manifest"',
            "(SHOW SHARDS) is not in the backup influxd made",
        ),
    ],
    ids=["a shard file cut short", "a shard missing from influxd's manifest"],
)
def test_an_influxdb1_full_backup_missing_a_shard_fails(
    tmp_path: Path, influxdb1: InfluxDB1, damage: str, expected: str
) -> None:
    influxdb1.write(DB, four_thousand_points())
    site = make_site(tmp_path / "site", influxdb1)
    site.config["influxdb"]["influxd"] = str(fake_influxd(tmp_path, damage))
    site.save()
    ran = site.cli("run", "--kind", "daily")
    assert ran.exit_code == 1
    assert "full backup from " in ran.stderr and expected in ran.stderr
    assert LocalArchives(site.state_dir).list() == []
