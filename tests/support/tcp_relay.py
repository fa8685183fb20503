"""A TCP relay (stdlib only, so it also runs with a container's bare python3): accepts on
LISTEN_HOST:LISTEN_PORT and copies bytes both ways to TARGET_HOST:TARGET_PORT.

    python3 tcp_relay.py 127.0.0.1 10000 10.208.0.1 41234

Used where an app accepts only a loopback address (the backup's plain-http Azure emulator URL)
and the server runs on the test host, reached over the systemd rig's bridge: the relay inside
the container makes it loopback there. It adds nothing to the bytes; it ends with its process.

`TcpRelay` is the same relay in the test's own process, with one fault: `hold_s` holds every
byte the client sends that long before it goes on to the server (the client's connection is
read at once, so a client that writes and closes without waiting for an answer, as
`influxd restore -portable` does with each shard, has exited before the server sees a byte:
a loaded machine, made deterministic). `hold_when` picks the connections held by their first
bytes (at least PEEK of them unless the connection ends sooner; all connections when None).
The server's answers are never held.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable

PEEK = 2


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    """Relay every connection to `listen` to `target`, forever."""
    with socket.create_server(listen, reuse_port=False) as server:
        while True:
            client, _address = server.accept()
            try:
                upstream = socket.create_connection(target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for pair in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=pair, daemon=True).start()


class TcpRelay:
    """A relay on a free port of `host` to `target`; see the module docstring. Every
    connection's first bytes are kept in `firsts` (in the order they arrived)."""

    def __init__(
        self,
        target: tuple[str, int],
        hold_s: float = 0.0,
        hold_when: Callable[[bytes], bool] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.target = target
        self.hold_s = hold_s
        self.hold_when = hold_when
        self.server = socket.create_server((host, 0))
        self.address = f"{host}:{self.server.getsockname()[1]}"
        self.firsts: list[bytes] = []
        self._sockets: list[socket.socket] = []
        self._stopped = threading.Event()

    def start(self) -> TcpRelay:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        for sock in [self.server, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _address = self.server.accept()
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            threading.Thread(target=self._forward, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def _forward(self, client: socket.socket, upstream: socket.socket) -> None:
        """Client to server: read everything at once, send each piece `hold_s` after it came
        (when held); at the client's end of stream, half-close towards the server."""
        pieces: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            try:
                while data := client.recv(65536):
                    pieces.put((time.monotonic(), data))
            except OSError:
                pass
            pieces.put((time.monotonic(), b""))

        threading.Thread(target=read, daemon=True).start()
        first: list[tuple[float, bytes]] = []
        while sum(len(d) for _, d in first) < PEEK and (not first or first[-1][1]):
            first.append(pieces.get())
        prefix = b"".join(d for _, d in first)
        self.firsts.append(prefix[:16])
        held = self.hold_when is None or self.hold_when(prefix)
        try:
            while True:
                arrived, data = first.pop(0) if first else pieces.get()
                if held:
                    self._stopped.wait(max(0.0, arrived + self.hold_s - time.monotonic()))
                if self._stopped.is_set():
                    return
                if not data:
                    upstream.shutdown(socket.SHUT_WR)
                    return
                upstream.sendall(data)
        except OSError:
            pass


if __name__ == "__main__":
    serve((sys.argv[1], int(sys.argv[2])), (sys.argv[3], int(sys.argv[4])))
