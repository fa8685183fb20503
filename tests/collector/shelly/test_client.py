"""The HTTP client against the Shelly test devices, which enforce the auth for real: Basic for
Gen1, Digest with SHA-256 for Gen2+ (the response hash recomputed, nonces checked)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from requests.auth import HTTPDigestAuth

from homewatt_collector.sources.shelly.client import (
    AnswerError,
    AuthFailed,
    ShellyClient,
    TimedOut,
    Unreachable,
)
from tests.support import shelly_devices
from tests.support.processes import unreachable_address
from tests.support.shelly_devices import FakeShelly


@pytest.fixture
def gen1() -> Iterator[FakeShelly]:
    device = FakeShelly("gen1-plug-s", "127.0.0.21", password="plug s secret").start()
    yield device
    device.stop()


@pytest.fixture
def gen2() -> Iterator[FakeShelly]:
    device = FakeShelly("gen2-pro-3em", "127.0.0.22", password="pro 3em secret").start()
    yield device
    device.stop()


def test_gen1_basic_auth_with_the_right_password_reads_status(gen1: FakeShelly) -> None:
    client = ShellyClient(gen1.address, 2, password="plug s secret")
    assert client.info().auth is True
    assert client.status()["meters"][0]["power"] == 1843.5
    assert gen1.refused == 0  # Basic is sent with the first request


def test_gen1_with_a_wrong_password_is_refused_with_a_clear_error(gen1: FakeShelly) -> None:
    client = ShellyClient(gen1.address, 2, password="wrong")
    client.info()
    with pytest.raises(AuthFailed, match=r"127\.0\.0\.21:\d+/status: refused the password"):
        client.status()


def test_a_device_asking_for_a_password_the_config_lacks_is_told(gen1: FakeShelly) -> None:
    with pytest.raises(AuthFailed, match=r"asks for a password .* set password_credential"):
        ShellyClient(gen1.address, 2).info()


def test_gen2_digest_sha256_is_answered_and_reused_for_later_requests(gen2: FakeShelly) -> None:
    client = ShellyClient(gen2.address, 2, password="pro 3em secret")
    assert client.info().gen == 2
    for _ in range(3):
        assert client.rpc("EMData.GetStatus", 0)["total_act_ret"] >= 1026.61
    assert gen2.refused == 1  # one challenge; then the nonce is reused with a growing count


def test_gen2_digest_with_a_wrong_password_is_refused(gen2: FakeShelly) -> None:
    client = ShellyClient(gen2.address, 2, password="wrong")
    client.info()
    with pytest.raises(AuthFailed, match="refused the password"):
        client.rpc("EM.GetStatus", 0)


def test_an_expired_nonce_is_answered_with_a_new_challenge(
    gen2: FakeShelly, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shelly_devices, "NONCE_LIFETIME_S", 0.5)
    client = ShellyClient(gen2.address, 2, password="pro 3em secret")
    client.info()
    client.rpc("EM.GetStatus", 0)
    time.sleep(0.7)
    assert client.rpc("EM.GetStatus", 0)["a_act_power"] == 375.5
    assert gen2.refused == 2


def test_the_test_device_checks_the_digest_algorithm(gen2: FakeShelly) -> None:
    """An MD5 digest (what a client without SHA-256 would send) is refused: the device under
    test really checks what the client computed."""
    auth = HTTPDigestAuth("admin", "pro 3em secret")
    auth.init_per_thread_state()
    url = f"http://{gen2.address}/rpc/EM.GetStatus?id=0"
    challenge = requests.get(url, timeout=2)
    assert challenge.status_code == 401
    assert "algorithm=SHA-256" in challenge.headers["WWW-Authenticate"]
    auth._thread_local.chal = {
        "realm": "shellypro3em-a0a3b3c4d5e6",
        "nonce": "0",
        "qop": "auth",
        "algorithm": "MD5",
    }
    header = auth.build_digest_header("GET", url)
    assert header is not None
    assert requests.get(url, headers={"Authorization": header}, timeout=2).status_code == 401


def test_a_refused_connection_is_unreachable() -> None:
    with pytest.raises(Unreachable, match=r"127\.0\.0\.23:9/shelly: cannot connect"):
        ShellyClient("127.0.0.23:9", 1).info()


def test_a_host_that_drops_packets_times_out_within_the_timeout() -> None:
    with (
        unreachable_address("127.0.0.24") as address,
        pytest.raises(TimedOut, match=r"no answer within 0\.3 s"),
    ):
        ShellyClient(address, 0.3).info()


def test_an_rpc_error_answer_names_the_method(gen2: FakeShelly) -> None:
    client = ShellyClient(gen2.address, 2, password="pro 3em secret")
    client.info()
    with pytest.raises(AnswerError, match=r"Switch\.GetStatus\?id=0: HTTP 404 No handler"):
        client.rpc("Switch.GetStatus", 0)
