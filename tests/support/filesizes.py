"""The sizes of an SQLite outbox's files (database, -wal, -shm), sampled in a thread while a
test runs: the bound covers their sum. A transient shorter than the sampling step can be
missed; the outbox's own WAL check after every transaction is what keeps it small."""

from __future__ import annotations

import threading
from pathlib import Path

MB = 2**20
SUFFIXES = ("", "-wal", "-shm")


def file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def wal_bytes(path: Path) -> int:
    return file_bytes(path.with_name(path.name + "-wal"))


def sizes(path: Path) -> dict[str, int]:
    """Bytes of the database file and its -wal and -shm ("" names the database)."""
    return {suffix: file_bytes(path.with_name(path.name + suffix)) for suffix in SUFFIXES}


class FileSizes:
    """Peak bytes of each file and of their sum, sampled every `step_s` until the block ends."""

    def __init__(self, path: Path, step_s: float = 0.002) -> None:
        self.path = path
        self.step_s = step_s
        self.peaks = dict.fromkeys(SUFFIXES, 0)
        self.peak_total = 0
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="file-sizes", daemon=True)

    def _run(self) -> None:
        while True:
            now = sizes(self.path)
            for suffix, size in now.items():
                self.peaks[suffix] = max(self.peaks[suffix], size)
            self.peak_total = max(self.peak_total, sum(now.values()))
            self.count += 1
            if self._stop.wait(self.step_s):
                return

    def __enter__(self) -> FileSizes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
