"""The fault proxy the integration tests rely on makes the faults it claims to make."""

from __future__ import annotations

import gzip
import http.client
import socket

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration


def post(port: int, body: bytes, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(
            "POST", "/api/v2/write?org=o&bucket=b&precision=s", body=body, headers=headers or {}
        )
        return conn.getresponse().status
    finally:
        conn.close()


def test_proxy_forwards_to_the_real_server(
    victoria: VictoriaMetrics, victoria_proxy: FaultProxy
) -> None:
    assert post(victoria_proxy.port, b"m,t=a f=1 1700000000\n") == 204
    assert victoria_proxy.stats.forwarded == 1


def test_proxy_down_refuses_connections_and_up_listens_on_the_same_port(
    victoria_proxy: FaultProxy,
) -> None:
    port = victoria_proxy.port
    victoria_proxy.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    victoria_proxy.up()
    assert victoria_proxy.port == port
    assert post(port, b"m f=1 1700000000\n") == 204


def test_proxy_answers_canned_statuses_then_forwards_again(victoria_proxy: FaultProxy) -> None:
    victoria_proxy.respond(503, times=2)
    statuses = [post(victoria_proxy.port, b"m f=1 1700000000\n") for _ in range(3)]
    assert statuses == [503, 503, 204]


def test_proxy_refuses_matching_gzip_bodies_without_forwarding(victoria_proxy: FaultProxy) -> None:
    victoria_proxy.reject_if(lambda body: b"poison" in body)
    body = gzip.compress(b"m,t=poison f=1 1700000000\n")
    assert post(victoria_proxy.port, body, {"Content-Encoding": "gzip"}) == 400
    assert victoria_proxy.stats.forwarded == 0


def test_proxy_cuts_a_request_mid_body(victoria_proxy: FaultProxy) -> None:
    victoria_proxy.cut_next_request_after(10)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        post(victoria_proxy.port, b"x" * 1_000_000)
    assert victoria_proxy.stats.forwarded == 0
