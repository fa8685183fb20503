"""Rotation by chain (issue 5): a pure function, checked over many generated backup sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homewatt_backup.models import BackupId, BackupRef, Kind
from homewatt_backup.rotation import plan_rotation

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ref(hours: int, kind: Kind, good: bool = True) -> BackupRef:
    return BackupRef(BackupId(T0 + timedelta(hours=hours), kind, "home"), good)


backup_sets = st.lists(
    st.builds(ref, st.integers(0, 24 * 60), st.sampled_from(list(Kind)), st.booleans()),
    max_size=80,
)


def _unique(refs: list[BackupRef]) -> list[BackupRef]:
    seen: dict[BackupId, BackupRef] = {}
    for r in refs:
        seen.setdefault(r.id, r)
    return list(seen.values())


@settings(max_examples=400, deadline=None)
@given(backup_sets, st.integers(1, 12))
def test_rotation_keeps_and_deletes_exactly_the_input(
    refs: list[BackupRef], keep_full: int
) -> None:
    refs = _unique(refs)
    plan = plan_rotation(refs, keep_full)
    keep, delete = {r.id for r in plan.keep}, {r.id for r in plan.delete}
    assert keep.isdisjoint(delete)
    assert keep | delete == {r.id for r in refs}


@settings(max_examples=400, deadline=None)
@given(backup_sets, st.integers(1, 12))
def test_rotation_never_deletes_the_newest_good_backup_nor_the_newest_good_full(
    refs: list[BackupRef], keep_full: int
) -> None:
    refs = _unique(refs)
    keep = {r.id for r in plan_rotation(refs, keep_full).keep}
    good = sorted(r.id for r in refs if r.good)
    good_fulls = [i for i in good if i.kind is Kind.DAILY]
    if good:
        assert good[-1] in keep
    if good_fulls:
        assert good_fulls[-1] in keep


@settings(max_examples=400, deadline=None)
@given(backup_sets, st.integers(1, 12))
def test_rotation_keeps_the_last_n_fulls_and_every_incremental_after_the_oldest_kept_full(
    refs: list[BackupRef], keep_full: int
) -> None:
    refs = _unique(refs)
    keep = {r.id for r in plan_rotation(refs, keep_full).keep}
    fulls = sorted(r.id for r in refs if r.kind is Kind.DAILY)
    assert set(fulls[-keep_full:]) <= keep
    kept_fulls = sorted(i for i in keep if i.kind is Kind.DAILY)
    # at most one extra full: the newest good one when newer fulls are unverified
    assert len(kept_fulls) <= keep_full + 1
    hourlies = [r.id for r in refs if r.kind is Kind.HOURLY]
    if kept_fulls:
        oldest = kept_fulls[0]
        assert {h for h in hourlies if h > oldest} <= keep
        # a deleted incremental is never newer than the oldest kept full
        newest_good = max((r.id for r in refs if r.good), default=None)
        for h in hourlies:
            if h not in keep:
                assert h < oldest
        deleted_hourlies = [h for h in hourlies if h not in keep]
        assert all(h != newest_good for h in deleted_hourlies)
    else:
        assert set(hourlies) <= keep  # nothing to chain to: every incremental stays


@settings(max_examples=300, deadline=None)
@given(backup_sets, st.integers(1, 12), st.randoms())
def test_rotation_is_idempotent_and_ignores_input_order(
    refs: list[BackupRef], keep_full: int, rnd: object
) -> None:
    refs = _unique(refs)
    plan = plan_rotation(refs, keep_full)
    shuffled = list(refs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan_rotation(shuffled, keep_full) == plan
    again = plan_rotation(plan.keep, keep_full)
    assert again.delete == ()
    assert again.keep == plan.keep


def test_rotation_example_eleven_days_of_hourly_chains_keeps_ten() -> None:
    refs = []
    for day in range(11):
        refs.append(ref(day * 24, Kind.DAILY))
        refs.extend(ref(day * 24 + h, Kind.HOURLY) for h in range(1, 24))
    plan = plan_rotation(refs, 10)
    deleted = {r.id for r in plan.delete}
    assert deleted == {r.id for r in refs if r.id.timestamp < T0 + timedelta(days=1)}
    assert len(plan.keep) == 10 * 24


def test_rotation_keeps_an_older_verified_full_when_the_newer_ones_are_unverified() -> None:
    refs = [
        ref(0, Kind.DAILY, good=True),
        ref(1, Kind.HOURLY, good=True),
        ref(24, Kind.DAILY, good=False),
        ref(48, Kind.DAILY, good=False),
    ]
    plan = plan_rotation(refs, keep_full=2)
    assert plan.delete == ()


def test_rotation_rejects_keeping_zero_fulls() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_rotation([], 0)


@settings(max_examples=300, deadline=None)
@given(backup_sets, backup_sets, st.integers(1, 12))
def test_rotation_keeps_future_dated_backups_and_plans_the_rest_as_if_they_were_absent(
    past: list[BackupRef], ahead: list[BackupRef], keep_full: int
) -> None:
    """A backup dated after `now` (made on a wrong clock) is kept and changes no decision."""
    now = T0 + timedelta(hours=24 * 60 + 1)
    future = [
        BackupRef(BackupId(r.id.timestamp + timedelta(days=400), r.id.kind, "home"), r.good)
        for r in _unique(ahead)
    ]
    real = _unique(past)
    plan = plan_rotation([*real, *future], keep_full, now)
    alone = plan_rotation(real, keep_full, now)
    assert {r.id for r in future} <= {r.id for r in plan.keep}
    assert {r.id for r in plan.delete} == {r.id for r in alone.delete}
