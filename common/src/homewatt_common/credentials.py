"""Where each secret is read from, as both apps do it.

A config names a secret either by file (`token_file: /path`) or by systemd credential
(`token_credential: NAME`, handed over by the unit's `LoadCredential=NAME:/path` into
$CREDENTIALS_DIRECTORY). Outside systemd (check-config in a shell, `sudo homewatt-backup list`)
there is no $CREDENTIALS_DIRECTORY: the file the unit would load (contracts/secrets.json) is
read instead, and the location says so (`assumed`).

The layout of homewatt 0.1 is recognised (the contract's `old_layout`): a credential name the
units no longer load, a file at its old path, a secret file missing where an old one is still
there. Each gives a problem whose `fix` holds the lines that move things into place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from homewatt_common.problems import Problem, ProblemsError
from homewatt_common.secretfile import read_secret
from homewatt_common.secrets_contract import Move, load_contract


@dataclass(frozen=True)
class SecretLocation:
    """Where one secret is read: the path, the config key (or option) that named it, and, when
    a unit-provided value was assumed outside systemd, what was assumed."""

    path: Path
    origin: Problem
    kind: str
    assumed: str | None = None


def _with_parent(move: Move) -> tuple[str, ...]:
    directory = move.secret.path.parent
    make = () if directory.exists() else (f"sudo install -d -m 0700 {directory}",)
    return (*make, move.fix)


def locate_file(
    app: str, path: Path, origin: Problem, kind: str
) -> tuple[SecretLocation, list[Problem]]:
    """A secret named by a `*_file` key or option; warnings for an old layout's path."""
    warnings = []
    move = load_contract().secret_at(app, path)
    if move is not None:
        leaf = origin.key.rsplit(".", 1)[-1]
        credential_key = leaf.replace("_file", "_credential")
        fix = list(_with_parent(move)) if path.exists() else []
        if origin.where and credential_key != leaf:
            fix.append(
                f"sudo sed -i 's|{leaf}: {path}$|{credential_key}: {move.secret.name}|'"
                f" {origin.where}"
            )
        warnings.append(
            replace(
                origin,
                message=f"{path} is where homewatt 0.1 kept the {move.secret.name} secret;"
                f" it now lives in {move.secret.path}, handed over as credential"
                f" {move.secret.name}",
                fix=tuple(fix),
            )
        )
    return SecretLocation(path, origin, kind), warnings


def locate_credential(
    app: str,
    name: str,
    origin: Problem,
    kind: str,
    credentials_dir: Path | None,
    *,
    operator_named: bool = False,
) -> SecretLocation:
    """A secret named by a `*_credential` key: in `credentials_dir` ($CREDENTIALS_DIRECTORY)
    under systemd, else the file the unit loads (assumed). ProblemsError for an old name, or a
    credential no homewatt unit loads when there is no credentials directory.

    `operator_named`: names the operator chooses (a device's password, one credential per
    device: shelly-office) that the contract cannot list; outside systemd such a name is the
    file of that name in the contract's credentials directory, where the collector role and
    install.sh write it and the instance's drop-in loads it from (assumed)."""
    contract = load_contract()
    rename = contract.renamed(app, name)
    if rename is not None:
        fix = [rename.fix(origin.key, origin.where or "<config file>")]
        fix += [
            line
            for move in contract.moves_of(app)
            if move.secret == rename.secret and move.old_path.exists()
            for line in _with_parent(move)
        ]
        raise ProblemsError(
            [
                replace(
                    origin,
                    message=f"{name!r} is the old name of this credential (homewatt 0.1):"
                    f" the unit now hands over {rename.new_credential!r}",
                    fix=tuple(fix),
                )
            ]
        )
    if credentials_dir is not None:
        return SecretLocation(credentials_dir / name, origin, kind)
    spec = contract.credential(app, name)
    if spec is None and operator_named and "/" not in name:
        path = contract.credentials_dir / name
        return SecretLocation(
            path,
            origin,
            kind,
            assumed=f"outside systemd: {path}, where the collector role and install.sh put"
            f" credential {name} (the instance's drop-in loads it)",
        )
    if spec is None:
        known = ", ".join(contract.credential_names(app))
        raise ProblemsError(
            [
                replace(
                    origin,
                    message=f"credential {name!r} needs systemd's LoadCredential="
                    f" ($CREDENTIALS_DIRECTORY is not set), and the homewatt unit loads no"
                    f" credential of that name ({known}): outside systemd name a file instead",
                )
            ]
        )
    return SecretLocation(
        spec.path,
        origin,
        kind,
        assumed=f"outside systemd: {spec.path}, the file the unit hands over as credential {name}",
    )


def read_located(app: str, location: SecretLocation) -> str:
    """The secret at `location` (secretfile.read_secret); a missing file whose homewatt 0.1
    predecessor is still there gives the line that moves it."""
    path = location.path
    if not path.exists():
        for move in load_contract().moves_of(app):
            if move.secret.path == path and move.old_path.exists():
                raise ProblemsError(
                    [
                        replace(
                            location.origin,
                            message=f"{path} does not exist, but {move.old_path} (where"
                            f" homewatt 0.1 kept it) does: move it",
                            fix=_with_parent(move),
                        )
                    ]
                )
    return read_secret(path, location.kind, location.origin)
