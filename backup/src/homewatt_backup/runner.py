"""One backup run: dump -> archive -> upload the backlog (oldest first; each blob downloaded
again, checked and recorded in the local verification ledger) -> rotate (remote and local) ->
health point. Each step runs even when an earlier one failed where that is safe (a failed dump
still lets the backlog upload); any failure fails the run (exit 1)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from homewatt_backup import configfiles
from homewatt_backup.archive import (
    LocalArchives,
    check_archive,
    open_text_gzip,
    sha256_file,
    temporary_dir,
)
from homewatt_backup.config import CREDENTIALS_DIR, Settings
from homewatt_backup.engines import DatabaseEngine
from homewatt_backup.errors import (
    ArchiveError,
    BackupError,
    BlobExistsError,
    ClockNotSyncedError,
    CorruptArchiveError,
    IncompleteDumpError,
    LockedError,
    StoreError,
    from_oserror,
)
from homewatt_backup.ledger import LedgerEntry, VerificationLedger
from homewatt_backup.models import (
    DATA_MEMBER,
    BackupId,
    BackupRef,
    ExtraBucket,
    FieldValueCheck,
    Kind,
    LocalBackup,
    Manifest,
    extra_member,
    format_ts,
    iso,
    utc_now,
)
from homewatt_backup.rotation import future_dated, plan_rotation
from homewatt_backup.store import BlobStore, inspect_sas
from homewatt_common import clock as shared_clock
from homewatt_common.lineprotocol import FieldValue, encode_line
from homewatt_common.secretfile import parse_sas

log = logging.getLogger(__name__)

HOURLY_SPAN = timedelta(hours=1)
MOMENT_TRIES = 3  # taken seconds waited through before a run gives up (Runner.free_second)


class RequestedKind(StrEnum):
    AUTO = "auto"
    HOURLY = "hourly"
    DAILY = "daily"


def choose_kind(
    requested: RequestedKind, local: Sequence[LocalBackup], now: datetime, daily_hour_utc: int
) -> Kind:
    """auto: a full (daily) backup when none was made since the last daily boundary
    (`daily_hour_utc` o'clock UTC), otherwise an incremental (hourly) one. A full dated after
    `now` (made with a wrong clock) does not count."""
    if requested is not RequestedKind.AUTO:
        return Kind(requested.value)
    fulls = [b for b in local if b.id.kind is Kind.DAILY and b.id.timestamp <= now]
    if not fulls:
        return Kind.DAILY
    boundary = now.replace(hour=daily_hour_utc, minute=0, second=0, microsecond=0)
    if boundary > now:
        boundary -= timedelta(days=1)
    return Kind.DAILY if fulls[-1].id.timestamp < boundary else Kind.HOURLY


def incremental_window(
    local: Sequence[LocalBackup], now: datetime, overlap: timedelta
) -> tuple[datetime, datetime]:
    """[start, now): from the end of the newest backup minus the overlap (late samples that
    the collector's outbox delivers after a database outage are caught), never shorter than
    the last hour plus the overlap. A backup whose range ends after `now` (made with a wrong
    clock) does not count."""
    covered = [b.record.manifest.range_stop for b in local if b.record.manifest.range_stop <= now]
    since = min(max(covered), now - HOURLY_SPAN) if covered else now - HOURLY_SPAN
    return since - overlap, now


def health_line(
    site: str,
    kind: Kind,
    *,
    ok: bool,
    duration_s: float,
    size: int,
    pending: int,
    timestamp: int,
    sas_expires_in_days: float | None = None,
) -> str:
    """The `homewatt_backup` point (README's data model). `sas_expires_in_days`: days until the
    SAS's expiry (`se`), negative once expired; left out without Azure or without an expiry."""
    fields: dict[str, FieldValue] = {
        "ok": int(ok),
        "duration_s": round(duration_s, 3),
        "bytes": size,
        "pending_uploads": pending,
    }
    if sas_expires_in_days is not None:
        fields["sas_expires_in_days"] = round(sas_expires_in_days, 2)
    return encode_line("homewatt_backup", {"site": site, "kind": kind.value}, fields, timestamp)


def sas_expires_in_days(sas: str | None, now: datetime) -> float | None:
    """Days from `now` to the SAS's expiry (`se`); None without a SAS, an expiry, or when it
    does not parse (inspect_sas reports that)."""
    if not sas:
        return None
    try:
        expiry = parse_sas(sas.removeprefix("?")).expiry
    except ValueError:
        return None
    return None if expiry is None else (expiry - now).total_seconds() / 86400


@dataclass
class RunResult:
    kind: Kind
    backup: LocalBackup | None = None
    uploaded: list[BackupId] = field(default_factory=list)
    deleted_remote: list[BackupId] = field(default_factory=list)
    deleted_local: list[BackupId] = field(default_factory=list)
    pending: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise from_oserror(exc, f"opening the state directory {state_dir}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another homewatt-backup run holds {state_dir / 'lock'}") from None
        yield
    finally:
        os.close(fd)


class Runner:
    def __init__(
        self,
        settings: Settings,
        engine: DatabaseEngine,
        store: BlobStore | None,
        clock: Callable[[], datetime] = utc_now,
        clock_check: Callable[[], bool | None] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.config = settings.config
        self.engine = engine
        self.store = store
        self.clock = clock
        self.sleep = sleep
        # homewatt_common.clock's answer: True synchronised, False not, None cannot tell
        self.clock_check = clock_check or shared_clock.clock_synchronized
        self.archives = LocalArchives(settings.state_dir)
        self.ledger = VerificationLedger(settings.state_dir)

    # ---- steps
    def make_backup(self, kind: Kind, now: datetime, local: Sequence[LocalBackup]) -> LocalBackup:
        """Dump, check and archive one backup. A dump that fails its check (a shard missing or
        cut short; an incremental holding fewer field values than InfluxDB counted in its
        range before the dump, or more than it counted after) raises IncompleteDumpError and
        keeps nothing: the next run covers the same range again."""
        version = self.engine.version()
        base = format_ts(now)
        work = self.archives.staging(f"{kind.value}-{base}")
        precision = self.config.schedule.precision
        name = BackupId(now, kind, self.config.site).name
        try:
            if kind is Kind.DAILY:
                full = self.engine.dump_full(work, base)
                payload = [*full.files, *self.config_payload(work, name)]
                saved = sum(1 for s in full.shards if s.state == "saved")
                log.info(
                    "%s: %d shards saved, %d expired during the backup",
                    name,
                    saved,
                    len(full.shards) - saved,
                )
                manifest = Manifest(
                    self.config.site,
                    kind,
                    now,
                    self.engine.engine,
                    version,
                    self.engine.source,
                    None,
                    now,
                    precision,
                    (),
                    shards=full.shards,
                    extra_buckets=tuple(ExtraBucket(b) for b in self.engine.extra_buckets),
                )
            else:
                overlap = timedelta(hours=self.config.schedule.overlap_hours)
                start, stop = incremental_window(local, now, overlap)  # stop fixed: now
                lines, check = self.export_bucket(
                    self.engine, start, stop, work / DATA_MEMBER, name=name, bucket=None
                )
                payload = [(DATA_MEMBER, work / DATA_MEMBER)]
                extras = []
                for bucket in self.engine.extra_buckets:
                    member = extra_member(bucket)
                    extra_lines, extra_check = self.export_bucket(
                        self.engine.for_bucket(bucket),
                        start,
                        stop,
                        work / member,
                        name=name,
                        bucket=bucket,
                    )
                    payload.append((member, work / member))
                    extras.append(ExtraBucket(bucket, member, extra_lines, extra_check))
                manifest = Manifest(
                    self.config.site,
                    kind,
                    now,
                    self.engine.engine,
                    version,
                    self.engine.source,
                    start,
                    stop,
                    precision,
                    (),
                    lines,
                    field_values=check,
                    extra_buckets=tuple(extras),
                )
            return self.archives.write(manifest, payload)
        except OSError as exc:
            raise from_oserror(exc, f"writing the {kind.value} backup in {work}") from None

    def export_bucket(
        self,
        engine: DatabaseEngine,
        start: datetime,
        stop: datetime,
        path: Path,
        *,
        name: str,
        bucket: str | None,
    ) -> tuple[int, FieldValueCheck]:
        """Export one bucket's [start, stop) into `path` (gzip line protocol) between two
        counts of its field values; return the lines written and the check. `bucket`: an
        extra bucket's name (None: the primary), named in the log line and the error.
        IncompleteDumpError when the export does not match the counts (nothing is kept)."""
        before = engine.count_field_values(start, stop)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_text_gzip(path) as out:
            exported = engine.dump_incremental(start, stop, out, self.config.schedule.precision)
        after = engine.count_field_values(start, stop)
        check = FieldValueCheck(before, exported.field_values, after)
        of_bucket = "" if bucket is None else f" of bucket {bucket}"
        log.info(
            "%s: %d field values%s archived in %d lines; InfluxDB counted %d before "
            "and %d after the dump (%s .. %s)",
            name,
            sum(exported.field_values.values()),
            of_bucket,
            exported.lines,
            sum(before.values()),
            sum(after.values()),
            iso(start),
            iso(stop),
        )
        shortfalls = check.shortfalls()
        if shortfalls:
            raise IncompleteDumpError(
                f"{name} not kept: the export{of_bucket} of {iso(start)} .. {iso(stop)} does "
                f"not match what InfluxDB counted: {'; '.join(shortfalls)}"
            )
        return exported.lines, check

    def config_payload(self, work: Path, name: str) -> list[tuple[str, Path]]:
        """The site's configuration for a daily backup (configfiles.py): one tar member, or
        none when `config_files.enabled` is false or nothing was found."""
        wanted = self.config.config_files
        if not wanted.enabled:
            return []
        directory = wanted.directory
        collected = configfiles.collect(
            directory,
            directory / CREDENTIALS_DIR.name,
            wanted.install_answers,
            work / "homewatt-config.tar",
        )
        log.info(
            "%s: %d configuration files from %s%s",
            name,
            len(collected.files),
            directory,
            f" ({len(collected.skipped)} left out)" if collected.skipped else "",
        )
        return [(configfiles.MEMBER, collected.path)] if collected.files else []

    def upload_one(self, backup: LocalBackup) -> None:
        """Upload (create-only), download again and check the SHA-256 and every member, then
        record the verification locally (ledger, then the `.uploaded` marker). The blob is
        never written to after its upload: no metadata update, no second version. A blob of
        this backup that failed verification (revoked) cannot be replaced: the archive goes up
        as the next revision, `<stem>.r<N>.tar`; in rotation mode the revoked blobs of this
        backup are deleted once that replacement is verified."""
        assert self.store is not None
        path = self.archives.path_for(backup.id)
        record = backup.record
        if sha256_file(path) != record.sha256:
            raise CorruptArchiveError(f"{path}: local archive no longer matches its SHA-256")
        revoked = self.ledger.revoked()
        copies = [b for b in self.store.list(backup.id.stem) if b.id == backup.id]
        taken = {b.revision: b for b in copies}
        revision = 0
        while revision in taken and taken[revision].name in revoked:
            revision += 1
        name = backup.id.blob_name(revision)
        if revision:
            log.warning(
                "%s failed verification (revoked): uploading the archive again as %s",
                backup.id.blob_name(revision - 1),
                name,
            )
        try:
            self.store.upload(name, path, record.blob_metadata(), record.md5_b64)
            log.info("uploaded %s (%d bytes)", name, record.size)
        except BlobExistsError:
            existing = self.store.metadata(name) or {}
            if existing.get("sha256") != record.sha256:
                raise StoreError(
                    f"upload {name}: a different blob of that name exists; "
                    "it is never overwritten: check the site name"
                ) from None
            log.info("%s was uploaded before; verifying it", name)
        with temporary_dir(self.archives.tmp, "verify-") as work:
            copy = work / "copy.tar"
            self.store.download(name, copy)
            try:
                check_archive(copy, expected_sha256=record.sha256, label=f"blob {name}")
            except CorruptArchiveError as exc:
                self.ledger.revoke(name, record.sha256, self.clock(), str(exc))
                raise StoreError(f"verify after upload of {name} failed: {exc}") from None
        now = self.clock()
        self.ledger.record(name, record.sha256, now)
        self.archives.mark_uploaded(backup.id, iso(now) or "")
        log.info("verified %s after upload (SHA-256 %s)", name, record.sha256)
        azure = self.config.azure
        if azure is not None and azure.retention == "rotation":
            for old in copies:
                if old.name in revoked:
                    self.store.delete(old.name)
                    log.info("deleted the revoked %s: %s replaces it", old.name, name)

    def reconcile(self) -> None:
        """One truth for "uploaded and verified": the ledger. A local `.uploaded` marker is
        removed when the ledger's entries for that backup (any revision) are revocations only
        (the archive is pending again, and goes up as the next revision); a marker the ledger
        does not know at all (a ledger lost or set aside as damaged) is recorded in it again,
        under the first blob name, with the SHA-256 of the archive's record (a marker was only
        ever written after a verified upload of exactly that archive)."""
        by_id: dict[BackupId, list[LedgerEntry]] = {}
        for entry_name, entry in self.ledger.entries().items():
            backup_id = BackupId.parse(entry_name)
            if backup_id is not None:
                by_id.setdefault(backup_id, []).append(entry)
        for backup in self.archives.list():
            if not backup.uploaded:
                continue
            entries = by_id.get(backup.id, [])
            if not entries:
                self.ledger.record(backup.id.name, backup.record.sha256, self.clock())
                log.info("verification ledger: %s re-recorded from its marker", backup.id.name)
            elif all(e.revoked for e in entries):
                self.archives.unmark_uploaded(backup.id)

    def upload_backlog(self, result: RunResult) -> None:
        """Upload every archive not yet uploaded, oldest first; stop at the first failure
        (the rest waits for the next run). A corrupt local archive is set aside."""
        azure = self.config.azure
        if self.store is None or azure is None:
            return
        self.reconcile()
        pending = [b for b in self.archives.list() if not b.uploaded]
        try:
            if azure.auth == "sas":
                inspect_sas(
                    self.settings.secrets.sas or "", azure.retention, utc_now(), azure.sas_source
                )
        except BackupError as exc:
            result.errors.append(str(exc))
            return
        for backup in pending:
            try:
                self.upload_one(backup)
                result.uploaded.append(backup.id)
            except CorruptArchiveError as exc:
                result.errors.append(str(exc))
                self._quarantine(backup.id)
            except BackupError as exc:
                result.errors.append(str(exc))
                break

    def _quarantine(self, backup_id: BackupId) -> None:
        path = self.archives.path_for(backup_id)
        with contextlib.suppress(OSError):
            path.rename(path.with_name(path.name + ".corrupt"))
        log.error("set aside %s as %s.corrupt", path, path.name)

    def rotate_remote(self, result: RunResult) -> None:
        """rotation: delete what the chain rule drops ("good" = verified: in the ledger with
        the blob's SHA-256, or legacy `verified` metadata). Both modes: prune the ledger of
        names no longer in the container (rotated out here or by the lifecycle policy)."""
        azure = self.config.azure
        if self.store is None or azure is None:
            return
        try:
            remote = self.store.list(f"{self.config.site}/")
            present = {b.name for b in remote}
            if azure.retention == "rotation":
                verified, revoked = self.ledger.verified(), self.ledger.revoked()
                plan = plan_rotation(
                    [BackupRef(b.id, b.is_verified(verified, revoked)) for b in remote],
                    self.config.keep.full,
                    self.clock(),
                )
                dropped_ids = {ref.id for ref in plan.delete}
                for blob in remote:  # every revision of a backup rotated out
                    if blob.id in dropped_ids:
                        self.store.delete(blob.name)
                        present.discard(blob.name)
                        log.info("rotated out remote %s", blob.name)
                result.deleted_remote.extend(ref.id for ref in plan.delete)
            dropped = self.ledger.prune(present)
            if dropped:
                log.info("verification ledger: dropped %d gone backups", len(dropped))
        except BackupError as exc:
            result.errors.append(str(exc))

    def rotate_local(self, result: RunResult) -> None:
        """Keep `keep.local_full` chains locally; archives not yet uploaded are kept while the
        remote rotation would still keep them (so the local backlog stays bounded too)."""
        local = self.archives.list()
        refs = [BackupRef(b.id, True) for b in local]
        now = self.clock()
        keep = {r.id for r in plan_rotation(refs, self.config.keep.local_full, now).keep}
        if self.store is not None:
            remote_keep = {r.id for r in plan_rotation(refs, self.config.keep.full, now).keep}
            keep |= {b.id for b in local if not b.uploaded and b.id in remote_keep}
        for backup in local:
            if backup.id not in keep:
                self.archives.delete(backup.id)
                result.deleted_local.append(backup.id)
                note = "" if backup.uploaded else " (never uploaded; older than the remote keeps)"
                log.info("rotated out local %s%s", backup.id.name, note)

    # ---- the run
    def free_second(self, local: Sequence[LocalBackup]) -> datetime:
        """The run's moment: now, or the next second while a local archive already bears this
        second (archives are named to the second and never overwritten: a second run within the
        same second, or a clock stepped back onto an earlier run's second). Waits under 1 s per
        taken second; after MOMENT_TRIES waits, ArchiveError names the second still taken."""
        taken = {format_ts(b.id.timestamp) for b in local}
        now = self.clock()
        for _ in range(MOMENT_TRIES):
            if format_ts(now) not in taken:
                return now
            self.sleep(1 - now.microsecond / 1_000_000)
            now = self.clock()
        raise ArchiveError(
            f"no free second to name this run's archive: {format_ts(now)} is still taken by an "
            f"existing archive after {MOMENT_TRIES} waits for the next second; is the system "
            "clock stuck?"
        )

    def _run_locked(self, result: RunResult, requested: RequestedKind, upload: bool) -> None:
        self.archives.prepare()
        local = self.archives.list()
        now = self.free_second(local)
        for ref in future_dated([BackupRef(b.id) for b in local], now):
            log.warning(
                "%s is dated after now (%s): made while the clock was wrong; kept, but not "
                "taken as the newest backup",
                ref.id.name,
                iso(now),
            )
        result.kind = choose_kind(requested, local, now, self.config.schedule.daily_full_hour_utc)
        try:
            result.backup = self.make_backup(result.kind, now, local)
            log.info(
                "%s backup %s: %d bytes",
                result.kind.value,
                result.backup.id.name,
                result.backup.record.size,
            )
        except BackupError as exc:
            result.errors.append(str(exc))
        if upload:
            self.upload_backlog(result)
            if result.backup is not None or result.uploaded:
                # nothing new remotely: no reason to wait for Azure (e.g. after InfluxDB failed)
                self.rotate_remote(result)
        try:
            self.rotate_local(result)
            result.pending = (
                sum(1 for b in self.archives.list() if not b.uploaded)
                if self.store is not None
                else 0
            )
        finally:
            self.archives.prepare()  # staging emptied: nothing partial left behind

    def check_clock(self) -> None:
        """Refuse to run while the system clock is not synchronised (clock.wait_for_sync):
        a backup named, selected and rotated by a wrong time, and a health point stamped with
        it, would mislead every later run and the alerts. ClockNotSyncedError; when the check
        cannot tell, a warning (the unit's ordering after time-sync.target is then the guard)."""
        if not self.config.clock.wait_for_sync:
            return
        state = self.clock_check()
        if state is False:
            raise ClockNotSyncedError(
                "the system clock is not synchronised (no NTP time yet): no backup runs on a "
                "wrong clock, and no health point is written (its time would be wrong; the "
                "missing point is what alerts); the timer tries again next hour. A site without "
                "network time sets clock.wait_for_sync: false"
            )
        if state is None:
            log.warning(
                "cannot tell whether the system clock is synchronised; going on (the unit "
                "starts after time-sync.target)"
            )

    def run(self, requested: RequestedKind = RequestedKind.AUTO, upload: bool = True) -> RunResult:
        """One run; the health point is written whatever happened, except when the run did
        not start: another one holds the lock (LockedError), or the clock is not synchronised
        (ClockNotSyncedError)."""
        self.check_clock()
        started = time.monotonic()
        first_guess = Kind.HOURLY if requested is RequestedKind.AUTO else Kind(requested.value)
        result = RunResult(first_guess)
        try:
            with state_lock(self.settings.state_dir):
                self._run_locked(result, requested, upload)
        except LockedError:
            raise
        except BackupError as exc:
            result.errors.append(str(exc))
        if self.config.health:
            size = result.backup.record.size if result.backup else 0
            line = health_line(
                self.config.site,
                result.kind,
                ok=result.ok,
                duration_s=time.monotonic() - started,
                size=size,
                pending=result.pending,
                timestamp=int(self.clock().timestamp()),
                sas_expires_in_days=sas_expires_in_days(
                    self.settings.secrets.sas if self.config.azure else None, self.clock()
                ),
            )
            try:
                self.engine.write_health(line)
            except BackupError as exc:
                result.errors.append(f"health point not written: {exc}")
        return result
