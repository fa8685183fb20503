"""Find Shelly devices on a subnet the user names: `GET /shelly` on every address, paced.

A probe is one address: `GET /shelly` (never protected), then for a Gen2+ device without a
password `Shelly.GetStatus` for its channels (a protected device's channels are listed as
unknown: the poller finds them at its first poll). At most `rate` probes start per second
(default 50, so a /24 takes about 5 s), and a subnet larger than MAX_PREFIX_HOSTS addresses
(a /22) is refused unless forced: a scan must not flood a network by a typo.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from homewatt_collector.sources.shelly import gen2
from homewatt_collector.sources.shelly.client import ShellyClient, ShellyError
from homewatt_collector.sources.shelly.decode import DeviceInfo

MAX_PREFIX = 22
MAX_RATE = 50.0
WORKERS = 32


class SubnetError(ValueError):
    """The subnet given cannot or must not be scanned; the message says why."""


@dataclass(frozen=True)
class Found:
    host: str  # as the config's `host` (with :port when not 80)
    info: DeviceInfo
    name: str
    channels: list[str] | None  # None: unknown (the device asks for a password)


def hosts_of(subnet: str, force: bool = False) -> list[str]:
    """The addresses to probe in `subnet` (CIDR): its hosts, or the address itself for a /32."""
    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError as exc:
        raise SubnetError(f"--subnet {subnet!r} is not a subnet in CIDR form: {exc}") from None
    if network.version != 4:
        raise SubnetError(f"--subnet {subnet}: only IPv4 subnets can be scanned")
    if network.prefixlen < MAX_PREFIX and not force:
        raise SubnetError(
            f"--subnet {subnet} has {network.num_addresses} addresses, more than a /{MAX_PREFIX}"
            f" ({2 ** (32 - MAX_PREFIX)}): name a smaller subnet, or add --force"
        )
    hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
    return [str(host) for host in hosts]


def probe(address: str, port: int, timeout_s: float) -> Found | None:
    """What answers /shelly at `address` as a Shelly device, or None."""
    host = address if port == 80 else f"{address}:{port}"
    client = ShellyClient(host, timeout_s)
    try:
        try:
            info = client.detect()
        except ShellyError:
            return None
        channels: list[str] | None = None
        if info.gen == 1:
            channels = _gen1_channels(info)
        elif not info.auth:
            try:
                components = gen2.components(client.rpc("Shelly.GetStatus"))
                channels = [c for comp in components for c in gen2.channel_names(comp)]
            except (ShellyError, ValueError):
                channels = None
        return Found(host, info, _name(info, client), channels)
    finally:
        client.close()


def _gen1_channels(info: DeviceInfo) -> list[str]:
    if info.num_emeters == 3:
        return ["l1", "l2", "l3", "total"]
    if info.num_emeters:
        return [f"em{i}" for i in range(info.num_emeters)]
    return [f"switch{i}" for i in range(info.num_meters)]


def _name(info: DeviceInfo, client: ShellyClient) -> str:
    """A `device` name to start from: the device's id (shellyplusplugs-d4d4daf1a2b3,
    shplg-s-f3a1c3), else the model and the address."""
    if info.device_id:
        return info.device_id
    return f"{info.model.lower()}-{client.host.replace(':', '-').replace('.', '-')}"


def paced(
    items: list[str],
    rate: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """`items`, the n-th not before n / rate seconds after the first."""
    start = clock()
    for index, item in enumerate(items):
        due = start + index / rate
        if (wait := due - clock()) > 0:
            sleep(wait)
        yield item


def discover(
    addresses: list[str],
    port: int = 80,
    timeout_s: float = 1.0,
    rate: float = MAX_RATE,
    progress: Callable[[], None] | None = None,
) -> list[Found]:
    """Probe `addresses`, at most `rate` (<= MAX_RATE) starting per second; found devices in
    address order."""
    rate = min(rate, MAX_RATE)
    lock = threading.Lock()
    found: dict[str, Found] = {}

    def one(address: str) -> None:
        result = probe(address, port, timeout_s)
        with lock:
            if result is not None:
                found[address] = result
            if progress is not None:
                progress()

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="shelly-discover") as pool:
        for future in [pool.submit(one, a) for a in paced(addresses, rate)]:
            future.result()
    return [found[a] for a in sorted(found, key=ipaddress.ip_address)]


def render(found: list[Found], subnet: str) -> str:
    """The found devices as a `source:` block ready to paste into an instance's config."""
    lines = [
        f"# Shelly devices found in {subnet} (homewatt-collector shelly discover)",
        "source:",
        "  kind: shelly",
        "  devices:",
    ]
    for device in found:
        info = device.info
        what = f"{info.app or info.model} ({info.model}, Gen{info.gen})"
        channels = ", ".join(device.channels) if device.channels is not None else "unknown"
        lines.append(f"    # {what}; channels: {channels}")
        lines.append(f"    - name: {device.name}")
        lines.append(f"      host: {device.host}")
        lines.append("      interval_s: 5")
        if info.auth:
            credential = f"shelly-{device.name}"
            lines.append(
                f"      # it asks for a password: /etc/homewatt/credentials/{credential} (0600),"
                " handed over by a drop-in line"
            )
            lines.append(
                f"      # LoadCredential={credential}:/etc/homewatt/credentials/{credential}"
            )
            lines.append(f"      password_credential: {credential}")
    return "\n".join(lines) + "\n"
