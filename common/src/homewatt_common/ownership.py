"""Files that root creates in a service's state directory stay the service's.

An operator runs a maintenance command as root (`sudo homewatt-collector outbox replay`,
`sudo homewatt-backup verify`) against a state directory that belongs to the service's own
user (systemd's DynamicUser=, StateDirectory=). Every file such a command creates there (an
SQLite journal, a lock file, a ledger) must be handed to the directory's owner, or the service
can no longer open it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path


def hand_over(paths: Iterable[Path], directory: Path) -> None:
    """Run as root: give each existing path in `paths` the owner and group of `directory`
    (when that is not root). Does nothing for other users, who cannot create files for others."""
    if os.geteuid() != 0:
        return
    owner = directory.stat()
    if (owner.st_uid, owner.st_gid) == (0, 0):
        return
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # a journal may come and go meanwhile
            info = path.lstat()
            if (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
