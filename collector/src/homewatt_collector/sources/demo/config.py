"""The `demo` kind's config model: the simulated meter's device tag, seed and local time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from homewatt_common.configmodel import ConfigModel


class DemoSourceConfig(ConfigModel):
    kind: Literal["demo"] = "demo"
    device: str = Field(
        "demo-meter", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="device tag"
    )
    seed: int = Field(1, description="changes which days have a kettle, oven or wash, and when")
    utc_offset_h: float = Field(
        1.0, ge=-12, le=14, description="local time for the daily load curve"
    )

    def describe(self) -> str:
        return f"a simulated household meter (device {self.device}, seed {self.seed})"
