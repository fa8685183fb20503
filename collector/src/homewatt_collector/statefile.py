"""A JSON state file in the instance's state directory: load it, or move a damaged one aside.

Shape: one JSON document (UTF-8) per file; what is in it is the caller's (counters.py keeps
the counters' baselines and offsets, sources/emporia/ledger.py the Emporia channels' sums).

Power cut: save_document() writes a temporary file next to the target (`.<name>.tmp`), fsyncs
it and renames it over the target, so after a power cut the file holds the old document or the
new one, never a part of either.

Errors: load_document() never raises for the file's content. A missing file is no state yet.
A file that cannot be read is logged and left where it is. A file that is not JSON, or that the
caller's `parse` rejects (ValueError, TypeError, KeyError, AttributeError), is renamed to
`<name>.damaged-<UTC stamp, %Y%m%dT%H%M%SZ>` (kept for a post-mortem) with one error line
naming the file, the reason, the new name and the caller's `consequence`. save_document()
raises OSError (a full or failing disk) and leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def load_document(path: Path, what: str, consequence: str, parse: Callable[[Any], T]) -> T | None:
    """`parse` applied to the JSON document at `path`, or None when there is no usable state.

    `what` names the file in the log line ("counter state"), `consequence` says what starting
    over means ("every counter takes a new baseline"). None for a missing file, for one that
    cannot be read (logged), and for a damaged one (moved aside and logged, see above).
    """
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("%s %s: cannot read: %s; %s", what, path, exc, consequence)
        return None
    try:
        return parse(json.loads(content.decode("utf-8")))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        aside = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        with contextlib.suppress(OSError):
            path.rename(aside)
        log.error(
            "%s %s is damaged (%s): moved aside to %s; %s", what, path, exc, aside.name, consequence
        )
        return None


def save_document(path: Path, document: object) -> None:
    """Replace the file at `path` with `document` as JSON, atomically (write, fsync, rename).

    Raises OSError when the disk refuses; the file at `path` is then unchanged.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
