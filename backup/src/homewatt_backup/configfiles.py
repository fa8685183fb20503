"""The site's configuration in every daily (full) backup, and putting it back.

A Pi rebuilt on a new SD card needs more than its data: its configs (collector, backup,
tariffs, Grafana provisioning under /etc/homewatt) and install.sh's answers. `collect` packs
them into one tar member of the daily archive, `config/homewatt-config.tar`:

- every regular file and directory under `config_files.directory` (/etc/homewatt,
  contracts/secrets.json's config_dir), stored as `etc/homewatt/...` with its mode and mtime;
- never its credentials directory (contracts/secrets.json's credentials_dir), and never a file
  that others may not read (mode without o+r: a secret, e.g. a Grafana token copy), so no
  secret is ever archived, whether the backup runs as its unit's dynamic user or as root;
- `config_files.install_answers` (install.sh's answers file) when set and present, stored under
  its own absolute path; a missing one is a warning, not a failure.

Symlinks, devices and other special files are skipped (each named once in the log).
`restore_config` writes the files back under a root directory (default `/`): directories are
created as needed, a file that is already there with the same content is left alone, and one
with other content is kept unless `force` (then replaced atomically). Members outside the
recorded paths, absolute or with `..`, are refused. Errors: ArchiveError naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from homewatt_backup.errors import ArchiveError, from_oserror

log = logging.getLogger(__name__)

MEMBER = "config/homewatt-config.tar"


@dataclass
class Collected:
    """What `collect` packed (archive paths) and what it left out, with why."""

    path: Path
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _archive_name(path: Path) -> str:
    return str(PurePosixPath(*path.absolute().parts[1:]))


def collect(
    directory: Path, credentials_dir: Path, install_answers: Path | None, out: Path
) -> Collected:
    """Pack `directory` (without `credentials_dir` and private files) and `install_answers`
    into the tar file `out`."""
    result = Collected(out)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:

        def add(path: Path) -> None:
            try:
                info = path.lstat()
            except OSError as exc:
                result.skipped.append(f"{path}: {exc.strerror}")
                return
            if stat.S_ISLNK(info.st_mode) or not (
                stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)
            ):
                result.skipped.append(f"{path}: not a regular file or directory")
                return
            if stat.S_ISREG(info.st_mode) and not info.st_mode & stat.S_IROTH:
                result.skipped.append(f"{path}: private (mode {stat.S_IMODE(info.st_mode):04o})")
                return
            try:
                tar.add(path, arcname=_archive_name(path), recursive=False)
            except OSError as exc:
                result.skipped.append(f"{path}: {exc.strerror}")
                return
            if stat.S_ISREG(info.st_mode):
                result.files.append(_archive_name(path))

        if directory.is_dir():
            add(directory)
            for root, dirs, files in os.walk(directory):
                here = Path(root)
                dirs[:] = sorted(
                    d for d in dirs if (here / d).absolute() != credentials_dir.absolute()
                )
                for name in sorted(dirs):
                    if (here / name).is_symlink():
                        result.skipped.append(f"{here / name}: not a regular file or directory")
                        dirs.remove(name)
                    else:
                        add(here / name)
                for name in sorted(files):
                    add(here / name)
        else:
            result.skipped.append(f"{directory}: no such directory")
        if install_answers is not None:
            if install_answers.exists():
                add(install_answers)
            else:
                result.skipped.append(f"{install_answers}: install answers not present")
    for line in result.skipped:
        log.info("configuration backup: left out %s", line)
    return result


@dataclass
class Restored:
    """Files written, already identical, kept (different and no `force`), and archive paths
    left out (outside `allowed`)."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


def archive_paths(directory: Path, install_answers: Path | None) -> list[str]:
    """The archive paths `restore_config` may write: the config directory, the answers."""
    return [_archive_name(p) for p in (directory, install_answers) if p is not None]


def _within(name: str, allowed: Sequence[str]) -> bool:
    return any(name == a or name.startswith(a.rstrip("/") + "/") for a in allowed)


def restore_config(
    tar_path: Path, root: Path, allowed: Sequence[str], force: bool = False
) -> Restored:
    """Write the files of `tar_path` (a `collect` tar) under `root`; `allowed`: the archive
    paths that may be written (the config directory and the install answers, relative)."""
    result = Restored()
    try:
        with tarfile.open(tar_path, "r") as tar:
            for member in tar.getmembers():
                pure = PurePosixPath(member.name)
                if not member.name or pure.is_absolute() or ".." in pure.parts:
                    raise ArchiveError(f"{tar_path}: unsafe member name {member.name!r}: refused")
                if not _within(member.name, allowed):
                    result.outside.append(member.name)
                    continue
                target = root / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    continue
                source = tar.extractfile(member)
                assert source is not None
                data = source.read()
                if target.exists():
                    if (
                        hashlib.sha256(target.read_bytes()).digest()
                        == hashlib.sha256(data).digest()
                    ):
                        result.unchanged.append(target)
                        continue
                    if not force:
                        result.kept.append(target)
                        continue
                target.parent.mkdir(parents=True, exist_ok=True)
                temp = target.with_name(f".{target.name}.{os.getpid()}.restoring")
                with os.fdopen(
                    os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, member.mode & 0o777), "wb"
                ) as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                temp.chmod(member.mode & 0o777)
                os.utime(temp, (member.mtime, member.mtime))
                temp.replace(target)
                result.written.append(target)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{tar_path}: not a configuration archive: {exc}") from None
    except OSError as exc:
        raise from_oserror(exc, f"restoring the configuration from {tar_path}") from None
    return result
