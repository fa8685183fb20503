"""The pure conversions: channels and their names in both schemas, the usage tree with nested
plugs, chart buckets and the unit math, from the reconstructed answers (fixtures/README.md)
parsed by pyemvue's own classes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pyemvue.device import VueDevice, VueUsageDevice  # type: ignore[import-untyped]

from homewatt_collector.sources.emporia import decode
from homewatt_collector.sources.emporia.config import EmporiaAccountConfig
from tests.support.emporia_cloud import EmporiaCloud, load_fixture


def account(**overrides: Any) -> EmporiaAccountConfig:
    data: dict[str, Any] = {"name": "home", "username": "owner@example.invalid"}
    data["simulator_url"] = "http://127.0.0.1:1"
    data.update(overrides)
    return EmporiaAccountConfig.model_validate(data)


def devices() -> list[Any]:
    """As pyemvue's get_devices parses GET /customers/devices (sub-devices appended)."""
    out = []
    for raw in load_fixture("devices")["devices"]:
        out.append(VueDevice().from_json_dictionary(raw))
        out.extend(VueDevice().from_json_dictionary(sub) for sub in raw.get("devices", []))
    return out


def test_every_device_and_channel_is_found_with_the_apps_names() -> None:
    channels = {(c.device, c.channel_num): c for c in decode.channels_of(devices(), account())}
    assert channels[("Home", "1,2,3")].name == "total"
    assert channels[("Home", "1")].name == "Oven"
    assert channels[("Home", "6")].name == "6"  # no name in the app: its number
    assert channels[("Kettle", "1,2,3")].name == "total"  # a smart plug
    assert channels[("Kettle", "1,2,3")].model == "SSO001"
    assert channels[("Meter", "MainsFromGrid")].has_history is False
    assert channels[("Home", "8")].model == "VUE002"  # the circuits' entry has the Vue's model
    assert len([c for c in channels.values() if c.device == "Home"]) == 9


def test_config_names_win_over_the_apps_in_both_schemas() -> None:
    configured = account(
        devices=[
            {"name": "Home", "rename": "main-panel", "channels": ["oven", "tumble"]},
            {"name": "Kettle", "channels": {"1": "ignored: a plug has no numbered channel"}},
        ]
    )
    channels = {(c.app_device, c.channel_num): c for c in decode.channels_of(devices(), configured)}
    oven = channels[("Home", "1")]
    assert (oven.device, oven.name, oven.vuegraf_name) == ("main-panel", "oven", "oven")
    # beyond the list: the app's name in homewatt's schema, Vuegraf's <device>-<num> in Vuegraf's
    office = channels[("Home", "7")]
    assert (office.name, office.vuegraf_name) == ("Office", "Home-7")
    mains = channels[("Home", "1,2,3")]
    assert (mains.name, mains.vuegraf_name) == ("total", "Home")
    assert channels[("Kettle", "1,2,3")].vuegraf_name == "Kettle"


def test_vuegraf_names_balance_and_total_usage_after_the_device() -> None:
    home = account(devices=[{"name": "Home", "channels": {"2": "dryer"}}])
    assert decode.vuegraf_channel_name("Balance", "Home", home) == "Home-Balance"
    assert decode.vuegraf_channel_name("TotalUsage", "Home", home) == "Home-TotalUsage"
    assert decode.vuegraf_channel_name("2", "Home", home) == "dryer"
    assert decode.vuegraf_channel_name("3", "Home", home) == "Home-3"  # not in the map


def test_the_usage_tree_is_flattened_with_the_nested_plugs() -> None:
    cloud = EmporiaCloud()
    try:
        status, body = cloud.device_list_usages(
            {"deviceGids": "1001+3001", "instant": "2026-11-30T12:00:05Z",
             "scale": "1MIN", "energyUnit": "KilowattHours"}
        )  # fmt: skip
    finally:
        cloud.server.server_close()
    assert status == 200
    parsed = [VueUsageDevice().from_json_dictionary(d) for d in body["deviceListUsages"]["devices"]]
    flat = decode.flatten_usage(parsed)
    keys = [(gid, num) for gid, num, _ in flat]
    assert (2001, "1,2,3") in keys and (2002, "1,2,3") in keys  # nested under circuits 4 and 8
    assert keys.index((2001, "1,2,3")) == keys.index((1001, "4")) + 1
    assert (1001, "Balance") in keys and (3001, "MainsToGrid") in keys
    assert len(keys) == len(set(keys)) == 1 + 8 + 2 + 2 + 3


@pytest.mark.parametrize(
    ("kwh", "scale", "watts"),
    [(0.001, "1MIN", 60.0), (0.5, "1H", 500.0), (1 / 3600, "1S", 1000.0), (24.0, "1D", 1000.0)],
)
def test_kwh_per_bucket_is_the_buckets_average_power(kwh: float, scale: str, watts: float) -> None:
    assert decode.average_power_w(kwh, scale) == pytest.approx(watts)


def test_chart_buckets_start_at_the_first_instant_truncated_and_keep_gaps() -> None:
    first = datetime(2026, 11, 30, 10, 15, 42, 500000, tzinfo=UTC)
    buckets = decode.chart_buckets([0.1, None, 0.2], first, "1MIN")
    start = int(datetime(2026, 11, 30, 10, 15, tzinfo=UTC).timestamp())
    assert buckets == [(start, 0.1), (start + 60, None), (start + 120, 0.2)]


def test_vuegraf_day_points_are_at_235959_local_across_a_dst_change() -> None:
    zone = ZoneInfo("Europe/London")
    # Emporia's first instant is local midnight: 2026-10-24 00:00 BST = 23:00 UTC the day before
    first = datetime(2026, 10, 23, 23, 0, tzinfo=UTC)
    days = decode.day_buckets([1.0, 2.0], first, zone)
    assert [datetime.fromtimestamp(ts, zone).isoformat() for ts, _ in days] == [
        "2026-10-24T23:59:59+01:00",
        "2026-10-25T23:59:59+00:00",  # the day the clocks go back
    ]
