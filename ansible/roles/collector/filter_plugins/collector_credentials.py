"""The systemd credentials a collector instance's source names: the collector role's drop-in
loads exactly these (LoadCredential=), and the role writes their files from the vault.

`source | homewatt_source_credentials` -> sorted list of credential names.

A source kind names a secret by a key ending in `_credential` anywhere in its section (Shelly:
`devices[].password_credential`; Emporia: `accounts[].password_credential`), as the sinks name
their tokens (`token_credential`); the value is the credential's name. So a new kind with
secrets needs no change here.
"""

from __future__ import annotations

from typing import Any

SUFFIX = "_credential"


def homewatt_source_credentials(source: Any) -> list[str]:
    """Every string value of a key ending in `_credential` in `source` (nested mappings and
    lists included), sorted, each once."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if str(key).endswith(SUFFIX) and isinstance(value, str) and value:
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(source)
    return sorted(found)


class FilterModule:
    """The role's filters."""

    def filters(self) -> dict[str, Any]:
        return {"homewatt_source_credentials": homewatt_source_credentials}
