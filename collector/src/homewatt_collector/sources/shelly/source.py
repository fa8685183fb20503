"""The `shelly` Source: many devices per instance, each polled on its own thread and interval.

`read(ts)` never waits for a device: it takes the polls finished since the last call (each
sample keeps its own poll's timestamp, a whole multiple of that device's interval_s), applies
the counter rule (counters.py) to every energy field with the baselines and offsets in the
instance's state directory, and reports each polled device in Reading.devices (the
homewatt_device_health point with its `device` tag). Run the instance at `interval_s: 1`:
the collector's cycle only collects what the device threads read.

Energy comes from the devices' own counters. A counter may be refreshed once a minute (Gen2
`aenergy.by_minute`, EMData's minute records), so the allowed rise adds one minute at
max_power_w (COUNTER_REFRESH_S) to the counter rule's bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from homewatt_collector.counters import COUNTERS_FILE, CounterGuard, RiseLimit, Series
from homewatt_collector.models import ELECTRICITY, DeviceStatus, Reading, Sample
from homewatt_collector.sources.shelly.config import ShellyDeviceConfig, ShellySourceConfig
from homewatt_collector.sources.shelly.decode import ChannelValues
from homewatt_collector.sources.shelly.poller import SPREAD_S, DevicePoller, PollResult
from homewatt_collector.throttle import LogThrottle

log = logging.getLogger(__name__)

PLUG_MAX_POWER_W = 4_600.0  # 20 A at 230 V: above any Shelly plug's or switch's rating
METER_MAX_POWER_W = 100_000.0  # a phase of a 3EM with 120 A clamps is 28 kW: ample
COUNTER_REFRESH_S = 60.0
STOP_WAIT_S = 5.0


class ShellySource:
    kind = "shelly"

    def __init__(
        self,
        config: ShellySourceConfig,
        site: str,
        passwords: dict[str, str | None],
        state_dir: Path | None = None,
    ) -> None:
        """`passwords` by device name (None: no password); `state_dir` keeps the counter
        baselines and offsets (None: in memory only)."""
        self.config = config
        self.site = site
        self.passwords = passwords
        self.counters = CounterGuard.load(state_dir / COUNTERS_FILE if state_dir else None)
        self.results: queue.Queue[PollResult] = queue.Queue()
        self.stop = threading.Event()
        self.pollers: list[DevicePoller] = []
        self.devices = {device.name: device for device in config.devices}
        self.throttle = LogThrottle()

    def open(self) -> None:
        if self.pollers:
            return
        self.stop.clear()
        count = len(self.config.devices)
        self.pollers = [
            DevicePoller(
                device,
                self.passwords.get(device.name),
                self.results,
                self.stop,
                phase_s=SPREAD_S * index / count,
            )
            for index, device in enumerate(self.config.devices)
        ]
        for poller in self.pollers:
            poller.start()

    def close(self) -> None:
        self.stop.set()
        deadline = time.monotonic() + STOP_WAIT_S
        try:
            for poller in self.pollers:
                poller.join(max(deadline - time.monotonic(), 0.0))
            self.pollers = []
        finally:
            self.counters.close()

    def read(self, ts: int) -> Reading:
        """The polls finished since the last call (`ts`, the collector's cycle, is unused:
        each sample carries its poll's own timestamp)."""
        results: list[PollResult] = []
        while True:
            try:
                results.append(self.results.get_nowait())
            except queue.Empty:
                break
        return self.reading(results)

    def reading(self, results: list[PollResult]) -> Reading:
        """Samples and device statuses from finished polls, the counter rule applied."""
        samples: list[Sample] = []
        statuses: dict[str, DeviceStatus] = {}
        errors = 0
        for result in results:
            device = self.devices[result.device]
            rejected = 0
            for channel in result.channels:
                rejected += self._check_counters(device, result, channel)
                if channel.fields:
                    samples.append(self._sample(device, result, channel))
            result_errors = result.errors + rejected
            errors += result_errors
            before = statuses.get(result.device)
            statuses[result.device] = DeviceStatus(
                result.device,
                result.model,
                result_errors + (before.errors if before else 0),
                result.timeouts + (before.timeouts if before else 0),
                result.ok or (before.ok if before else False),
                result.backoff,  # the latest poll's
            )
        return Reading(samples, errors, list(statuses.values()))

    def _check_counters(
        self, device: ShellyDeviceConfig, result: PollResult, channel: ChannelValues
    ) -> int:
        max_power = device.max_power_w or (METER_MAX_POWER_W if channel.meter else PLUG_MAX_POWER_W)
        refresh = max_power * COUNTER_REFRESH_S / 3.6e6
        limit = RiseLimit(max_power, channel.resolution_kwh + refresh)
        rejected = 0
        for name in [f for f in channel.fields if f.startswith("energy_")]:
            series = Series(device.name, self._channel(device, channel), result.model, name)
            verdict = self.counters.check(series, channel.fields[name], result.ts, limit)
            if verdict.value is None:
                del channel.fields[name]
            else:
                channel.fields[name] = verdict.value
            if verdict.rejected:
                rejected += 1
                kind = f"{device.name} {series.describe()}"
                if self.throttle.ready(kind):
                    log.warning(
                        "shelly %s: %s %s: not stored",
                        device.name,
                        series.describe(),
                        verdict.rejected,
                    )
        return rejected

    def _sample(
        self, device: ShellyDeviceConfig, result: PollResult, channel: ChannelValues
    ) -> Sample:
        tags = {
            "site": self.site,
            "source": self.kind,
            "device": device.name,
            "channel": self._channel(device, channel),
            "model": result.model,
        }
        return Sample(ELECTRICITY, tags, dict(channel.fields), result.ts)

    @staticmethod
    def _channel(device: ShellyDeviceConfig, channel: ChannelValues) -> str:
        return device.channels.get(channel.channel, channel.channel)
