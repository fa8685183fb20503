"""contracts/secrets.json, as the apps read it: the file lives in this package (secrets.json,
installed with it) and contracts/secrets.json links to it.

Each secret has one name, one path on the Pi, a kind (token, sas, password, certificate), the
units that hand it over as a systemd credential (LoadCredential= name) and the config keys
that name it.
`units` says what each unit hands its app besides secrets (config file, state directory): the
values check-config and the outbox commands assume outside systemd. `old_layout` lists the
names and paths of homewatt 0.1, which check-config recognises; `fix_lines` gives the shell line
that moves each to the contract's layout (the README's upgrade section has the same lines).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SecretSpec:
    """One secret: where it lives and what kind of value it holds."""

    name: str
    path: Path
    mode: int
    kind: str  # token | sas | password | certificate
    credentials: tuple[tuple[str, str], ...]  # (unit, LoadCredential= name)
    config_keys: tuple[tuple[str, str, str], ...]  # (app, key, value)


@dataclass(frozen=True)
class UnitSpec:
    """What a unit hands its app: the config file and the state directory (%i: instance)."""

    unit: str
    app: str
    config: str
    state_directory: str

    def config_of(self, instance: str) -> Path:
        return Path(self.config.replace("%i", instance))

    def state_directory_of(self, instance: str) -> Path:
        return Path(self.state_directory.replace("%i", instance))


@dataclass(frozen=True)
class Move:
    """A secret file of homewatt 0.1 at another path."""

    app: str
    old_path: Path
    secret: SecretSpec

    @property
    def fix(self) -> str:
        return f"sudo mv -n {self.old_path} {self.secret.path}"


@dataclass(frozen=True)
class Rename:
    """A credential name of homewatt 0.1 that the units no longer load."""

    app: str
    old_credential: str
    secret: SecretSpec

    @property
    def new_credential(self) -> str:
        return self.secret.name

    def fix(self, key: str, config: Path | str) -> str:
        """The line that renames it in `config`, where `key` (e.g. token_credential) names it."""
        leaf = key.rsplit(".", 1)[-1]
        return (
            f"sudo sed -i 's/{leaf}: {self.old_credential}$/{leaf}: {self.new_credential}/'"
            f" {config}"
        )


@dataclass(frozen=True)
class SecretsContract:
    credentials_dir: Path
    secrets: dict[str, SecretSpec]
    units: dict[str, UnitSpec]
    moves: tuple[Move, ...]
    renames: tuple[Rename, ...]

    def unit_of(self, app: str) -> UnitSpec:
        return next(u for u in self.units.values() if u.app == app)

    def credential(self, app: str, name: str) -> SecretSpec | None:
        """The secret that `app`'s unit hands over as credential `name`, if any."""
        unit = self.unit_of(app).unit
        return next(
            (s for s in self.secrets.values() if (unit, name) in s.credentials),
            None,
        )

    def credential_names(self, app: str) -> list[str]:
        unit = self.unit_of(app).unit
        return [c for s in self.secrets.values() for u, c in s.credentials if u == unit]

    def renamed(self, app: str, credential: str) -> Rename | None:
        return next(
            (r for r in self.renames if r.app == app and r.old_credential == credential), None
        )

    def moves_of(self, app: str) -> list[Move]:
        return [m for m in self.moves if m.app == app]

    def secret_at(self, app: str, path: Path) -> Move | None:
        """The move of an old path of `app`, if `path` is one."""
        return next((m for m in self.moves_of(app) if m.old_path == path), None)


def parse_contract(data: dict[str, Any]) -> SecretsContract:
    secrets = {
        name: SecretSpec(
            name=name,
            path=Path(spec["path"]),
            mode=int(spec["mode"], 8),
            kind=spec["kind"],
            credentials=tuple(
                (c["unit"], c["credential"]) for c in spec["loaded_by"] if c.get("credential")
            ),
            config_keys=tuple((k["app"], k["key"], k["value"]) for k in spec["config_keys"]),
        )
        for name, spec in data["secrets"].items()
    }
    units = {
        name: UnitSpec(name, spec["app"], spec["config"], spec["state_directory"])
        for name, spec in data["units"].items()
        if isinstance(spec, dict)
    }
    old = data["old_layout"]
    moves = tuple(
        Move(m["app"], Path(m["old_path"]), secrets[m["new_secret"]]) for m in old["moves"]
    )
    renames = tuple(
        Rename(r["app"], r["old_credential"], secrets[r["new_secret"]])
        for r in old["renamed_credentials"]
    )
    return SecretsContract(Path(data["credentials_dir"]["path"]), secrets, units, moves, renames)


@functools.cache
def load_contract() -> SecretsContract:
    """The contract installed with this package (the repository's contracts/secrets.json)."""
    text = resources.files(__package__).joinpath("secrets.json").read_text(encoding="utf-8")
    return parse_contract(json.loads(text))
