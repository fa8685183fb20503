"""A TCP relay (stdlib only, so it also runs with a container's bare python3): accepts on
LISTEN_HOST:LISTEN_PORT and copies bytes both ways to TARGET_HOST:TARGET_PORT.

    python3 tcp_relay.py 127.0.0.1 10000 10.208.0.1 41234

Used where an app accepts only a loopback address (the backup's plain-http Azure emulator URL)
and the server runs on the test host, reached over the systemd rig's bridge: the relay inside
the container makes it loopback there. It adds nothing to the bytes; it ends with its process.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading


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


if __name__ == "__main__":
    serve((sys.argv[1], int(sys.argv[2])), (sys.argv[3], int(sys.argv[4])))
