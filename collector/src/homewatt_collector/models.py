"""The values that flow through the collector: sources produce Samples, the outbox keeps them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FieldValue = float | int | bool | str

ELECTRICITY = "electricity"
HEALTH = "homewatt_health"
DEVICE_HEALTH = "homewatt_device_health"


@dataclass(frozen=True, slots=True)
class Sample:
    """One point: a measurement with tags and fields at a UTC unix timestamp in seconds.

    Its identity is (measurement, tags, ts): two samples with the same identity are the same
    sample, and InfluxDB keeps one of them.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    ts: int


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """How one device fared in one cycle: its tags (`device`, `model`), failed or rejected
    reads, requests it left unanswered, whether any value was read (a good read), and whether
    it is backed off (silent for a while: only probed now and then, not read every cycle)."""

    device: str
    model: str
    errors: int = 0
    timeouts: int = 0
    ok: bool = True
    backoff: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """What a source returns for one cycle: the samples it read and the faults it counted
    (`errors` in all; `devices`, per device, for homewatt_device_health)."""

    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    devices: list[DeviceStatus] = field(default_factory=list)
