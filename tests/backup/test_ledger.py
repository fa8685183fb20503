"""The local verification ledger: durable appends, the latest entry per name, a torn last line
tolerated, pruning by atomic rewrite, and files the service's user can keep writing."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from homewatt_backup.errors import BackupError
from homewatt_backup.ledger import LEDGER_NAME, LedgerEntry, VerificationLedger

A = "home/daily/20261123T030000Z.tar"
B = "home/hourly/20261123T040000Z.tar"
C = "home/hourly/20261123T050000Z.tar"
WHEN = datetime(2026, 11, 23, 3, 0, 12, tzinfo=UTC)


def test_entries_survive_a_new_instance_and_the_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    VerificationLedger(state).record(A, "aa" * 32, WHEN)
    VerificationLedger(state).record(B, "bb" * 32, WHEN)
    reopened = VerificationLedger(state)  # a restart: only the file is left
    assert reopened.verified() == {A: "aa" * 32, B: "bb" * 32}
    assert reopened.entries()[A] == LedgerEntry(A, "aa" * 32, "2026-11-23T03:00:12Z")
    path = state / LEDGER_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"name": A, "sha256": "aa" * 32, "verified": "2026-11-23T03:00:12Z"},
        {"name": B, "sha256": "bb" * 32, "verified": "2026-11-23T03:00:12Z"},
    ]


def test_a_missing_ledger_is_empty(tmp_path: Path) -> None:
    ledger = VerificationLedger(tmp_path / "nothing-here")
    assert ledger.verified() == {}
    assert ledger.prune([A]) == []
    assert not (tmp_path / "nothing-here" / LEDGER_NAME).exists()


def test_the_latest_entry_for_a_name_wins(tmp_path: Path) -> None:
    ledger = VerificationLedger(tmp_path)
    ledger.record(A, "aa" * 32, WHEN)
    ledger.record(A, "cc" * 32, WHEN)
    assert ledger.verified() == {A: "cc" * 32}


def test_a_torn_last_line_is_ignored_and_the_next_entry_is_intact(tmp_path: Path) -> None:
    ledger = VerificationLedger(tmp_path)
    ledger.record(A, "aa" * 32, WHEN)
    with ledger.path.open("ab") as handle:  # a crash in the middle of an append
        handle.write(b'{"name": "home/hourly/2026112')
    assert ledger.verified() == {A: "aa" * 32}
    ledger.record(B, "bb" * 32, WHEN)
    assert ledger.verified() == {A: "aa" * 32, B: "bb" * 32}
    lines = ledger.path.read_bytes().splitlines()  # the torn line cut off, not kept
    assert [json.loads(line)["name"] for line in lines] == [A, B]


def test_prune_keeps_only_the_listed_names_by_an_atomic_rewrite(tmp_path: Path) -> None:
    ledger = VerificationLedger(tmp_path)
    for name in (A, B, C):
        ledger.record(name, "aa" * 32, WHEN)
    ledger.record(B, "bb" * 32, WHEN)
    with ledger.path.open("ab") as handle:
        handle.write(b"torn")
    before = ledger.path.stat().st_ino
    assert ledger.prune([B, C, "home/daily/20261124T030000Z.tar"]) == [A]
    assert ledger.verified() == {C: "aa" * 32, B: "bb" * 32}
    assert ledger.path.stat().st_ino != before  # replaced, not edited in place
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    assert ledger.path.read_bytes().count(b"\n") == 2  # duplicates and the torn line gone
    assert [p.name for p in tmp_path.iterdir()] == [LEDGER_NAME]  # no temporary file left


def test_prune_leaves_an_unchanged_ledger_alone(tmp_path: Path) -> None:
    ledger = VerificationLedger(tmp_path)
    ledger.record(A, "aa" * 32, WHEN)
    ledger.record(B, "bb" * 32, WHEN)
    before = ledger.path.stat()
    assert ledger.prune([A, B, C]) == []
    after = ledger.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_leftover_of_an_interrupted_prune_is_removed(tmp_path: Path) -> None:
    ledger = VerificationLedger(tmp_path)
    ledger.record(A, "aa" * 32, WHEN)
    leftover = tmp_path / f".{LEDGER_NAME}.4242.partial"
    leftover.write_text("half")
    ledger.prune([A])
    assert not leftover.exists()
    assert ledger.verified() == {A: "aa" * 32}


def test_an_unusable_state_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    state = blocker / "state"
    with pytest.raises(BackupError) as caught:
        VerificationLedger(state).record(A, "aa" * 32, WHEN)
    assert str(caught.value) == (
        f"recording the verification of {A} in {state / LEDGER_NAME} failed: Not a directory"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
def test_run_as_root_a_new_ledger_belongs_to_the_state_directorys_owner(tmp_path: Path) -> None:
    """`sudo homewatt-backup verify` must not leave a root-owned ledger behind: the service
    (a dynamic user) could no longer append to it."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 61234, 61234)
    ledger = VerificationLedger(state)
    ledger.record(A, "aa" * 32, WHEN)
    assert (ledger.path.stat().st_uid, ledger.path.stat().st_gid) == (61234, 61234)
    ledger.prune([])  # the rewritten file too
    assert (ledger.path.stat().st_uid, ledger.path.stat().st_gid) == (61234, 61234)


def test_a_revocation_wins_over_an_earlier_verification_and_survives_a_prune(
    tmp_path: Path,
) -> None:
    ledger = VerificationLedger(tmp_path)
    ledger.record(A, "aa" * 32, WHEN)
    ledger.record(B, "bb" * 32, WHEN)
    ledger.revoke(A, "aa" * 32, WHEN, "blob A: SHA-256 … does not match")
    assert ledger.verified() == {B: "bb" * 32}
    assert ledger.revoked() == {
        A: LedgerEntry(
            A, "aa" * 32, "2026-11-23T03:00:12Z", True, "blob A: SHA-256 … does not match"
        )
    }
    assert json.loads(ledger.path.read_text().splitlines()[-1]) == {
        "name": A,
        "sha256": "aa" * 32,
        "revoked": "2026-11-23T03:00:12Z",
        "reason": "blob A: SHA-256 … does not match",
    }
    assert ledger.prune([A, B]) == []  # the duplicate line of A goes, its verdict stays
    assert VerificationLedger(tmp_path).revoked().keys() == {A}
    ledger.record(A, "aa" * 32, WHEN)  # verified again (e.g. after a repair): the latest wins
    assert ledger.verified() == {A: "aa" * 32, B: "bb" * 32}


@pytest.mark.parametrize(
    "damage",
    [b"\x00\x17garbage\xff\n", b'{"name": "home/daily/x.tar"}\n', b"[1, 2]\n", b"not json\n"],
)
def test_a_damaged_ledger_is_set_aside_with_one_warning_and_rewritten(
    tmp_path: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = VerificationLedger(tmp_path)
    ledger.record(A, "aa" * 32, WHEN)
    with ledger.path.open("ab") as handle:
        handle.write(damage)
    ledger.record(B, "bb" * 32, WHEN)
    original = ledger.path.read_bytes()
    with caplog.at_level("WARNING"):
        assert ledger.verified() == {A: "aa" * 32, B: "bb" * 32}
    [aside] = tmp_path.glob(f"{LEDGER_NAME}.damaged-*")
    assert aside.read_bytes() == original
    assert damage not in ledger.path.read_bytes()
    [warning] = caplog.messages
    assert str(ledger.path) in warning and str(aside) in warning and "1 unreadable" in warning
    caplog.clear()
    assert VerificationLedger(tmp_path).verified() == {A: "aa" * 32, B: "bb" * 32}
    assert caplog.messages == []  # set aside once
