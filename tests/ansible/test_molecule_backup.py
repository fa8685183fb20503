"""The backup role's Molecule scenario, step by step, then converges with Azure on and a SAS
that expired (the play fails with the backup's own message) or expires within 30 days (the
play warns and goes on).

InfluxDB 2 is the stand-in run in the instance (NOT InfluxDB 2, which cannot run here); the
SAS values are made up (never valid against Azure: their signature is not a real one), since
the check under test reads only their parameters.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.ansible.conftest import Molecule, MoleculeRun, long_scenario


def azure(expiry: datetime) -> str:
    """Extra variables turning Azure on, with a SAS expiring at `expiry`."""
    sas = f"sv=2024-08-04&se={expiry:%Y-%m-%dT%H:%M:%SZ}&sr=c&sp=rcwl&sig=bm90LWEtc2lnbmF0dXJl"
    return json.dumps(
        {
            "backup_azure_enabled": True,
            "backup_azure_account_url": "https://homewattbackups.blob.core.windows.net",
            "backup_azure_sas": sas,
        }
    )


# Five or more Molecule steps (create, converges, verify, destroy): about 10 min alone, and
# 31 min were measured with the 2 cores shared at a load of 15 (the collector scenario).
@long_scenario
@pytest.mark.timeout(3000)
def test_backup_role_runs_a_backup_of_the_standin_not_a_real_influxdb2(molecule: Molecule) -> None:
    def step(*args: str, ok: bool = True) -> MoleculeRun:
        done = molecule.run("backup", *args, timeout=600)
        if ok:
            assert done.returncode == 0, (
                f"molecule {args[0]} -s backup failed:\n{done.output[-6000:]}"
            )
        return done

    now = datetime.now(UTC)
    try:
        for name in ("destroy", "create", "prepare", "converge", "idempotence", "verify"):
            step(name)

        expired = step("converge", "--", "-e", azure(now - timedelta(days=1)), ok=False)
        assert expired.returncode != 0
        assert "expired at" in expired.output, expired.output[-4000:]

        soon = step("converge", "--", "-e", azure(now + timedelta(days=10)))
        assert "WARNING: the SAS of hw-backup-bookworm expires on" in soon.output
    finally:
        with contextlib.suppress(Exception):
            molecule.run("backup", "destroy", timeout=600)
