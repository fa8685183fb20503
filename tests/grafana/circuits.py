"""Circuits and plugs for the dashboard tests, written by homewatt's own Shelly and Emporia code:

- a Shelly Plug S (Gen1, `washer`, channel `switch0`): two days of history at 60 s steps, each
  step its reconstructed `/status` answer (tests/collector/shelly/fixtures/gen1-plug-s.json)
  with that minute's power and counter, decoded by `gen1.decode_status` and stored by
  `ShellySource.reading` (the counter rule applied); then a real `homewatt-collector run` with
  a shelly source polls the same plug, served by the in-repo Shelly test device
  (tests/support/shelly_devices.py) with its counter going on from the history's last
  reading, beside a configured plug that never answers (`unplugged`: read errors, timeouts,
  backoff in homewatt_device_health);
- an Emporia account (device names and channel numbers of tests/collector/emporia/fixtures/
  devices.json): the Vue 2 `Home` with its mains (`total`), three circuits and `balance`, and
  the smart plugs `Kettle` and `Dehumidifier` (the latter's minutes stopped 30 minutes ago),
  two days of minute points as the poller makes them (`ChannelState.add`, the running sums,
  and `schema.homewatt_sample`), and `Oven`'s per-second points (`interval=1s`) of the last 15
  minutes. The cloud side (pyemvue, the API's answers) is tested in tests/collector/emporia;
  here the points are what the poller writes for such answers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

from homewatt_collector.models import Sample
from homewatt_collector.sources.emporia import schema
from homewatt_collector.sources.emporia.decode import Channel
from homewatt_collector.sources.emporia.ledger import ChannelState
from homewatt_collector.sources.shelly import gen1
from homewatt_collector.sources.shelly.config import ShellySourceConfig
from homewatt_collector.sources.shelly.poller import PollResult
from homewatt_collector.sources.shelly.source import ShellySource
from tests.support.shelly_devices import FakeShelly, load_fixture

PLUG = "washer"  # a Shelly Plug S (Gen1)
PLUG_CHANNEL = "switch0"
PLUG_MODEL = "SHPLG-S"
UNPLUGGED = "unplugged"  # a configured Shelly plug that never answers
PLUGS_UNIT = "plugs"  # the collector instance polling them
VUE = "Home"  # an Emporia Vue 2
VUE_CIRCUITS = {"1": "Oven", "4": "Kitchen", "5": "Heat Pump"}  # channel number -> name
EMPORIA_PLUG = "Kettle"  # an Emporia smart plug (SSO001): its only channel is `total`
EMPORIA_SILENT = "Dehumidifier"  # a smart plug whose minutes stopped SILENT_FOR_S ago
SILENT_FOR_S = 1800
HISTORY_S = 2 * 86400
DETAILED_S = 900  # Oven's per-second points: the last 15 minutes
EMPORIA_LAG_S = 120  # the newest minute point is this much before the end (the API's lag)
WATT_MINUTES_PER_KWH = 60_000


def _washer_w(ts: int) -> float:
    """A washing machine: 2 kW for the first hour of 07:00 and 19:00 UTC, 2.5 W otherwise."""
    return 2000.0 if (ts % 86400) // 3600 in (7, 19) else 2.5


def shelly_history(site: str, end: int) -> tuple[list[Sample], float]:
    """The washer's minutes up to `end` (samples, as the shelly source stores them) and its
    counter at `end` in watt-minutes (the device's own unit)."""
    fixture = load_fixture("gen1-plug-s")
    config = ShellySourceConfig.model_validate(
        {"kind": "shelly", "devices": [{"name": PLUG, "host": "127.0.0.2"}]}
    )
    source = ShellySource(config, site, {})
    counter = 1_000_000.0  # Wmin: about 16.7 kWh, a plug in use for a while
    samples: list[Sample] = []
    try:
        for ts in range((end - HISTORY_S) // 60 * 60, end, 60):
            power = _washer_w(ts)
            counter += power  # one minute at `power` W is `power` watt-minutes
            status = copy.deepcopy(fixture["answers"]["/status"])
            status["meters"][0].update(power=power, total=int(counter), timestamp=ts)
            channels, problems = gen1.decode_status(status)
            assert problems == []
            result = PollResult(PLUG, PLUG_MODEL, ts, 0.0, channels)
            reading = source.reading([result])
            assert reading.errors == 0
            samples += reading.samples
    finally:
        source.counters.close()
    return samples, float(int(counter))


def live_washer(counter_wmin: float, host: str) -> FakeShelly:
    """The Shelly test device for the washer, its counter going on from `counter_wmin`."""
    fixture = load_fixture("gen1-plug-s")
    (counter,) = fixture["counters"]
    counter["start"] = counter_wmin
    fixture["answers"]["/status"]["meters"][0]["total"] = int(counter_wmin)
    return FakeShelly(fixture, host).start()


def plugs_config(washer: str, dead: str) -> dict[str, object]:
    return {
        "kind": "shelly",
        "devices": [
            {"name": PLUG, "host": washer, "interval_s": 1, "timeout_s": 1},
            {"name": UNPLUGGED, "host": dead, "interval_s": 1, "timeout_s": 0.3},
        ],
    }


# -------------------------------------------------------------------------- Emporia


def _channel(device: str, gid: int, num: str, name: str, model: str) -> Channel:
    return Channel(
        account="home",
        device_gid=gid,
        channel_num=num,
        device=device,
        app_device=device,
        name=name,
        vuegraf_name=device if num == "1,2,3" else f"{device}-{num}",
        model=model,
    )


def _circuit_w(name: str, ts: int) -> float:
    hour = (ts % 86400) // 3600
    return {
        "Oven": 2400.0 if hour in (11, 17) and ts % 3600 < 2400 else 0.0,
        "Kitchen": 150.0 + 50.0 * math.sin(ts / 5000.0),
        "Heat Pump": 900.0 if hour < 6 or hour >= 21 else 300.0,
        EMPORIA_PLUG: 2000.0 if ts % 7200 < 300 else 0.0,
        EMPORIA_SILENT: 180.0,
    }[name]


def emporia_channels() -> list[Channel]:
    vue = [_channel(VUE, 1001, "1,2,3", "total", "VUE002")]
    vue += [_channel(VUE, 1001, num, name, "VUE002") for num, name in VUE_CIRCUITS.items()]
    vue.append(_channel(VUE, 1001, "Balance", "balance", "VUE002"))
    plugs = [
        _channel(EMPORIA_PLUG, 2001, "1,2,3", "total", "SSO001"),
        _channel(EMPORIA_SILENT, 2002, "1,2,3", "total", "SSO001"),
    ]
    return vue + plugs


def _minute_kwh(channel: Channel, ts: int) -> float:
    """The API's kWh of the minute at `ts`; the Vue's mains see its circuits, a 350 W rest
    (`balance`) and the Kettle plugged into one of its sockets."""
    if channel.device != VUE:
        watts = _circuit_w(channel.device, ts)
    elif channel.name in VUE_CIRCUITS.values():
        watts = _circuit_w(channel.name, ts)
    else:
        rest = 350.0 + _circuit_w(EMPORIA_PLUG, ts)
        circuits = sum(_circuit_w(name, ts) for name in VUE_CIRCUITS.values())
        watts = rest + (circuits if channel.name == "total" else 0.0)
    return watts * 60 / 3.6e6


def emporia_history(site: str, end: int) -> Iterator[Sample]:
    """Minute points (and Oven's seconds) as the poller writes them, up to `end`."""
    last = (end - EMPORIA_LAG_S) // 60 * 60
    for channel in emporia_channels():
        stop = last - SILENT_FOR_S if channel.device == EMPORIA_SILENT else last
        first = (end - HISTORY_S) // 60 * 60
        state = ChannelState(minute=first - 60)
        for ts in range(first, stop + 1, 60):
            kwh = _minute_kwh(channel, ts)
            assert state.add(ts, kwh)
            yield schema.homewatt_sample(site, channel, "1MIN", ts, kwh, state)
        if channel.name == "Oven":
            for ts in range(last - DETAILED_S + 60, last + 60):
                kwh = _circuit_w("Oven", ts) / 3.6e6 + (ts % 7) * 1e-6  # a little noise
                yield schema.homewatt_sample(site, channel, "1S", ts, kwh, None)
