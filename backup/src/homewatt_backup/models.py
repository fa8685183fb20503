"""Value types shared by every module: backup identity, manifest, archive record."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Container, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# Line protocol timestamp precisions: units per second.
PRECISION_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
ARCHIVE_EXT = "tar"
MANIFEST_FORMAT = 1
# How an hourly archive's data.lp.gz escapes names (the manifest's `line_protocol`):
# 2: homewatt_common.lineprotocol, InfluxDB's own rules (a backslash in a name is literal);
# 1 (archives without the key, made before it): every backslash in a measurement, tag key,
# tag value or field key doubled and a newline written as `\n`, which InfluxDB reads back as
# two backslashes (and a backslash and an n): restore rewrites such lines (legacy_lines.py).
LINE_PROTOCOL = 2
MANIFEST_MEMBER = "manifest.json"
# An hourly archive's line protocol: the primary bucket's (influxdb.bucket) in DATA_MEMBER, as
# in every archive before extra buckets; each extra bucket's in its own member (extra_member).
DATA_MEMBER = "data.lp.gz"
# A site name: exactly Terraform's rule for the keys of `sites` (terraform/variables.tf), which
# become container names (homewatt-<site>) and blob prefixes. contracts/backup-azure.json
# `site_pattern` holds the same regex (a test keeps them equal: the app ships without the repo).
SITE_MAX_LENGTH = 40
SITE_PATTERN = rf"^(?=.{{1,{SITE_MAX_LENGTH}}}$)[a-z0-9]+(-[a-z0-9]+)*$"
SITE_RE = re.compile(SITE_PATTERN)
# Blob metadata key the versions before the local verification ledger wrote after upload
# (Set Blob Metadata); a blob carrying it still counts as verified.
LEGACY_VERIFIED_KEY = "verified"

_NAME = re.compile(
    r"^(?P<site>[a-z0-9]+(?:-[a-z0-9]+)*)/(?P<kind>hourly|daily)/"
    rf"(?P<ts>\d{{8}}T\d{{6}}Z)(?:\.r(?P<rev>[1-9][0-9]{{0,3}}))?\.{ARCHIVE_EXT}$"
)


def site_ok(site: str) -> bool:
    return SITE_RE.fullmatch(site) is not None


def bucket_token(bucket: str) -> str:
    """A bucket name as one safe path segment and blob metadata word: percent-encoded UTF-8
    (every byte but letters, digits and `_.-~`), so no `/`, `..`, `,` or non-ASCII remains and
    two names never give the same token: `homewatt_longterm` stays as it is."""
    return quote(bucket, safe="")


def extra_member(bucket: str) -> str:
    """The archive member of an extra bucket's line protocol, e.g.
    `data/homewatt_longterm.lp.gz`."""
    return f"data/{bucket_token(bucket)}.lp.gz"


class Kind(StrEnum):
    """`hourly`: incremental line protocol export; `daily`: full engine backup."""

    HOURLY = "hourly"
    DAILY = "daily"


class Engine(StrEnum):
    INFLUXDB2 = "influxdb2"
    INFLUXDB1 = "influxdb1"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def temporary_suffix() -> str:
    """`<timestamp>-<4 hex>` in lower case, for a merge restore's temporary database or bucket:
    the time says when it was made, the random part keeps two merges within one second (or a
    clock stepped back onto a leftover's second) apart."""
    return f"{format_ts(datetime.now(UTC)).lower()}-{secrets.token_hex(2)}"


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_iso(text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, order=True)
class BackupId:
    """One backup, named `<site>/<kind>/<YYYYMMDDTHHMMSSZ>.tar` (contracts/backup-azure.json)."""

    timestamp: datetime
    kind: Kind
    site: str

    @property
    def name(self) -> str:
        return self.blob_name(0)

    @property
    def stem(self) -> str:
        """`<site>/<kind>/<timestamp>`: the prefix every blob of this backup starts with."""
        return f"{self.site}/{self.kind.value}/{format_ts(self.timestamp)}"

    def blob_name(self, revision: int) -> str:
        """The blob of this backup's upload `revision`: 0 is `<stem>.tar`; a re-upload after
        the earlier blobs failed verification is `<stem>.r<N>.tar` (create-only uploads cannot
        replace a blob; contracts/backup-azure.json)."""
        suffix = f".r{revision}" if revision else ""
        return f"{self.stem}{suffix}.{ARCHIVE_EXT}"

    @classmethod
    def parse(cls, name: str) -> BackupId | None:
        """The id of a blob or relative path name (any revision), or None when the name is
        not a backup's."""
        parsed = cls.parse_blob(name)
        return None if parsed is None else parsed[0]

    @classmethod
    def parse_blob(cls, name: str) -> tuple[BackupId, int] | None:
        """(id, revision) of a blob name, or None when the name is not a backup's."""
        match = _NAME.match(name)
        if match is None or not site_ok(match["site"]):
            return None
        backup_id = cls(parse_ts(match["ts"]), Kind(match["kind"]), match["site"])
        return backup_id, int(match["rev"] or 0)


@dataclass(frozen=True)
class FileEntry:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ShardRecord:
    """One shard of a full backup as the engine listed it: `saved` into `file` (`size`:
    the uncompressed shard archive's bytes), or `expired` (retention removed it during the
    backup: the engine answered 404 for it).

    InfluxDB 1.x only (None elsewhere, and in archives made before): the shard's
    `retention_policy` and time range [`start`, `end`) as SHOW SHARDS lists them, and
    `field_values`, what InfluxDB counted in that range per measurement right before the dump
    (`SELECT COUNT(*)`; a point with three fields counts three). The backup holds at least
    that many: a restore is complete once the restored database counts as many.

    InfluxDB 2 only: `bucket`, the bucket the shard belongs to (None in archives made before
    extra buckets, which held one bucket)."""

    id: int
    state: str  # saved | expired
    file: str | None = None
    size: int | None = None
    retention_policy: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    field_values: Mapping[str, int] | None = None
    bucket: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "state": self.state}
        optional = {
            "file": self.file,
            "size": self.size,
            "retention_policy": self.retention_policy,
            "start": iso(self.start),
            "end": iso(self.end),
            "field_values": None if self.field_values is None else dict(self.field_values),
            "bucket": self.bucket,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardRecord:
        size = data.get("size")
        counted = data.get("field_values")
        return cls(
            int(data["id"]),
            str(data["state"]),
            None if data.get("file") is None else str(data["file"]),
            None if size is None else int(size),
            None if data.get("retention_policy") is None else str(data["retention_policy"]),
            from_iso(data.get("start")),
            from_iso(data.get("end")),
            None if counted is None else {str(k): int(v) for k, v in counted.items()},
            None if data.get("bucket") is None else str(data["bucket"]),
        )


@dataclass(frozen=True)
class FieldValueCheck:
    """The completeness check of an incremental dump: field values per measurement in its
    range, counted by InfluxDB right `before` the dump and right `after` it, and `archived`.
    The archive is complete when before <= archived <= after for every measurement (points
    delivered late during the dump may add some; none may be missing)."""

    before: Mapping[str, int]
    archived: Mapping[str, int]
    after: Mapping[str, int]

    def shortfalls(self) -> list[str]:
        """One text per measurement outside its bounds, e.g. 'electricity: 814 archived,
        InfluxDB counted 4000 before and 4000 after the dump'."""
        out = []
        for name in sorted(set(self.before) | set(self.archived) | set(self.after)):
            low, high = self.before.get(name, 0), self.after.get(name, 0)
            got = self.archived.get(name, 0)
            if not low <= got <= high:
                out.append(
                    f"{name}: {got} archived, InfluxDB counted {low} before and {high} after "
                    "the dump"
                )
        return out

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            "before": dict(sorted(self.before.items())),
            "archived": dict(sorted(self.archived.items())),
            "after": dict(sorted(self.after.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldValueCheck:
        def counts(key: str) -> dict[str, int]:
            return {str(k): int(v) for k, v in dict(data.get(key) or {}).items()}

        return cls(counts("before"), counts("archived"), counts("after"))


@dataclass(frozen=True)
class ExtraBucket:
    """An InfluxDB 2 bucket a backup holds beside its primary one (`Manifest.source`), e.g.
    homewatt_longterm. A daily archive names it (its shards are in the `influx backup`
    layout, recorded in `Manifest.shards` with their bucket); an hourly one also gives the
    `member` holding its line protocol (extra_member), its `lines` and its completeness check
    (`field_values`, as the primary's)."""

    bucket: str
    member: str | None = None
    lines: int | None = None
    field_values: FieldValueCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"bucket": self.bucket}
        if self.member is not None:
            data["member"] = self.member
            data["lines"] = self.lines
            data["field_values"] = (
                None if self.field_values is None else self.field_values.to_dict()
            )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExtraBucket:
        counted = data.get("field_values")
        lines = data.get("lines")
        return cls(
            str(data["bucket"]),
            None if data.get("member") is None else str(data["member"]),
            None if lines is None else int(lines),
            None if counted is None else FieldValueCheck.from_dict(counted),
        )


@dataclass(frozen=True)
class Manifest:
    """What an archive holds; stored as its first member and (summarised) in blob metadata.

    `range_start`..`range_stop` is the time range of the points covered: an hourly archive
    holds points with range_start <= time < range_stop; a daily (full) one everything up to
    range_stop (range_start None).

    `field_values` (hourly): the completeness check of the dump; `shards` (daily): every shard
    the engine listed and what became of it. Both are absent in archives of earlier versions.
    `line_protocol` (hourly): how data.lp.gz escapes names (LINE_PROTOCOL; 1 when absent).

    `lines` and `field_values` are the primary bucket's (the source's); `extra_buckets`, the
    other buckets the backup holds, each with its own (InfluxDB 2 `influxdb.extra_buckets`;
    empty in 1.x archives and in archives made before extra buckets).
    """

    site: str
    kind: Kind
    created: datetime
    engine: Engine
    engine_version: str
    source: str
    range_start: datetime | None
    range_stop: datetime
    precision: str
    files: tuple[FileEntry, ...]
    lines: int | None = None
    format: int = MANIFEST_FORMAT
    field_values: FieldValueCheck | None = None
    shards: tuple[ShardRecord, ...] = ()
    line_protocol: int = LINE_PROTOCOL
    extra_buckets: tuple[ExtraBucket, ...] = ()

    @property
    def backup_id(self) -> BackupId:
        return BackupId(self.created, self.kind, self.site)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["engine"] = self.engine.value
        data["created"] = iso(self.created)
        data["range_start"] = iso(self.range_start)
        data["range_stop"] = iso(self.range_stop)
        data["field_values"] = None if self.field_values is None else self.field_values.to_dict()
        data["shards"] = [shard.to_dict() for shard in self.shards]
        data["extra_buckets"] = [extra.to_dict() for extra in self.extra_buckets]
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        created = from_iso(data["created"])
        stop = from_iso(data["range_stop"])
        if created is None or stop is None:
            raise ValueError("manifest lacks created or range_stop")
        if int(data.get("format", 0)) != MANIFEST_FORMAT:
            raise ValueError(f"unsupported manifest format {data.get('format')!r}")
        if int(data.get("line_protocol", 1)) not in (1, LINE_PROTOCOL):
            raise ValueError(
                f"unsupported line protocol version {data['line_protocol']!r} (made by a later"
                " homewatt-backup?)"
            )
        return cls(
            site=str(data["site"]),
            kind=Kind(data["kind"]),
            created=created,
            engine=Engine(data["engine"]),
            engine_version=str(data["engine_version"]),
            source=str(data["source"]),
            range_start=from_iso(data.get("range_start")),
            range_stop=stop,
            precision=str(data["precision"]),
            files=tuple(
                FileEntry(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in data["files"]
            ),
            lines=None if data.get("lines") is None else int(data["lines"]),
            field_values=(
                None
                if data.get("field_values") is None
                else FieldValueCheck.from_dict(data["field_values"])
            ),
            shards=tuple(ShardRecord.from_dict(s) for s in data.get("shards") or ()),
            line_protocol=int(data.get("line_protocol", 1)),
            extra_buckets=tuple(ExtraBucket.from_dict(e) for e in data.get("extra_buckets") or ()),
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        return cls.from_dict(json.loads(raw))


@dataclass(frozen=True)
class ArchiveRecord:
    """A finished archive: its manifest plus the whole file's SHA-256, size and MD5."""

    manifest: Manifest
    sha256: str
    size: int
    md5_b64: str

    @property
    def backup_id(self) -> BackupId:
        return self.manifest.backup_id

    def to_json(self) -> bytes:
        data = {
            "manifest": self.manifest.to_dict(),
            "sha256": self.sha256,
            "size": self.size,
            "md5": self.md5_b64,
        }
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> ArchiveRecord:
        data = json.loads(raw)
        return cls(
            Manifest.from_dict(data["manifest"]),
            str(data["sha256"]),
            int(data["size"]),
            str(data["md5"]),
        )

    def blob_metadata(self) -> dict[str, str]:
        """The manifest summary stored as blob metadata (ASCII, C#-identifier keys);
        `extrabuckets` (only when there are some): the extra buckets' names (bucket_token),
        comma-separated, so a point-in-time restore knows every bucket of its chain before it
        downloads any."""
        m = self.manifest
        extras = {}
        if m.extra_buckets:
            extras["extrabuckets"] = ",".join(bucket_token(e.bucket) for e in m.extra_buckets)
        return {
            "format": str(m.format),
            "site": m.site,
            "kind": m.kind.value,
            "created": iso(m.created) or "",
            "engine": m.engine.value,
            "engineversion": m.engine_version,
            "source": m.source,
            "rangestart": iso(m.range_start) or "",
            "rangestop": iso(m.range_stop) or "",
            "precision": m.precision,
            "files": str(len(m.files)),
            "lines": "" if m.lines is None else str(m.lines),
            "sha256": self.sha256,
            "size": str(self.size),
            **extras,
        }


@dataclass(frozen=True)
class BackupRef:
    """What rotation needs to know of one backup (local or remote)."""

    id: BackupId
    good: bool = True

    @property
    def kind(self) -> Kind:
        return self.id.kind

    @property
    def timestamp(self) -> datetime:
        return self.id.timestamp


@dataclass(frozen=True)
class RemoteBackup:
    """One blob: a backup's upload `revision` (see BackupId.blob_name)."""

    id: BackupId
    size: int
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    revision: int = 0

    @property
    def name(self) -> str:
        return self.id.blob_name(self.revision)

    @property
    def sha256(self) -> str | None:
        return self.metadata.get("sha256") or None

    @property
    def extra_buckets(self) -> tuple[str, ...]:
        """The extra buckets the backup holds, from its metadata (none for blobs made before
        extra buckets)."""
        words = self.metadata.get("extrabuckets") or ""
        return tuple(unquote(word) for word in words.split(",") if word)

    def is_verified(self, ledger: Mapping[str, str], revoked: Container[str] = ()) -> bool:
        """Verified after upload: the local ledger (name -> SHA-256, ledger.py) holds this name
        with the blob's SHA-256, or the blob carries the legacy `verified` metadata key; never
        when the ledger's latest word on it is a revocation (`revoked`: those names)."""
        if self.sha256 is None or self.name in revoked:
            return False
        return ledger.get(self.name) == self.sha256 or bool(self.metadata.get(LEGACY_VERIFIED_KEY))


@dataclass(frozen=True)
class LocalBackup:
    id: BackupId
    record: ArchiveRecord
    uploaded: bool
