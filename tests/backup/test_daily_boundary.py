"""auto picks a full (daily) backup when none was made since the last daily boundary
(`schedule.daily_full_hour_utc` o'clock UTC), to the second: a full made a second before the
boundary is the previous day's, one made at the boundary is the new day's. Pure: the runner's
kind choice at injected instants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from homewatt_backup.models import ArchiveRecord, BackupId, Engine, Kind, LocalBackup, Manifest
from homewatt_backup.runner import RequestedKind, choose_kind


def full_at(moment: datetime) -> LocalBackup:
    """A local daily backup named for `moment` (its manifest is not read by the choice)."""
    manifest = Manifest(
        "home", Kind.DAILY, moment, Engine.INFLUXDB1, "1.6.7", "homewatt", None, moment, "s", ()
    )
    return LocalBackup(
        BackupId(moment, Kind.DAILY, "home"), ArchiveRecord(manifest, "", 0, ""), True
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("full", "run", "hour", "kind"),
    [
        ("2027-02-28T02:59:58", "2027-02-28T02:59:59", 3, Kind.HOURLY),  # same side
        ("2027-02-28T02:59:59", "2027-02-28T03:00:00", 3, Kind.DAILY),  # boundary passed
        ("2027-02-28T03:00:00", "2027-02-28T03:00:01", 3, Kind.HOURLY),  # made at it: today's
        ("2027-02-27T03:00:00", "2027-02-28T02:59:59", 3, Kind.HOURLY),  # yesterday's, still
        ("2027-02-27T03:00:00", "2027-02-28T03:00:00", 3, Kind.DAILY),
        ("2027-02-28T23:59:59", "2027-03-01T00:00:00", 0, Kind.DAILY),  # midnight, month end
        ("2027-03-01T00:00:00", "2027-03-01T23:59:59", 0, Kind.HOURLY),
        ("2026-12-31T23:00:00", "2026-12-31T23:59:59", 23, Kind.HOURLY),
        ("2026-12-31T22:59:59", "2027-01-01T22:59:59", 23, Kind.DAILY),  # a year later
    ],
)
def test_auto_makes_a_full_exactly_when_the_newest_one_is_older_than_the_daily_boundary(
    full: str, run: str, hour: int, kind: Kind
) -> None:
    assert choose_kind(RequestedKind.AUTO, [full_at(at(full))], at(run), hour) is kind


def test_auto_makes_a_full_when_there_is_none() -> None:
    assert choose_kind(RequestedKind.AUTO, [], at("2027-03-01T00:10:00"), 3) is Kind.DAILY
