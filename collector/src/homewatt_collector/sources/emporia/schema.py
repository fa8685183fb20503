"""Samples in either schema, from one channel's usage in one bucket (pure).

homewatt (the README's data model): measurement `electricity`, tags `site`, `source=emporia`,
`device`, `channel`, `model`, and `interval` (`1min`, `1s`, `1h`, `1d`: the bucket the power
is averaged over, so per-second, minute and hourly points of a channel never share a
timestamp and overwrite each other). Fields: `power_w` (the bucket's average power, negative
when the channel exports) and, on minute points, the running sums `energy_total_kwh` and,
once the channel has exported, `energy_export_kwh` (ledger.py). Stamped at the bucket's start.

vuegraf (Vuegraf `influx.py: createDataPoint`, `collect.py`): measurement `energy_usage`,
field `usage`, tags `account_name`, `device_name` (the channel's Vuegraf name) and `detailed`:
`False` minute points (W), `True` second points (W), `Hour` (Wh in the hour), `Day` (Wh in
the day, at 23:59:59 local).
"""

from __future__ import annotations

from homewatt_collector.models import ELECTRICITY, FieldValue, Sample
from homewatt_collector.sources.emporia.decode import Channel, average_power_w
from homewatt_collector.sources.emporia.ledger import ChannelState

VUEGRAF_MEASUREMENT = "energy_usage"
VUEGRAF_TAG = {"1S": "True", "1MIN": "False", "1H": "Hour", "1D": "Day"}
INTERVAL_TAG = {"1S": "1s", "1MIN": "1min", "1H": "1h", "1D": "1d"}
WH_PER_KWH = 1000.0


def homewatt_sample(  # noqa: PLR0917 (one bucket of one channel)
    site: str, channel: Channel, scale: str, ts: int, kwh: float, state: ChannelState | None
) -> Sample:
    """A point of homewatt's model; `state` (minute points): the sums after this minute."""
    tags = {
        "site": site,
        "source": "emporia",
        "device": channel.device,
        "channel": channel.name,
        "model": channel.model,
        "interval": INTERVAL_TAG[scale],
    }
    fields: dict[str, FieldValue] = {"power_w": average_power_w(kwh, scale)}
    if state is not None:
        fields["energy_total_kwh"] = state.total_kwh
        if state.export_kwh > 0:
            fields["energy_export_kwh"] = state.export_kwh
    return Sample(ELECTRICITY, tags, fields, ts)


def vuegraf_sample(channel: Channel, scale: str, ts: int, kwh: float) -> Sample:
    """A point exactly as Vuegraf writes it: W for seconds and minutes, Wh for hours and days
    (Vuegraf's `usage` is kWh x 3,600,000, x 60,000, x 1,000, x 1,000)."""
    usage = average_power_w(kwh, scale) if scale in ("1S", "1MIN") else kwh * WH_PER_KWH
    tags = {
        "account_name": channel.account,
        "device_name": channel.vuegraf_name,
        "detailed": VUEGRAF_TAG[scale],
    }
    return Sample(VUEGRAF_MEASUREMENT, tags, {"usage": float(usage)}, ts)
