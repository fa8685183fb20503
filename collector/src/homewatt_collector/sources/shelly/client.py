"""One Shelly device over its local HTTP API, through requests (a well-kept client whose
HTTPDigestAuth speaks RFC 7616 with SHA-256, as Gen2+ devices ask).

- `GET /shelly` (never protected) tells the generation (decode.parse_info).
- Gen1: `GET /status` with HTTP Basic auth when the device has a password.
- Gen2+: `GET /rpc/<Method>?id=N` with Digest auth, user `admin`, realm the device id
  (shelly-api-docs.shelly.cloud/gen2/General/Authentication).
requests' exceptions and HTTP errors are translated here, in one place, into ShellyError kinds.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth

from homewatt_collector.sources.shelly.decode import BadAnswer, DeviceInfo, parse_info

GEN2_USER = "admin"  # Gen2+ devices know no other user


class ShellyError(Exception):
    """A poll failed; the message names the device and what went wrong, never a password."""


class Unreachable(ShellyError):
    """No connection (refused, no route, reset)."""


class TimedOut(ShellyError):
    """No connection or no answer within the device's timeout_s."""


class AuthFailed(ShellyError):
    """The device refused our credentials, or asks for a password the config does not give."""


class AnswerError(ShellyError):
    """An HTTP error status or an answer this poller cannot read."""


class ShellyClient:
    def __init__(
        self, host: str, timeout_s: float, username: str = "admin", password: str | None = None
    ) -> None:
        self.host = host
        self.base = f"http://{host}"
        self.timeout = (timeout_s, timeout_s)  # connect, then each read of the answer
        self.username = username
        self.password = password
        self.session = requests.Session()
        # Devices on the LAN: no proxy and no .netrc from the environment (looking them up
        # on every request is also a good part of requests' CPU time per poll).
        self.session.trust_env = False
        self.session.headers["User-Agent"] = "homewatt-collector"
        self._auth: AuthBase | None = None

    def close(self) -> None:
        self.session.close()

    def info(self) -> DeviceInfo:
        """`GET /shelly`, and the auth its generation takes from now on; AuthFailed when the
        device asks for a password and none is configured."""
        info = self.detect()
        if info.auth and self.password is None:
            raise AuthFailed(
                f"{self.host} asks for a password (auth enabled) but the config names none:"
                " set password_credential or password_file"
            )
        return info

    def detect(self) -> DeviceInfo:
        """`GET /shelly` (never protected): the generation, model and whether it asks for a
        password; sets the auth the generation takes (Basic for Gen1, Digest for Gen2+)."""
        try:
            info = parse_info(self._get("/shelly", None, auth=False))
        except BadAnswer as exc:
            raise AnswerError(f"{self.host}: {exc}") from None
        self._auth = None
        if self.password is not None:
            if info.gen >= 2:
                self._auth = HTTPDigestAuth(GEN2_USER, self.password)
            else:
                self._auth = HTTPBasicAuth(self.username, self.password)
        return info

    def status(self) -> Any:
        """Gen1 `GET /status`."""
        return self._get("/status", None, auth=True)

    def rpc(self, method: str, id: int | None = None) -> Any:
        """Gen2+ `GET /rpc/<method>?id=N`; a JSON-RPC error answer is an AnswerError."""
        return self._get(f"/rpc/{method}", None if id is None else {"id": id}, auth=True)

    def _get(self, path: str, params: dict[str, int] | None, *, auth: bool) -> Any:
        where = f"{self.host}{path}" + (f"?id={params['id']}" if params else "")
        try:
            response = self.session.get(
                self.base + path,
                params=params,
                auth=self._auth if auth else None,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise TimedOut(f"{where}: no answer within {self.timeout[0]:g} s") from None
        except requests.ConnectionError as exc:
            raise Unreachable(f"{where}: cannot connect: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise AnswerError(f"{where}: {_reason(exc)}") from None
        if response.status_code == 401:
            raise AuthFailed(
                f"{where}: refused the password (HTTP 401)"
                if self._auth is not None
                else f"{where}: asks for a password (HTTP 401) but the config names none"
            )
        if response.status_code != 200:
            raise AnswerError(f"{where}: HTTP {response.status_code} {_error_text(response)}")
        try:
            return response.json()
        except ValueError:
            raise AnswerError(f"{where}: the answer is not JSON") from None


def _reason(exc: Exception) -> str:
    """The innermost cause's text (urllib3 wraps the socket error twice)."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _error_text(response: requests.Response) -> str:
    """A JSON-RPC error's `message`, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:120].strip()
    if isinstance(body, dict):
        return str(body.get("message", body))[:200]
    return str(body)[:200]
