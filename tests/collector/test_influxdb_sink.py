"""The InfluxDB sink's request, byte for byte where it matters, against a local HTTP server that
records what arrives: the InfluxDB v2 write API as documented (POST /api/v2/write, org, bucket,
precision=s, `Authorization: Token ...`, gzip body; InfluxDB 2 OpenAPI `PostWrite`) and the
error body shape `{"code": ..., "message": ...}` its answers carry."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from homewatt_collector.errors import SinkUnauthorized, SinkUnavailable
from homewatt_collector.sinks.influxdb import InfluxDBSink


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    answer: tuple[int, dict[str, str], bytes] = (204, {}, b"")


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parsed = urllib.parse.urlsplit(self.path)
            state.requests.append(
                Recorded(
                    self.command,
                    parsed.path,
                    urllib.parse.parse_qs(parsed.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
            )
            status, headers, body = state.answer
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = _record
        do_GET = _record

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_a_write_is_the_v2_write_request_with_a_token_and_a_gzip_body(server: Server) -> None:
    sink = InfluxDBSink(name="local", url=server.url, org="home org", bucket="b", token="tok")
    sink.write(["m,t=a f=1 1700000000", "m,t=b f=2 1700000000"])
    sink.close()
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/api/v2/write")
    assert request.query == {"org": ["home org"], "bucket": ["b"], "precision": ["s"]}
    assert request.headers["authorization"] == "Token tok"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "text/plain; charset=utf-8"
    assert gzip.decompress(request.body) == b"m,t=a f=1 1700000000\nm,t=b f=2 1700000000"


def test_an_anonymous_sink_sends_no_authorization_and_a_url_password_is_never_sent(
    server: Server,
) -> None:
    url = server.url.replace("http://", "http://homewatt:s3cret@")
    sink = InfluxDBSink(name="local", url=url, org="o", bucket="b", token=None)
    sink.write(["m f=1 1"])
    assert sink.ready()
    sink.close()
    assert [r.path for r in server.requests] == ["/api/v2/write", "/ping"]
    for request in server.requests:
        assert "authorization" not in request.headers
        assert "s3cret" not in json.dumps(request.headers)
    assert "s3cret" not in sink.url


def test_an_error_answer_is_classified_from_its_message_and_retry_after(server: Server) -> None:
    sink = InfluxDBSink(name="local", url=server.url, org="o", bucket="b", token="tok")
    server.answer = (
        401,
        {"Content-Type": "application/json"},
        b'{"code":"unauthorized","message":"unauthorized access"}',
    )
    with pytest.raises(SinkUnauthorized, match=r"HTTP 401: unauthorized access \(check"):
        sink.write(["m f=1 1"])
    server.answer = (503, {"Retry-After": "7"}, b"busy")
    with pytest.raises(SinkUnavailable, match="HTTP 503: busy") as raised:
        sink.write(["m f=1 1"])
    assert raised.value.retry_after_s == 7.0
    sink.close()


def test_a_server_that_is_not_there_is_unavailable_and_not_ready() -> None:
    sink = InfluxDBSink(name="local", url="http://127.0.0.1:9", org="o", bucket="b", token=None)
    with pytest.raises(SinkUnavailable, match="connection refused"):
        sink.write(["m f=1 1"])
    assert not sink.ready()
    sink.close()
