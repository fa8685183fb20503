"""Emporia's cloud API through pyemvue, for one account, with every failure translated in one
place (`_translated`) into EmporiaError.

Login (pyemvue `pyemvue.py: login`, `auth.py`): Emporia logs in through AWS Cognito (pycognito,
boto3). The id, access and refresh tokens are kept in the instance's state directory (mode
0600, pyemvue's `token_storage_file`), so a restart renews them with the refresh token instead
of sending the password again; the password is sent only when there are no tokens or they are
refused. `simulator_url` uses pyemvue's `login_simulator` (no Cognito: an Emporia API
simulator, the tests' server).

pyemvue and its Cognito stack (boto3) are imported here only: this module is imported when an
`emporia` source starts, never by other kinds' commands.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from pyemvue import PyEmVue  # type: ignore[import-untyped]
from pyemvue.device import VueDeviceChannel  # type: ignore[import-untyped]

from homewatt_collector.errors import SourceError
from homewatt_collector.sources.emporia import decode
from homewatt_collector.sources.emporia.config import EmporiaAccountConfig

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 6.0
READ_TIMEOUT_S = 20.0


class EmporiaError(SourceError):
    """Emporia's cloud could not answer as expected. `auth`: the login or its tokens were
    refused (retried much later: the password or the account is wrong); otherwise the cloud
    was unreachable, slow, failing, or answered what homewatt cannot read (an API change)."""

    def __init__(self, message: str, *, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth


@dataclass(frozen=True)
class MinuteUsage:
    """One getDeviceListUsages answer: the instant Emporia reports and every channel's kWh."""

    instant: datetime
    usage: list[tuple[int, str, float | None]]  # (device gid, channel number, kWh or None)


def token_file(state_dir: Path, account: str) -> Path:
    return state_dir / f"emporia-{account}.tokens.json"


class EmporiaApi:
    def __init__(
        self, account: EmporiaAccountConfig, password: str | None, state_dir: Path | None
    ) -> None:
        self.account = account
        self.password = password
        self.state_dir = state_dir
        self.vue: Any = None

    @property
    def tokens(self) -> Path | None:
        return token_file(self.state_dir, self.account.name) if self.state_dir else None

    def login(self) -> None:
        """Log in (cached tokens first, then the password); EmporiaError if refused."""
        with self._translated("login"):
            vue = PyEmVue(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
            if self.account.simulator_url is not None:
                ok = vue.login_simulator(self.account.simulator_url, self.account.username)
            else:
                ok = self._login_cognito(vue)
            if not ok:
                raise EmporiaError(
                    f"Emporia account {self.account.name}: login refused for"
                    f" {self.account.username} (check the password)",
                    auth=True,
                )
        self.vue = vue

    def _login_cognito(self, vue: Any) -> bool:
        tokens = self.tokens
        if tokens is None:
            return bool(vue.login(username=self.account.username, password=self.password))
        _private_file(tokens)
        if tokens.stat().st_size > 0:
            try:
                if vue.login(token_storage_file=str(tokens)):
                    return True
            except Exception as exc:  # noqa: BLE001 (stale tokens: the password is tried next)
                log.info("emporia %s: cached tokens refused (%s)", self.account.name, exc)
        return bool(
            vue.login(
                username=self.account.username,
                password=self.password,
                token_storage_file=str(tokens),
            )
        )

    def logout(self) -> None:
        self.vue = None

    def devices(self) -> list[decode.DeviceLike]:
        """GET /customers/devices: every device of the account (nested ones included)."""
        with self._translated("the device list"):
            return list(self._vue().get_devices())

    def minute_usage(
        self, gids: Sequence[int], instant: datetime, scale: str = "1MIN"
    ) -> MinuteUsage:
        """getDeviceListUsages at `instant`, scale 1MIN (or 1H, 1D), in kWh. pyemvue's own
        retries of an answer with a None usage are off (a gap is backfilled later)."""
        with self._translated(f"the {scale} usage"):
            answer = self._vue().get_device_list_usage(
                deviceGids=list(gids),
                instant=instant,
                scale=scale,
                unit="KilowattHours",
                max_retry_attempts=1,
            )
            if not isinstance(answer, dict):
                raise TypeError(f"device list usage is a {type(answer).__name__}")
            if gids and not answer:
                # pyemvue returns {} for an error status (`if response:` is False for one):
                # the device list says which, through requests' raise_for_status
                self._vue().get_devices()
                raise EmporiaError(f"Emporia account {self.account.name}: no usage for its devices")
            devices = list(answer.values())
            reported = next((d.timestamp for d in devices if d.timestamp is not None), instant)
            return MinuteUsage(reported, decode.flatten_usage(devices))

    def chart(
        self, gid: int, channel_num: str, start: datetime, end: datetime, scale: str
    ) -> tuple[list[float | None], datetime]:
        """getChartUsage of one channel from `start` to `end` in kWh per bucket of `scale`:
        (usageList with None for gaps, firstUsageInstant)."""
        channel = VueDeviceChannel(gid=gid, channelNum=channel_num)
        with self._translated(f"the {scale} chart of channel {gid}/{channel_num}"):
            usage, first = self._vue().get_chart_usage(
                channel, start, end, scale=scale, unit="KilowattHours"
            )
            if not isinstance(usage, list) or not isinstance(first, datetime):
                raise TypeError("chart usage is not a list and an instant")
            return [None if v is None else float(v) for v in usage], first

    def _vue(self) -> Any:
        if self.vue is None:
            self.login()
        return self.vue

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """The one place where pyemvue's, requests' and boto's exceptions become one
        EmporiaError naming the account and what was asked."""
        name = f"Emporia account {self.account.name}: {what}"
        try:
            yield
        except EmporiaError:
            raise
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                self.vue = None
                raise EmporiaError(
                    f"{name}: refused (HTTP {status}): logging in again", auth=True
                ) from None
            if status == 400:
                raise EmporiaError(
                    f"{name}: Emporia refused the request (HTTP 400): an API change?"
                ) from None
            raise EmporiaError(f"{name}: Emporia answered HTTP {status}") from None
        except requests.Timeout:
            raise EmporiaError(f"{name}: no answer within {READ_TIMEOUT_S:g} s") from None
        except requests.RequestException as exc:
            raise EmporiaError(f"{name}: cannot reach Emporia ({type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 (pyemvue raises anything: one EmporiaError)
            raise _translate_other(name, exc) from None


def _translate_other(name: str, exc: Exception) -> EmporiaError:
    """Cognito's refusals (botocore ClientError NotAuthorizedException, UserNotFound...),
    botocore's connection errors, and answers pyemvue cannot parse (an API change)."""
    module = type(exc).__module__ or ""
    kind = type(exc).__name__
    if module.startswith(("botocore", "pycognito", "boto3")):
        code = ""
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
        refused = code or kind
        if any(
            k in refused
            for k in ("NotAuthorized", "UserNotFound", "PasswordReset", "TokenVerification")
        ):
            return EmporiaError(f"{name}: Cognito refused the login ({refused})", auth=True)
        return EmporiaError(f"{name}: cannot reach Emporia's login (Cognito: {refused})")
    if isinstance(exc, ValueError) and "Not authenticated" in str(exc):
        return EmporiaError(f"{name}: not logged in ({exc})", auth=True)
    if isinstance(
        exc, (KeyError, TypeError, ValueError, AttributeError, IndexError, json.JSONDecodeError)
    ):
        return EmporiaError(
            f"{name}: an answer homewatt cannot read ({kind}: {exc}): an API change?"
        )
    if isinstance(exc, OSError):
        return EmporiaError(f"{name}: {kind}: {exc}")
    return EmporiaError(f"{name}: unexpected {kind}: {exc}")


def _private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if missing, and make it 0600 if it is not: pyemvue
    opens it with open(..., "w"), which keeps the mode of an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o777 != 0o600:
        path.chmod(0o600)
