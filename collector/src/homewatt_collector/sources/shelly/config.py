"""The `shelly` source's config: the devices one instance polls, each on its own interval.

A device's password is never in the config: it is read from a file (`password_file`, mode
0600) or a systemd credential (`password_credential`, LoadCredential=), as the sink tokens are.
Gen1 devices take it as HTTP Basic auth, Gen2+ as Digest (RFC 7616, SHA-256); the user is
`admin` on both unless `username` says otherwise (Gen2+ has no other user).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from homewatt_collector.sources.passwords import read_password
from homewatt_common.configmodel import ConfigModel, PathField, no_inline_secret

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
HOST = r"^[A-Za-z0-9][A-Za-z0-9.:-]*$"


class ShellyDeviceConfig(ConfigModel):
    name: str = Field(pattern=NAME, description="the `device` tag")
    host: str = Field(pattern=HOST, description="IP address or host name (optionally :port)")
    interval_s: int = Field(5, ge=1, le=60, description="seconds between polls of this device")
    timeout_s: float = Field(
        2.0, ge=0.2, le=30, description="for each HTTP request (connect, then the answer)"
    )
    username: str = Field("admin", min_length=1, description="Gen1 only; Gen2+ is always admin")
    password_file: Path | None = PathField(description="file holding the password (mode 0600)")
    password_credential: str | None = Field(
        None, description="name of a systemd credential (LoadCredential=) holding the password"
    )
    max_power_w: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="the most power a channel measures, in W (bounds how fast its energy"
        " counters may rise); default 4,600 W for plugs and switches, 100,000 W for meters",
    )
    channels: dict[str, str] = Field(
        default_factory=dict,
        description="renames channel tags: {switch0: kettle, em1: heat-pump}",
    )

    _no_inline_password = no_inline_secret("password", "password_file", "password_credential")

    @model_validator(mode="after")
    def _one_password_source(self) -> ShellyDeviceConfig:
        if self.password_file is not None and self.password_credential is not None:
            raise ValueError("set at most one of password_file or password_credential")
        for new in self.channels.values():
            if re.fullmatch(NAME, new) is None:
                raise ValueError(f"channel name {new!r} must match {NAME}")
        return self

    @property
    def has_password(self) -> bool:
        return self.password_file is not None or self.password_credential is not None


class ShellySourceConfig(ConfigModel):
    kind: Literal["shelly"] = "shelly"
    devices: list[ShellyDeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ShellySourceConfig:
        for key in ("name", "host"):
            values = [getattr(d, key) for d in self.devices]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"device {key}s must be unique: {twice}")
        return self

    def describe(self) -> str:
        devices = ", ".join(f"{d.name} ({d.host}, every {d.interval_s} s)" for d in self.devices)
        return f"Shelly devices {devices}"


def read_passwords(config: ShellySourceConfig) -> dict[str, str | None]:
    """Each device's password (None: none configured) from its file or systemd credential
    (passwords.py: mode 0600, not empty); ConfigError naming the device's key and what is
    wrong."""
    passwords: dict[str, str | None] = {}
    for index, device in enumerate(config.devices):
        passwords[device.name] = read_password(device, f"source.devices[{index}]")
    return passwords
