"""The `emporia` source's config: the Emporia accounts one instance polls, once a minute.

An account's password is never in the config: it is read from a file (`password_file`, mode
0600) or a systemd credential (`password_credential`, LoadCredential=), as the Shelly
passwords and the sink tokens are. Every device of an account is found on its own (Vue 2/3,
Utility Connect, smart plugs, and the devices nested under a channel); `devices:` only renames
them and their channels, in Vuegraf's shape (`name` is the device's name in the Emporia app,
`channels` a list by channel number or a map from channel number to name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from homewatt_collector.sources.passwords import read_password
from homewatt_common.configmodel import ConfigModel, PathField, no_inline_secret

TAG = r"^[^\s,=\\\"][^,=\\\"]*$"  # a tag value: no comma, equals sign, quote or backslash


class EmporiaDeviceConfig(ConfigModel):
    name: str = Field(min_length=1, description="the device's name in the Emporia app")
    rename: str | None = Field(
        None, pattern=TAG, description="the `device` tag (default: the app's name)"
    )
    channels: list[str] | dict[str, str] = Field(
        default_factory=dict,
        description="channel names: a list by channel number (1, 2...) or {number: name}",
    )

    def channel_name(self, channel_num: str) -> str | None:
        """The configured name of `channel_num` ("1".."16"), or None."""
        if isinstance(self.channels, dict):
            return self.channels.get(channel_num)
        if channel_num.isdigit() and 1 <= int(channel_num) <= len(self.channels):
            return self.channels[int(channel_num) - 1]
        return None


class EmporiaAccountConfig(ConfigModel):
    name: str = Field(pattern=TAG, description="the account's name (Vuegraf's account_name)")
    username: str = Field(min_length=3, description="the e-mail address of the Emporia login")
    password_file: Path | None = PathField(description="file holding the password (mode 0600)")
    password_credential: str | None = Field(
        None, description="name of a systemd credential (LoadCredential=) holding the password"
    )
    devices: list[EmporiaDeviceConfig] = Field(
        default_factory=list, description="names for devices and channels (Vuegraf's shape)"
    )
    simulator_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="an Emporia API simulator instead of Emporia's cloud: pyemvue's simulator"
        " login (no Cognito, no password sent); for tests only",
    )

    _no_inline_password = no_inline_secret("password", "password_file", "password_credential")

    @model_validator(mode="after")
    def _one_password_source(self) -> EmporiaAccountConfig:
        sources = [self.password_file, self.password_credential]
        if sum(s is not None for s in sources) != 1 and self.simulator_url is None:
            raise ValueError("set one of password_file or password_credential")
        for device in self.devices:
            names = (
                device.channels.values() if isinstance(device.channels, dict) else device.channels
            )
            for name in names:
                if not name or "\n" in name:
                    raise ValueError(f"device {device.name!r}: a channel name must not be empty")
        return self

    def device(self, app_name: str) -> EmporiaDeviceConfig | None:
        return next((d for d in self.devices if d.name == app_name), None)


class EmporiaSourceConfig(ConfigModel):
    kind: Literal["emporia"] = "emporia"
    accounts: list[EmporiaAccountConfig] = Field(min_length=1)
    schema_: Literal["homewatt", "vuegraf"] = Field(
        "homewatt",
        alias="schema",
        description="homewatt's data model, or exactly Vuegraf's (energy_usage/usage)",
    )
    interval_min: int = Field(1, ge=1, le=15, description="minutes between polls")
    lag_s: int = Field(
        5, ge=0, le=50, description="seconds after each minute before asking (Vuegraf's lagSecs)"
    )
    detailed: bool = Field(
        False,
        description="also fetch per-second data, at most once an hour (expensive for Emporia)",
    )
    max_power_w: float = Field(
        100_000.0,
        gt=0,
        le=1_000_000,
        description="the most power a channel can measure: a minute above it is rejected",
    )
    timezone: str = Field(
        "UTC", min_length=1, description="IANA time zone of Vuegraf's day points (23:59:59)"
    )

    @model_validator(mode="after")
    def _unique(self) -> EmporiaSourceConfig:
        names = [a.name for a in self.accounts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"account names must be unique: {twice}")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415 (rarely needed)

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from None
        return self

    def describe(self) -> str:
        accounts = ", ".join(f"{a.name} ({a.username})" for a in self.accounts)
        return f"Emporia accounts {accounts}, every {self.interval_min} min ({self.schema_})"


def read_passwords(config: EmporiaSourceConfig) -> dict[str, str | None]:
    """Each account's password (None: a simulator, none needed) from its file or systemd
    credential (passwords.py: mode 0600, not empty); ConfigError naming the account's key and
    what is wrong."""
    return {
        a.name: read_password(a, f"source.accounts[{index}]")
        for index, a in enumerate(config.accounts)
    }
