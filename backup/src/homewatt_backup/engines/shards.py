"""What both engines check of every shard file of a full backup before the backup counts:
the gzip stream is complete (its trailer's CRC and length match) and the tar inside reads to
its end. A shard cut short in transfer or on disk fails here, naming the shard."""

from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path

from homewatt_backup.errors import InfluxError

CHUNK = 1 << 20


class _Counting:
    """A read-only file object that counts the bytes read through it."""

    def __init__(self, inner: gzip.GzipFile) -> None:
        self.inner = inner
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.size += len(data)
        return data


def check_shard_file(path: Path, shard_id: int, what: str) -> int:
    """Read a `.tar.gz` shard file to its end; return the tar's size in bytes (what
    `influxd backup -portable` reports as the shard's size). InfluxError when it is cut short
    or not a gzip-compressed tar."""
    try:
        with gzip.open(path, "rb") as raw:
            counted = _Counting(raw)
            with tarfile.open(fileobj=counted, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    if member.isfile():
                        source = tar.extractfile(member)
                        while source is not None and source.read(CHUNK):
                            pass
            while counted.read(CHUNK):  # the tar's end-of-archive blocks and padding
                pass
            return counted.size
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise InfluxError(
            f"{what}: shard {shard_id} ({path.name}) is incomplete or unreadable ({exc}): "
            "the backup is not kept"
        ) from None
