"""A source's password (an Emporia account's, a Shelly device's), as every kind reads it.

The password is never in the config: the entry names a file (`password_file`, mode 0600) or a
systemd credential (`password_credential`, LoadCredential=). The credential's name is the
operator's (one per account or device: shelly-office, emporia-home), so outside systemd
(check-config in a shell) it is the file of that name in the contract's credentials directory
(homewatt_common.credentials.locate_credential, operator_named).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from homewatt_collector.errors import ConfigError
from homewatt_common.credentials import locate_credential, locate_file, read_located
from homewatt_common.problems import Problem, ProblemsError

APP = "homewatt-collector"


class HasPassword(Protocol):
    @property
    def password_file(self) -> Path | None: ...

    @property
    def password_credential(self) -> str | None: ...


def read_password(entry: HasPassword, key: str) -> str | None:
    """The password of the config entry at `key` ("source.devices[0]"); None when the entry
    names none. Checked as every homewatt secret is (mode 0600, not empty); ConfigError naming
    `<key>.password_credential` or `<key>.password_file` and what is wrong."""
    credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    try:
        if entry.password_credential is not None:
            location = locate_credential(
                APP,
                entry.password_credential,
                Problem("", "", f"{key}.password_credential"),
                "password",
                Path(credentials_dir) if credentials_dir else None,
                operator_named=True,
            )
        elif entry.password_file is not None:
            origin = Problem("", "", f"{key}.password_file")
            location, _ = locate_file(APP, entry.password_file, origin, "password")
        else:
            return None
        return read_located(APP, location)
    except ProblemsError as exc:
        raise ConfigError(exc.problems) from None
