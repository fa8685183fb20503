"""The repository's contracts, read as plain JSON by the tests of every part that follows them
(never a hand-kept copy of their names and paths)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def secrets_contract() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "contracts" / "secrets.json").read_text())
    return data


def unit_credentials(unit: str) -> set[str]:
    """`LoadCredential=` values the unit file itself must carry: NAME:PATH per secret it loads
    (entries marked drop_in are added by drop-ins, not the unit file)."""
    return {
        f"{entry['credential']}:{secret['path']}"
        for secret in secrets_contract()["secrets"].values()
        for entry in secret["loaded_by"]
        if entry["unit"] == unit and entry.get("credential") and not entry.get("drop_in")
    }


def config_key_values(app: str) -> dict[str, set[str]]:
    """config key -> the credential names the contract lets `app`'s configs give it."""
    out: dict[str, set[str]] = {}
    for secret in secrets_contract()["secrets"].values():
        for key in secret["config_keys"]:
            if key["app"] == app:
                out.setdefault(key["key"], set()).add(key["value"])
    return out
