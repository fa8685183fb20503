"""The backup writes line protocol with homewatt_common's encoder: what a real InfluxDB 1.6.7
and the InfluxDB 2 stand-in hold for each case of contracts/line-protocol.json is exported by
the backup's engines as exactly the case's line (that line's own round trip through InfluxDB
1.6.7 is tests/common/test_lineprotocol.py's). Hourly archives made by the backup's former
encoder (manifest without `line_protocol`) doubled every backslash in names: restore rewrites
their lines, so they restore what was backed up, proven through a real restore into InfluxDB
1.6.7. The InfluxDB 2 path runs against the stand-in (its parser and annotated CSV are
reconstructed from InfluxDB 2.7.12's sources), not a real InfluxDB 2, which cannot run here."""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from homewatt_backup.archive import LocalArchives
from homewatt_backup.config import NO_SECRETS, InfluxDB1Config, InfluxDB2Config, Secrets
from homewatt_backup.engines import DatabaseEngine, make_engine
from homewatt_backup.errors import CorruptArchiveError, InfluxError
from homewatt_backup.legacy_lines import rewrite_legacy_line
from homewatt_backup.models import Engine, Kind, Manifest
from homewatt_backup.restore import Restorer, filtered_lines
from homewatt_backup.runner import health_line
from homewatt_common.lineprotocol import (
    FieldValue,
    Unsigned,
    encode_line,
    line_timestamp,
    read_lines,
)
from tests.backup.test_influxdb2_http import ORG, TOKEN, create_bucket, write
from tests.support.influxdb1 import InfluxDB1
from tests.support.influxdb2 import InfluxDB2StandIn
from tests.support.lineprotocol_cases import CASES, Case, expected_point, stored_points

START = datetime.fromtimestamp(CASES[0].ts - 60, UTC)
STOP = datetime.fromtimestamp(CASES[0].ts + 3600, UTC)
IN_INFLUXDB1 = [c for c in CASES if "influxdb1" not in c.skip]


@pytest.fixture(scope="module")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path_factory.mktemp("backup-lineprotocol") / "influxdb1").start()
    try:
        yield server
    finally:
        server.stop()


def _influxdb1_engine(server: InfluxDB1, db: str) -> DatabaseEngine:
    config = InfluxDB1Config(
        engine="influxdb1", url=server.url, database=db, rpc_address=server.rpc_address
    )
    return make_engine(config, NO_SECRETS)


def _dump(engine: DatabaseEngine) -> list[str]:
    out = io.StringIO()
    engine.dump_incremental(START, STOP, out, "s")
    return list(read_lines([out.getvalue()]))


@pytest.mark.parametrize("case", IN_INFLUXDB1, ids=[c.name for c in IN_INFLUXDB1])
def test_the_influxdb1_export_of_each_case_is_the_contracts_line(
    case: Case, influxdb1: InfluxDB1
) -> None:
    db = f"export{CASES.index(case)}"
    influxdb1.create_database(db)
    influxdb1.write(db, [case.line])
    assert _dump(_influxdb1_engine(influxdb1, db)) == [case.line + "\n"]


@pytest.fixture(scope="module")
def influx2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB2StandIn]:
    server = InfluxDB2StandIn(tmp_path_factory.mktemp("backup-lineprotocol") / "standin").start()
    try:
        server.setup(org=ORG, bucket="first", token=TOKEN)
        yield server
    finally:
        server.stop()


# Annotated CSV writes a null and an empty string alike (an empty cell), and the export reads an
# empty cell as null: an empty string field is not exported from InfluxDB 2 (known, left open).
IN_INFLUXDB2 = [c for c in CASES if '=""' not in c.line]


@pytest.mark.parametrize("case", IN_INFLUXDB2, ids=[c.name for c in IN_INFLUXDB2])
def test_the_influxdb2_export_of_each_case_is_the_contracts_line_standin(
    case: Case, influx2: InfluxDB2StandIn
) -> None:
    bucket = f"export{CASES.index(case)}"
    create_bucket(influx2, bucket)
    write(influx2, bucket, [case.line])
    engine = make_engine(
        InfluxDB2Config(
            engine="influxdb2", url=influx2.url, org=ORG, bucket=bucket, token_credential="t"
        ),
        Secrets(TOKEN, None, None),
    )
    # annotated CSV holds one field per row: one line per field, each as the encoder writes it
    want = sorted(
        encode_line(case.measurement, case.tags, {key: case.fields[key]}, case.ts) + "\n"
        for key in case.stored_fields
    )
    assert sorted(_dump(engine)) == want


def test_the_health_point_is_written_by_the_shared_encoder() -> None:
    line = health_line(
        "home",
        Kind.HOURLY,
        ok=True,
        duration_s=1.23456,
        size=2048,
        pending=0,
        timestamp=1700000000,
        sas_expires_in_days=9.754,
    )
    assert line == (
        "homewatt_backup,kind=hourly,site=home bytes=2048i,duration_s=1.235,ok=1i,"
        "pending_uploads=0i,sas_expires_in_days=9.75 1700000000"
    )


# ---- archives of the former encoder (line_protocol 1)


def _legacy_name(text: str, specials: str) -> str:
    """How the backup's encoder before homewatt_common (backup/src/homewatt_backup/
    lineprotocol.py, replaced in this change) escaped a name: every backslash doubled first,
    then the special characters and a newline (as `\\n`)."""
    text = text.replace("\\", "\\\\")
    for char in specials:
        text = text.replace(char, "\\" + char)
    return text.replace("\n", "\\n")


def _legacy_value(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Unsigned):
        return f"{int(value)}u"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def legacy_line(case: Case, ts: int) -> str:
    """The line the former encoder wrote for `case` at `ts` (its rules, the fixture's source)."""
    head = _legacy_name(case.measurement, ", ")
    for key in sorted(case.tags):
        if case.tags[key]:
            head += f",{_legacy_name(key, ',= ')}={_legacy_name(case.tags[key], ',= ')}"
    fields = []
    for key in sorted(case.fields):
        value = _legacy_value(case.fields[key])
        if value is not None:
            fields.append(f"{_legacy_name(key, ',= ')}={value}")
    return f"{head} {','.join(fields)} {ts}"


WITH_BACKSLASHES = [c for c in CASES if "\\" in legacy_line(c, c.ts).split(" ", 1)[0]]


def test_the_former_encoding_differs_only_in_names_with_backslashes() -> None:
    """The two encoders' bytes are equal for every case whose names hold no backslash; the
    contract has cases that differ (else this change would need no rewrite)."""
    assert WITH_BACKSLASHES
    for case in CASES:
        names = [case.measurement, *case.tags, *case.tags.values(), *case.fields]
        if not any("\\" in name for name in names):
            assert legacy_line(case, case.ts) == case.line, case.name
        else:
            assert legacy_line(case, case.ts) != case.line, case.name


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_former_line_is_rewritten_to_the_contracts_line(case: Case) -> None:
    assert rewrite_legacy_line(legacy_line(case, case.ts) + "\n") == case.line + "\n"


def test_a_former_line_with_a_name_ending_in_a_backslash_is_refused_by_name(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data.lp.gz"
    with gzip.open(data, "wt", encoding="utf-8") as out:
        out.write("m f=1.0 1700000000\nelectricity,device=C:\\\\ power_w=1.0 1700000001\n")
    lines = filtered_lines(data, None, legacy=True, name="home/hourly/20261123T190000Z")
    assert next(lines) == "m f=1.0 1700000000\n"
    with pytest.raises(CorruptArchiveError) as refused:
        next(lines)
    assert str(refused.value).startswith(
        "home/hourly/20261123T190000Z: line 2 of data.lp.gz cannot be restored: "
        "tag value 'C:\\\\' ends with a backslash"
    )


def test_a_string_field_with_a_newline_stays_one_line_for_a_point_in_time_restore(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data.lp.gz"
    text = 'm note="line one\nline two 1700000009" 1700000000\nm f=1.0 1700000009\n'
    with gzip.open(data, "wt", encoding="utf-8") as out:
        out.write(text)
    assert list(filtered_lines(data, None)) == list(read_lines([text]))
    assert list(filtered_lines(data, 1700000005)) == [
        'm note="line one\nline two 1700000009" 1700000000\n'
    ]
    assert line_timestamp('m note="a 12"') is None
    assert line_timestamp("# comment 12") is None


def _archive(
    root: Path, lines: list[str], legacy: bool, monkeypatch: pytest.MonkeyPatch
) -> LocalArchives:
    data = root / "data.lp.gz"
    with gzip.open(data, "wt", encoding="utf-8") as out:
        out.write("".join(line + "\n" for line in lines))
    created = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    manifest = Manifest(
        "home",
        Kind.HOURLY,
        created,
        Engine.INFLUXDB1,
        "1.6.7",
        "homewatt",
        START,
        STOP,
        "s",
        (),
        lines=len(lines),
    )
    archives = LocalArchives(root / "state")
    archives.prepare()
    with monkeypatch.context() as patch:
        if legacy:  # exactly what the former version wrote: no line_protocol key
            to_dict = Manifest.to_dict
            patch.setattr(
                Manifest,
                "to_dict",
                lambda self: {k: v for k, v in to_dict(self).items() if k != "line_protocol"},
            )
        archives.write(manifest, [("data.lp.gz", data)])
    return archives


@pytest.mark.parametrize("legacy", [True, False], ids=["former encoder", "shared encoder"])
def test_an_hourly_archive_of_either_encoder_restores_what_was_backed_up(
    legacy: bool, influxdb1: InfluxDB1, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # distinct timestamps: some cases share a series
    stamped = [(case, case.ts + index) for index, case in enumerate(IN_INFLUXDB1)]
    lines = [
        legacy_line(case, ts)
        if legacy
        else encode_line(case.measurement, case.tags, case.fields, ts)
        for case, ts in stamped
    ]
    archives = _archive(tmp_path, lines, legacy, monkeypatch)
    [backup] = archives.list()
    assert backup.record.manifest.line_protocol == (1 if legacy else 2)
    target = f"restored_{'legacy' if legacy else 'shared'}"
    restorer = Restorer(_influxdb1_engine(influxdb1, "unused"), None, archives)
    restorer.restore(backup.id, target)
    stored = sorted(stored_points(influxdb1, target), key=lambda point: point[2])
    assert stored == [expected_point(case, ts) for case, ts in stamped]


def test_a_point_influxdb1_holds_but_line_protocol_2_refuses_fails_the_export_by_name(
    influxdb1: InfluxDB1,
) -> None:
    """InfluxDB 1.x stores a tag key `_field` (contracts/line-protocol.json: 2.x refuses it);
    the export says which point instead of writing an archive that cannot be restored."""
    influxdb1.create_database("reserved")
    influxdb1.write("reserved", [f"m,_field=x f=1.0 {CASES[0].ts}"])
    with pytest.raises(InfluxError) as refused:
        _dump(_influxdb1_engine(influxdb1, "reserved"))
    assert str(refused.value) == (
        f"incremental export of 'm': a point at {CASES[0].ts} cannot be written back: "
        "tag key '_field' is reserved: InfluxDB refuses the point"
    )


def test_a_carriage_return_in_a_string_field_is_restored_as_it_is(tmp_path: Path) -> None:
    """The archive is read with newline="\\n": universal newlines would turn it into "\\n"."""
    data = tmp_path / "data.lp.gz"
    with gzip.open(data, "wt", encoding="utf-8", newline="") as out:
        out.write('m note="a\rb\r\nc" 1700000000\nm f=1.0 1700000001\n')
    assert list(filtered_lines(data, None)) == [
        'm note="a\rb\r\nc" 1700000000\n',
        "m f=1.0 1700000001\n",
    ]
