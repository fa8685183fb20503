"""Rotation by chain: a pure function over a list of backups (no I/O, no clock).

Rules (issue 5):
- keep the newest `keep_full` full (daily) backups;
- keep every incremental (hourly) newer than the oldest full kept: it is restorable on top of
  that full; with no full at all, keep every incremental (there is nothing to chain to);
- never delete the newest good backup, nor the newest good full (a "good" backup is a verified
  one; an unverified newer full must not push the last verified one out);
- a backup dated after `now` (made while the clock was wrong) never drives a decision: it is
  kept, and the rules above run over the others as if it were not there (else a full dated a
  year ahead would be "the newest" and every real backup after it would be rotated out).
Everything else is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from homewatt_backup.models import BackupId, BackupRef, Kind

DEFAULT_KEEP_FULL = 10


@dataclass(frozen=True)
class RotationPlan:
    keep: tuple[BackupRef, ...]
    delete: tuple[BackupRef, ...]


def future_dated(backups: Iterable[BackupRef], now: datetime | None) -> list[BackupRef]:
    """The backups dated after `now` (none when `now` is None), oldest first."""
    if now is None:
        return []
    return sorted({r for r in backups if r.timestamp > now}, key=lambda r: r.id)


def plan_rotation(
    backups: Iterable[BackupRef], keep_full: int = DEFAULT_KEEP_FULL, now: datetime | None = None
) -> RotationPlan:
    """Split `backups` into what to keep and what to delete, both sorted oldest first.

    Backups with the same id count once (good if any copy is good). With `now`, backups dated
    after it are kept and left out of every rule.
    """
    if keep_full < 1:
        raise ValueError("keep_full must be at least 1")
    by_id: dict[BackupId, bool] = {}
    for ref in backups:
        by_id[ref.id] = by_id.get(ref.id, False) or ref.good
    everything = [BackupRef(backup_id, good) for backup_id, good in sorted(by_id.items())]
    future = {r.id for r in future_dated(everything, now)}
    refs = [r for r in everything if r.id not in future]

    fulls = [r for r in refs if r.kind is Kind.DAILY]
    keep: set[BackupId] = {r.id for r in fulls[-keep_full:]}
    good_fulls = [r for r in fulls if r.good]
    if good_fulls:
        keep.add(good_fulls[-1].id)
    if keep:
        oldest_full = min(keep)
        keep.update(r.id for r in refs if r.kind is Kind.HOURLY and r.id > oldest_full)
    else:
        keep.update(r.id for r in refs if r.kind is Kind.HOURLY)
    good = [r for r in refs if r.good]
    if good:
        keep.add(good[-1].id)
    keep |= future
    return RotationPlan(
        keep=tuple(r for r in everything if r.id in keep),
        delete=tuple(r for r in everything if r.id not in keep),
    )
