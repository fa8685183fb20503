"""The `emporia` Source: one poller thread per account (poller.py); read() never waits for
Emporia's cloud.

`read(ts)` takes the polls finished since the last call (each sample keeps its own minute's
or second's timestamp), reports every device of the account in Reading.devices (the
homewatt_device_health point with its `device` tag), and saves the channel states of the
samples it handed out in the call before (ledger.py: by then they are in the outbox). Run the
instance at `interval_s: 1` or more: the cycle only collects what the pollers fetched.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from homewatt_collector.models import Reading
from homewatt_collector.sources.emporia import ledger
from homewatt_collector.sources.emporia.api import EmporiaApi
from homewatt_collector.sources.emporia.config import EmporiaSourceConfig
from homewatt_collector.sources.emporia.ledger import ChannelState
from homewatt_collector.sources.emporia.poller import AccountPoller, PollResult
from homewatt_collector.throttle import LogThrottle

log = logging.getLogger(__name__)

STOP_WAIT_S = 25.0  # a poll in flight ends within Emporia's read timeout


class EmporiaSource:
    kind = "emporia"

    def __init__(
        self,
        config: EmporiaSourceConfig,
        site: str,
        passwords: dict[str, str | None],
        state_dir: Path | None = None,
    ) -> None:
        """`passwords` by account name; `state_dir` keeps the channel states and the login
        tokens (None: in memory only, and no token cache)."""
        self.config = config
        self.site = site
        self.passwords = passwords
        self.state_dir = state_dir
        self.path = state_dir / ledger.LEDGER_FILE if state_dir else None
        self.states = ledger.load(self.path)
        self.results: queue.Queue[PollResult] = queue.Queue()
        self.stop = threading.Event()
        self.pollers: list[AccountPoller] = []
        self.handed_out: dict[str, ChannelState] = {}
        self.throttle = LogThrottle()

    def open(self) -> None:
        if self.pollers:
            return
        self.stop.clear()
        for account in self.config.accounts:
            prefix = f"{account.name}/"
            states = {k: v for k, v in self.states.items() if k.startswith(prefix)}
            api = EmporiaApi(account, self.passwords.get(account.name), self.state_dir)
            poller = AccountPoller(
                self.config, account, api, self.site, states, self.results, self.stop
            )
            self.pollers.append(poller)
            poller.start()

    def close(self) -> None:
        self.stop.set()
        deadline = time.monotonic() + STOP_WAIT_S
        for poller in self.pollers:
            poller.join(max(deadline - time.monotonic(), 0.0))
        self.pollers = []
        self._commit()

    def read(self, ts: int) -> Reading:
        """The polls finished since the last call (`ts` is unused: each sample carries its
        own bucket's timestamp)."""
        self._commit()
        results: list[PollResult] = []
        while True:
            try:
                results.append(self.results.get_nowait())
            except queue.Empty:
                break
        samples = [s for r in results for s in r.samples]
        for result in results:
            self.handed_out.update(result.states)
        devices = [d for r in results for d in r.devices]
        return Reading(samples, sum(r.errors for r in results), devices)

    def _commit(self) -> None:
        """Save the states of the samples handed out before (now in the outbox)."""
        if not self.handed_out:
            return
        self.states.update(self.handed_out)
        self.handed_out = {}
        if self.path is None:
            return
        try:
            ledger.save(self.path, self.states)
        except OSError as exc:  # a full or failing disk: kept in memory, tried again later
            if self.throttle.ready("save"):
                log.error("emporia state %s: cannot save: %s (kept in memory)", self.path, exc)
