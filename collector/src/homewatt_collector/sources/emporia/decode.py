"""Pure conversions of what pyemvue returns: the channels of an account, the usage tree of one
minute, chart buckets, and the unit math. No I/O, no clock.

Units (pyemvue `enums.py`): every call here asks `energyUnit=KilowattHours`, so a usage is
the energy in kWh over one bucket of the scale asked for (`Scale`: "1S", "1MIN", "1H", "1D").
The average power over a bucket of `s` seconds is kWh x 3,600,000 J/kWh / s W:
kWh x 3,600,000 for a second, x 60,000 for a minute, x 1,000 for an hour (Vuegraf's factors,
`collect.py`). A bucket's timestamp is its start: the chart's `firstUsageInstant` truncated
to the scale, plus i buckets for the i-th value (Vuegraf `collect.py`). A value None is a gap
(no data in Emporia's cloud for that bucket).

Channel numbers (pyemvue `device.py`, Vuegraf `device.py`): "1".."16" are circuits, "1,2,3"
is a device's mains (a Vue's main clamps, or a smart plug's only channel), "Balance" and
"TotalUsage" are computed by Emporia and have no chart history (Vuegraf skips them for
backfill and per-second data); "MainsFromGrid"/"MainsToGrid" (Utility Connect) have none
either (pyemvue returns [] for them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from homewatt_collector.sources.emporia.config import EmporiaAccountConfig

MAINS = "1,2,3"
NO_HISTORY = frozenset({"Balance", "TotalUsage", "MainsFromGrid", "MainsToGrid"})
SCALE_S = {"1S": 1, "1MIN": 60, "15MIN": 900, "1H": 3600, "1D": 86400}
J_PER_KWH = 3_600_000.0


class ChannelLike(Protocol):
    device_gid: int
    channel_num: str
    name: str | None


class DeviceLike(Protocol):
    """pyemvue's VueDevice: what `GET /customers/devices` gives for one device."""

    device_gid: int
    device_name: str
    model: str
    channels: Sequence[ChannelLike]


class UsageChannelLike(Protocol):
    channel_num: str
    usage: float | None
    nested_devices: Mapping[int, UsageDeviceLike]


class UsageDeviceLike(Protocol):
    """pyemvue's VueUsageDevice: one device in a `getDeviceListUsages` answer."""

    device_gid: int
    channels: Mapping[str, UsageChannelLike]


@dataclass(frozen=True)
class Channel:
    """One channel of one device of an account, with its names in both schemas."""

    account: str
    device_gid: int
    channel_num: str
    device: str  # homewatt's `device` tag: the config's rename, the app's name, or the gid
    app_device: str  # the device's name in the app (Vuegraf's deviceName), or the gid
    name: str  # homewatt's `channel` tag
    vuegraf_name: str  # Vuegraf's `device_name` tag
    model: str

    @property
    def key(self) -> str:
        """Stable across restarts and renames: account, device gid and channel number."""
        return f"{self.account}/{self.device_gid}/{self.channel_num}"

    @property
    def has_history(self) -> bool:
        return self.channel_num not in NO_HISTORY


def average_power_w(kwh: float, scale: str) -> float:
    """The average power in W over one bucket of `scale` holding `kwh` (see the module doc)."""
    return kwh * J_PER_KWH / SCALE_S[scale]


def channels_of(
    devices: Iterable[DeviceLike],
    account: EmporiaAccountConfig,
    extra: Iterable[tuple[int, str]] = (),
) -> list[Channel]:
    """Every channel of an account's devices. The API lists a Vue twice (Vuegraf `device.py`):
    once with its name and its mains channel "1,2,3", once without a name with its circuits;
    smart plugs and other nested devices come as devices of their own. A device's name is the
    first non-empty one; a channel's homewatt name is the config's, else the app's, else its
    number ("1,2,3" is `total`, Balance `balance`, TotalUsage `total_usage`); the Vuegraf
    name follows Vuegraf's lookupChannelName exactly. `extra`: (device gid, channel number) of
    channels a usage answer has and the device list has not (Balance, TotalUsage)."""
    listed = list(devices)
    app_names: dict[int, str] = {}
    models: dict[int, str] = {}
    for device in listed:
        if device.device_name and device.device_gid not in app_names:
            app_names[device.device_gid] = device.device_name
        if device.model and device.device_gid not in models:
            models[device.device_gid] = device.model
    pairs = [(d.device_gid, c.channel_num, c.name) for d in listed for c in d.channels]
    pairs += [(gid, num, None) for gid, num in extra if gid in models or gid in app_names]
    channels: dict[tuple[int, str], Channel] = {}
    used: dict[int, set[str]] = {}
    for gid, num, app_name in pairs:
        if (gid, num) in channels:
            continue
        app_device = app_names.get(gid, str(gid))
        configured = account.device(app_device)
        tag = configured.rename if configured and configured.rename else app_device
        name = _homewatt_name(num, app_name, configured.channel_name(num) if configured else None)
        taken = used.setdefault(gid, set())
        if name in taken:
            name = f"{name}-{num}"
        taken.add(name)
        channels[(gid, num)] = Channel(
            account=account.name,
            device_gid=gid,
            channel_num=num,
            device=tag,
            app_device=app_device,
            name=name,
            vuegraf_name=vuegraf_channel_name(num, app_device, account),
            model=models.get(gid, "emporia"),
        )
    return list(channels.values())


def _homewatt_name(num: str, app_name: str | None, configured: str | None) -> str:
    if configured:
        return configured
    fixed = {MAINS: "total", "Balance": "balance", "TotalUsage": "total_usage"}
    if num in fixed:
        return fixed[num]
    return app_name.strip() if app_name and app_name.strip() else num


def vuegraf_channel_name(num: str, app_device: str, account: EmporiaAccountConfig) -> str:
    """Vuegraf's `device_name` tag (`device.py: lookupChannelName`): a numbered channel takes
    its name from the config of the device with that app name (a list by number, or a map),
    else `<device>-<num>`; "1,2,3" is the device's name; others are `<device>-<num>`."""
    if num.isdigit():
        configured = account.device(app_device)
        name = configured.channel_name(num) if configured else None
        return name if name else f"{app_device}-{num}"
    if num == MAINS:
        return app_device
    return f"{app_device}-{num}"


def flatten_usage(devices: Iterable[UsageDeviceLike]) -> list[tuple[int, str, float | None]]:
    """(device gid, channel number, kWh or None) for every channel of a getDeviceListUsages
    answer, the devices nested under a channel (smart plugs) included, depth first."""
    out: list[tuple[int, str, float | None]] = []
    for device in devices:
        for num, channel in device.channels.items():
            out.append((device.device_gid, num, channel.usage))
            if channel.nested_devices:
                out.extend(flatten_usage(channel.nested_devices.values()))
    return out


def floor_to(moment: datetime, scale: str) -> datetime:
    """`moment` (aware) truncated to its bucket of `scale` ("1S", "1MIN", "1H") in UTC."""
    seconds = SCALE_S[scale]
    ts = int(moment.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(ts - ts % seconds, UTC)


def chart_buckets(
    usage: Sequence[float | None], first: datetime, scale: str
) -> list[tuple[int, float | None]]:
    """(bucket start, unix s; kWh or None) for a getChartUsage answer (`usageList`,
    `firstUsageInstant`), buckets of one second, minute or hour."""
    start = int(floor_to(first, scale).timestamp())
    step = SCALE_S[scale]
    return [(start + i * step, value) for i, value in enumerate(usage)]


def day_buckets(
    usage: Sequence[float | None], first: datetime, zone: ZoneInfo
) -> list[tuple[int, float | None]]:
    """(Vuegraf's day timestamp: 23:59:59 local of the day, as unix s; kWh or None) for a
    getChartUsage answer at scale "1D". The i-th day is the local day of `first` + i days + 6 h
    (Vuegraf `collect.py`: 6 h away from DST changes)."""
    out: list[tuple[int, float | None]] = []
    for index, value in enumerate(usage):
        out.append((end_of_local_day(first + timedelta(hours=6, days=index), zone), value))
    return out


def end_of_local_day(moment: datetime, zone: ZoneInfo) -> int:
    """23:59:59 of `moment`'s day in `zone`, as unix seconds (Vuegraf `time.py:
    convertToLocalDayInUTC`)."""
    local = moment.astimezone(zone).replace(hour=23, minute=59, second=59, microsecond=0)
    return int(local.timestamp())
