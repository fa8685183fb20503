"""Restore: fetch an archive (the local copy if intact, else download), verify it against
its SHA-256 and manifest, and restore it into InfluxDB; or restore a chain (the newest full
at or before a time plus the incrementals after it) to a point in time.

A backup of InfluxDB 2 may hold extra buckets beside its primary one (`influxdb.extra_buckets`,
e.g. homewatt_longterm): each is restored too, into its own name, or with a `--target X` for
the primary into `X_<bucket>` (extra_target), so a restore under a new name never writes into
a live bucket. A restore refuses a target bucket/database that holds data unless `force` is
given, every target checked before anything is written; with `force` the backup is merged into
it (same series and timestamps are overwritten)."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from homewatt_backup import configfiles
from homewatt_backup.archive import LocalArchives, check_archive, temporary_dir
from homewatt_backup.engines import DatabaseEngine
from homewatt_backup.errors import BackupError, CorruptArchiveError, RestoreRefusedError
from homewatt_backup.ledger import VerificationLedger
from homewatt_backup.legacy_lines import rewrite_legacy_line
from homewatt_backup.models import (
    DATA_MEMBER,
    PRECISION_PER_SECOND,
    BackupId,
    Engine,
    Kind,
    Manifest,
    RemoteBackup,
    utc_now,
)
from homewatt_backup.store import BlobStore
from homewatt_common.lineprotocol import line_timestamp, read_lines

log = logging.getLogger(__name__)


class Reporter:
    """Progress reporting; the CLI passes one that draws a rich progress bar."""

    def task(self, description: str, total: int | None) -> Callable[[int], None]:
        return lambda _n: None

    def done(self) -> None:
        return None


def plan_chain(available: Sequence[BackupId], at: datetime) -> list[BackupId]:
    """The backups that restore the state at `at`: the newest full at or before `at`, every
    incremental after it up to `at`, and the first incremental after `at` (it covers `at`;
    its later points are filtered out). Oldest first."""
    ordered = sorted(set(available))
    fulls = [b for b in ordered if b.kind is Kind.DAILY and b.timestamp <= at]
    if not fulls:
        raise BackupError(f"no full (daily) backup at or before {at:%Y-%m-%d %H:%M:%S} UTC")
    full = fulls[-1]
    hourlies = [b for b in ordered if b.kind is Kind.HOURLY and b.timestamp > full.timestamp]
    chain = [full] + [b for b in hourlies if b.timestamp <= at]
    later = [b for b in hourlies if b.timestamp > at]
    if later:
        chain.append(later[0])
    return chain


def extra_target(bucket: str, renamed: str | None) -> str:
    """Where an extra bucket of a backup is restored: into its own name, or, when the primary
    is restored under a name given with --target (`renamed`), into `<renamed>_<bucket>`
    (e.g. `--target fresh`: homewatt_longterm into fresh_homewatt_longterm)."""
    return bucket if renamed is None else f"{renamed}_{bucket}"


@dataclass(frozen=True)
class Restored:
    """What a restore wrote: the `backups` restored (oldest first), and `into`, every bucket
    or database written into: the backup's name for it (None: the primary, the backup's
    source) -> the target; the primary first."""

    backups: list[BackupId]
    into: dict[str | None, str] = field(default_factory=dict)

    @property
    def extras(self) -> str:
        """The extra buckets' targets for the CLI's line, e.g. `; extra bucket
        homewatt_longterm into fresh_homewatt_longterm` (empty without extra buckets)."""
        return "".join(
            f"; extra bucket {bucket} into {target}"
            for bucket, target in self.into.items()
            if bucket is not None
        )


def filtered_lines(
    path: Path, until: int | None, legacy: bool = False, name: str = ""
) -> Iterator[str]:
    """The lines of an hourly archive's line protocol member (`path`), as InfluxDB splits them
    (a newline inside a string field stays in its line), without those stamped after `until`
    (None: all).
    `legacy`: the archive's manifest says `line_protocol` 1 (data.lp.gz, the only member those
    archives have); each line is rewritten in the
    current escaping (legacy_lines.py). CorruptArchiveError names the backup (`name`) and the
    line when one cannot be read or restored."""
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as handle:
        for number, line in enumerate(read_lines(handle), 1):
            if until is not None:
                ts = line_timestamp(line)
                if ts is not None and ts > until:
                    continue
            if legacy:
                try:
                    line = rewrite_legacy_line(line)  # noqa: PLW2901 (the same line, re-escaped)
                except (ValueError, IndexError) as exc:
                    raise CorruptArchiveError(
                        f"{name}: line {number} of data.lp.gz cannot be restored: {exc}"
                        f" ({line[:200]!r})"
                    ) from None
            yield line


@dataclass(frozen=True)
class RestoreStep:
    backup: BackupId
    manifest: Manifest


class Restorer:
    def __init__(
        self,
        engine: DatabaseEngine,
        store: BlobStore | None,
        archives: LocalArchives,
        workdir: Path | None = None,
        reporter: Reporter | None = None,
        *,
        ledger: VerificationLedger | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.archives = archives
        self.workdir = workdir
        self.reporter = reporter or Reporter()
        self.ledger = ledger or VerificationLedger(archives.state_dir)

    def available(self, site: str) -> list[BackupId]:
        """Every backup a restore can use: the local archives, and the blobs with a SHA-256
        whose verification the ledger has not revoked."""
        ids = {b.id for b in self.archives.list()}
        if self.store is not None:
            revoked = self.ledger.revoked()
            ids |= {b.id for b in self.store.list(f"{site}/") if b.sha256 and b.name not in revoked}
        return sorted(ids)

    def remote_copy(self, backup_id: BackupId) -> RemoteBackup:
        """The blob to restore `backup_id` from: its newest revision the ledger has not
        revoked. BackupError when there is none (CorruptArchiveError: all were revoked)."""
        assert self.store is not None
        copies = [b for b in self.store.list(backup_id.stem) if b.id == backup_id]
        revoked = self.ledger.revoked()
        usable = [b for b in copies if b.name not in revoked]
        if usable:
            return usable[-1]
        if copies:
            last = revoked[copies[-1].name]
            raise CorruptArchiveError(
                f"blob {copies[-1].name} failed verification at {last.when} "
                f"({last.reason}): not restored from it"
            )
        raise BackupError(f"{backup_id.name} does not exist locally nor in the container")

    def fetch(self, backup_id: BackupId, work: Path) -> tuple[Path, Manifest]:
        """The verified archive in `work` (extracted) and its manifest."""
        extracted = work / "extracted"
        extracted.mkdir()
        local = {b.id: b for b in self.archives.list()}
        if backup_id in local:
            path = self.archives.path_for(backup_id)
            try:
                manifest = check_archive(
                    path, local[backup_id].record.sha256, extracted, f"local archive {path}"
                )
                log.info("restoring %s from the local copy", backup_id.name)
                return extracted, manifest
            except CorruptArchiveError as exc:
                if self.store is None:
                    raise
                log.warning("%s; using the remote copy", exc)
                for child in extracted.iterdir():
                    child.unlink()
        if self.store is None:
            raise BackupError(
                f"{backup_id.name} is not kept locally and no Azure store is configured"
            )
        blob = self.remote_copy(backup_id)
        expected = blob.sha256
        if not expected:
            raise CorruptArchiveError(f"blob {blob.name} carries no SHA-256 metadata")
        download = work / "download.tar"
        advance = self.reporter.task(f"download {blob.name}", blob.size or None)
        self.store.download(blob.name, download, advance)
        manifest = check_archive(download, expected, extracted, f"blob {blob.name}")
        download.unlink()
        return extracted, manifest

    def _restore_fetched(
        self,
        extracted: Path,
        manifest: Manifest,
        targets: dict[str | None, str],
        merge: dict[str | None, bool],
        until: datetime | None,
    ) -> None:
        """Restore every bucket of a fetched backup: the primary (None) and each extra one
        into its `targets` entry, merging where `merge` says the target exists."""
        name = manifest.backup_id.name
        unplanned = [e.bucket for e in manifest.extra_buckets if e.bucket not in targets]
        if unplanned:
            raise CorruptArchiveError(
                f"{name} holds bucket {unplanned[0]!r}, which its record or blob metadata does"
                " not name: not restored"
            )
        if manifest.kind is Kind.DAILY:
            if manifest.engine is not self.engine.engine:
                raise BackupError(
                    f"{name} is a full {manifest.engine.value} backup; it cannot "
                    f"be restored into {self.engine.engine.value}"
                )
            # steps: one `influxd restore` (1.x), or one POST per shard file (2.x)
            shards = sum(1 for f in manifest.files if f.name.endswith(".tar.gz"))
            steps = shards if manifest.engine is Engine.INFLUXDB2 else 1
            advance = self.reporter.task(f"restore {name}", max(1, steps))
            self.engine.restore_full(
                extracted, targets[None], merge[None], advance, manifest.shards
            )
            for extra in manifest.extra_buckets:
                self.engine.for_bucket(extra.bucket).restore_full(
                    extracted, targets[extra.bucket], merge[extra.bucket], advance, manifest.shards
                )
            return
        limit = None
        if until is not None:
            limit = (
                int(until.timestamp()) * PRECISION_PER_SECOND[manifest.precision]
                + PRECISION_PER_SECOND[manifest.precision]
                - 1
            )
        members: list[tuple[str | None, str, int | None]] = [
            (None, DATA_MEMBER, manifest.lines),
            *((e.bucket, e.member or "", e.lines) for e in manifest.extra_buckets),
        ]
        for bucket, member, lines in members:
            target = targets[bucket]
            self.engine.ensure_target(target)
            advance = self.reporter.task(
                f"write {name}" + (f" ({bucket})" if bucket else ""), lines
            )
            written = self.engine.write_lines(
                filtered_lines(
                    extracted / member, limit, legacy=manifest.line_protocol == 1, name=name
                ),
                target,
                manifest.precision,
                advance,
            )
            log.info("restored %s: %d lines into %s", name, written, target)

    def _check_target(self, target: str, force: bool) -> bool:
        """True when the target exists (the restore merges into it)."""
        state = self.engine.target_state(target)
        if state == "nonempty" and not force:
            raise RestoreRefusedError(
                f"{target!r} already holds data: restore into a new name (--target), or pass "
                "--force to merge the backup into it"
            )
        return state != "absent"

    def _targets(
        self, target: str, extras: Sequence[str], renamed: str | None
    ) -> dict[str | None, str]:
        """The primary (None) -> `target`, each extra bucket -> extra_target; BackupError when
        two would be restored into one bucket."""
        targets: dict[str | None, str] = {None: target}
        for bucket in extras:
            into = extra_target(bucket, renamed)
            if into in targets.values():
                raise BackupError(
                    f"the backup's bucket {bucket!r} would be restored into {into!r}, as another"
                    " of its buckets: restore under a new name with --target"
                )
            targets[bucket] = into
        return targets

    def chain_extras(self, chain: Sequence[BackupId]) -> list[str]:
        """The extra buckets the backups of `chain` hold, in order of first appearance, known
        before any is downloaded: from the local archives' records, else the blobs'
        metadata."""
        local = {b.id: b.record.manifest for b in self.archives.list()}
        found: list[str] = []
        for backup_id in chain:
            if backup_id in local:
                names = [e.bucket for e in local[backup_id].extra_buckets]
            else:
                names = list(self.remote_copy(backup_id).extra_buckets)
            found.extend(n for n in names if n not in found)
        return found

    def restore(
        self, backup_id: BackupId, target: str, force: bool = False, renamed: str | None = None
    ) -> Restored:
        """Restore one backup: its primary bucket/database into `target`, each extra bucket
        into extra_target(bucket, `renamed`) (`renamed`: the --target given, else None).
        RestoreRefusedError before anything is written when a target holds data and not
        `force`."""
        merge: dict[str | None, bool] = {None: self._check_target(target, force)}  # no download yet
        with temporary_dir(self.workdir, "homewatt-restore-") as work:
            extracted, manifest = self.fetch(backup_id, work)
            extras = [e.bucket for e in manifest.extra_buckets]
            targets = self._targets(target, extras, renamed)
            merge |= {bucket: self._check_target(targets[bucket], force) for bucket in extras}
            self._restore_fetched(extracted, manifest, targets, merge, None)
        self.reporter.done()
        return Restored([backup_id], targets)

    def restore_at(
        self,
        site: str,
        at: datetime,
        target: str,
        force: bool = False,
        renamed: str | None = None,
    ) -> Restored:
        """Restore the chain up to `at` (plan_chain) into `target` and, for the extra buckets
        of any of its backups, extra_target(bucket, `renamed`); every target is checked
        before anything is written."""
        chain = plan_chain(self.available(site), at)
        targets = self._targets(target, self.chain_extras(chain), renamed)
        exists = {bucket: self._check_target(into, force) for bucket, into in targets.items()}
        for index, backup_id in enumerate(chain):
            merge = {bucket: there or index > 0 for bucket, there in exists.items()}
            with temporary_dir(self.workdir, "homewatt-restore-") as work:
                extracted, manifest = self.fetch(backup_id, work)
                self._restore_fetched(extracted, manifest, targets, merge, at)
        self.reporter.done()
        return Restored(chain, targets)

    def restore_config(
        self,
        site: str,
        backup_id: BackupId | None,
        at: datetime | None,
        *,
        root: Path,
        allowed: list[str],
        force: bool = False,
    ) -> tuple[BackupId, configfiles.Restored]:
        """Put the configuration of a daily backup (`backup_id`, or the newest full at or
        before `at`) back under `root` (configfiles.restore_config); InfluxDB is not touched."""
        if backup_id is None:
            assert at is not None
            backup_id = plan_chain(self.available(site), at)[0]
        if backup_id.kind is not Kind.DAILY:
            raise BackupError(
                f"{backup_id.name} is an hourly backup: only daily (full) backups hold the"
                " configuration"
            )
        with temporary_dir(self.workdir, "homewatt-restore-") as work:
            extracted, _ = self.fetch(backup_id, work)
            member = extracted / configfiles.MEMBER
            if not member.exists():
                raise BackupError(
                    f"{backup_id.name} holds no configuration (made before this version,"
                    " or with config_files.enabled false): take a later daily backup"
                )
            restored = configfiles.restore_config(member, root, allowed, force)
        self.reporter.done()
        return backup_id, restored

    def verify(self, name: str) -> Manifest:
        """Download a remote archive and check it against its SHA-256 and manifest; when it is
        intact, record that in the verification ledger (the blob itself is not touched)."""
        if self.store is None:
            raise BackupError("verify needs the azure section in the configuration")
        backup_id = BackupId.parse(name)
        assert backup_id is not None, name
        metadata = self.store.metadata(name)
        if metadata is None:
            raise BackupError(f"blob {name} does not exist in the container")
        expected = metadata.get("sha256") or ""
        try:
            if not expected:
                raise CorruptArchiveError(f"blob {name} carries no SHA-256 metadata")
            with temporary_dir(self.workdir, "homewatt-verify-") as work:
                download = work / "download.tar"
                advance = self.reporter.task(
                    f"download {name}", int(metadata.get("size", "0") or 0) or None
                )
                self.store.download(name, download, advance)
                manifest = check_archive(download, expected, label=f"blob {name}")
        except CorruptArchiveError as exc:
            # the verdict is revoked: no longer "verified" for list, rotation and restore,
            # and a local copy is no longer "uploaded"
            self.ledger.revoke(name, expected, utc_now(), str(exc))
            others = [
                e
                for n, e in self.ledger.entries().items()
                if BackupId.parse(n) == backup_id and not e.revoked
            ]
            if not others:  # no verified revision left: the local copy goes up again
                self.archives.unmark_uploaded(backup_id)
            raise CorruptArchiveError(f"{exc}; revoked") from None
        self.reporter.done()
        self.ledger.record(backup_id.name, expected, utc_now())
        return manifest
