"""An RS485 line between two pseudo-terminals: the collector on one end, meters on the other.

A bare pty pair passes bytes instantly and ignores the baud rate. This line behaves like the
wire instead:
- half duplex at `line_baud`: a frame arrives `bits_per_char / baud` seconds per character
  after the line is free (so bus time can be measured);
- a client whose port is set to another baud rate than the line's sends noise, as a real UART
  at the wrong speed does (so `scan` only finds a meter at its real speed);
- only the device ids in `present_ids` answer; a request to any other id gets silence, as on a
  real bus (pymodbus's simulator would answer it with an exception instead);
- faults on demand: a burst of garbage, a device id that stays silent, the adapter unplugged
  (its pty and its stable path removed) and plugged in again.
The collector opens `client_path` (like /dev/serial/by-id/...), the meter server `meter_path`.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import random
import select
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

BAUD_CONSTANTS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
}


@dataclass
class _End:
    master: int
    slave: int  # kept open so the master never reads EIO between clients
    path: Path

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _open_end(link: Path) -> _End:
    master, slave = os.openpty()
    tty.setraw(slave)
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(os.ttyname(slave))
    return _End(master, slave, link)


@dataclass
class LineStats:
    to_meter_bytes: int = 0
    to_client_bytes: int = 0
    garbled_chunks: int = 0
    dropped_requests: int = 0
    busy_s: float = 0.0  # time the wire carried characters


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    to_meter: bool = field(compare=False)
    data: bytes = field(compare=False)


class RS485Line:
    def __init__(
        self,
        workdir: Path,
        *,
        line_baud: int = 9600,
        bits_per_char: int = 11,
        emulate_timing: bool = True,
        name: str = "ttyUSB-homewatt",
        present_ids: set[int] | None = None,
    ) -> None:
        self.client_path = workdir / name
        self.meter_path = workdir / f"{name}-meters"
        self.line_baud = line_baud
        self.char_s = bits_per_char / line_baud if emulate_timing else 0.0
        self.stats = LineStats()
        self.present_ids = present_ids
        self.silent_ids: set[int] = set()
        self._client: _End | None = None
        self._meter: _End | None = None
        self._lock = threading.Lock()
        self._queue: list[_Delivery] = []
        self._seq = 0
        self._wire_free = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random(485)
        self._corrupt_responses = 0
        self._noise_before_response = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> RS485Line:
        self._meter = _open_end(self.meter_path)
        self._client = _open_end(self.client_path)
        self._thread = threading.Thread(target=self._run, name="rs485-line", daemon=True)
        self._thread.start()
        return self

    @property
    def thread_id(self) -> int | None:
        """The kernel's id of the thread that moves the bytes (for its priority), once started."""
        return None if self._thread is None else self._thread.native_id

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for end in (self._client, self._meter):
                if end is not None:
                    end.close()
            self._client = self._meter = None

    def unplug(self) -> None:
        """The USB adapter is pulled: its device node and stable path disappear."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def replug(self) -> None:
        with self._lock:
            if self._client is None:
                self._client = _open_end(self.client_path)

    def corrupt_next_responses(self, count: int = 1) -> None:
        """Flip a bit in the next `count` meter responses: the collector sees a CRC error."""
        with self._lock:
            self._corrupt_responses += count

    def noise_before_next_response(self, nbytes: int = 64) -> None:
        """A burst of noise on the wire right after the next request, before the answer."""
        with self._lock:
            self._noise_before_response = nbytes

    def _noise(self, nbytes: int) -> bytes:
        return bytes(self._rng.randrange(256) for _ in range(nbytes))

    # -- the wire ------------------------------------------------------------------------------

    def _client_baud(self) -> int | None:
        with self._lock:
            if self._client is None:
                return None
            try:
                attrs = termios.tcgetattr(self._client.slave)
            except termios.error:
                return None
        return BAUD_CONSTANTS.get(attrs[5])

    def _schedule(self, data: bytes, to_meter: bool) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._wire_free)
            duration = len(data) * self.char_s
            self._wire_free = start + duration
            self.stats.busy_s += duration
            self._seq += 1
            heapq.heappush(self._queue, _Delivery(start + duration, self._seq, to_meter, data))

    def _from_client(self, data: bytes) -> None:
        baud = self._client_baud()
        if baud is not None and baud != self.line_baud:
            self.stats.garbled_chunks += 1
            data = self._noise(len(data))
        elif data and (
            data[0] in self.silent_ids
            or (self.present_ids is not None and data[0] not in self.present_ids)
        ):
            self.stats.dropped_requests += 1
            return
        self._schedule(data, to_meter=True)
        with self._lock:
            noise, self._noise_before_response = self._noise_before_response, 0
        if noise:
            self._schedule(self._noise(noise), to_meter=False)

    def _from_meter(self, data: bytes) -> None:
        with self._lock:
            corrupt = self._corrupt_responses > 0
            if corrupt:
                self._corrupt_responses -= 1
        if corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0x01])
        self._schedule(data, to_meter=False)

    def _deliver_due(self) -> float | None:
        """Write what is due; return seconds until the next delivery, None if nothing waits."""
        while True:
            with self._lock:
                if not self._queue:
                    return None
                head = self._queue[0]
                wait = head.due - time.monotonic()
                if wait > 0:
                    return wait
                heapq.heappop(self._queue)
                end = self._meter if head.to_meter else self._client
                if end is None:
                    continue  # unplugged: the bytes fall off the wire
                with contextlib.suppress(OSError):
                    os.write(end.master, head.data)
                if head.to_meter:
                    self.stats.to_meter_bytes += len(head.data)
                else:
                    self.stats.to_client_bytes += len(head.data)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._deliver_due()
            with self._lock:
                ends = [e for e in (self._client, self._meter) if e is not None]
            fds = [e.master for e in ends]
            timeout = 0.05 if wait is None else min(wait, 0.05)
            try:
                readable, _, _ = select.select(fds, [], [], timeout)
            except (OSError, ValueError):
                continue  # an end was closed under us (unplug): look again
            for fd in readable:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if not data:
                    continue
                with self._lock:
                    from_client = self._client is not None and fd == self._client.master
                if from_client:
                    self._from_client(data)
                else:
                    self._from_meter(data)
