"""An account's poller with the real pyemvue against the Emporia API test server
(tests/support/emporia_cloud.py, pyemvue's simulator login), on an injected clock: the live
minute, the gap backfill in Emporia's windows, the running sums, both schemas, and failures
(401 answers, an injected Cognito refusal, a 400) that are counted and retried, never raised."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from homewatt_collector.sources.emporia import api as api_module
from homewatt_collector.sources.emporia.api import EmporiaApi, EmporiaError
from homewatt_collector.sources.emporia.config import EmporiaSourceConfig
from homewatt_collector.sources.emporia.ledger import ChannelState
from homewatt_collector.sources.emporia.poller import AccountPoller, PollResult
from homewatt_collector.sources.emporia.source import EmporiaSource
from tests.support.emporia_cloud import EmporiaCloud, kwh, power_w

START = datetime(2026, 11, 10, 12, 0, 7, tzinfo=UTC).timestamp()  # in the past: charts have it
LIVE = int(START) - 7 - 60  # 11:59:00: the last full minute before 12:00:02 (lag 5 s)


@pytest.fixture
def cloud() -> Iterator[EmporiaCloud]:
    server = EmporiaCloud().start()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def make(cloud: EmporiaCloud, clock: Clock, **options: Any) -> AccountPoller:
    config = EmporiaSourceConfig.model_validate(
        {
            "kind": "emporia",
            "accounts": [
                {"name": "home", "username": "owner@example.invalid", "simulator_url": cloud.url}
            ],
            **options,
        }
    )
    account = config.accounts[0]
    return AccountPoller(
        config,
        account,
        EmporiaApi(account, None, None),
        "test",
        {},
        queue.Queue(),
        threading.Event(),
        clock,
    )


def by_series(result: PollResult) -> dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]:
    out: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for sample in result.samples:
        key = (
            sample.tags.get("device", ""),
            sample.tags.get("channel", sample.tags.get("device_name", "")),
        )
        out.setdefault(key, []).append((sample.ts, dict(sample.fields)))
    return out


def test_the_first_poll_stores_the_last_full_minute_of_every_channel(cloud: EmporiaCloud) -> None:
    poller = make(cloud, Clock())
    result = poller.poll()
    assert result.errors == 0
    series = by_series(result)
    [(ts, fields)] = series[("Home", "Oven")]
    assert ts == LIVE
    assert fields["power_w"] == pytest.approx(power_w(1001, "1", LIVE))
    assert fields["energy_total_kwh"] == pytest.approx(kwh(1001, "1", LIVE, 60))
    assert ("Kettle", "total") in series and ("Meter", "From grid") in series
    assert ("Home", "balance") in series
    assert not cloud.calls("getChartUsage"), "a first start backfills nothing"
    assert {d.device for d in result.devices} == {"Home", "Kettle", "Dehumidifier", "Meter"}


def test_a_gap_is_backfilled_in_12_hour_windows_and_summed_in_time_order(
    cloud: EmporiaCloud,
) -> None:
    clock = Clock()
    poller = make(cloud, clock)
    poller.poll()
    clock.now += 26 * 3600  # 26 h later (a Pi off for a day)
    result = poller.poll()
    assert result.errors == 0
    live = LIVE + 26 * 3600
    charts = [
        q for q in cloud.calls("getChartUsage") if q["deviceGid"] == "1001" and q["channel"] == "3"
    ]
    assert len(charts) == 3  # 12 h + 12 h + 2 h
    for query in charts:
        span = datetime.fromisoformat(query["end"][:-1]) - datetime.fromisoformat(
            query["start"][:-1]
        )
        assert span <= timedelta(hours=12)
    assert not [
        q for q in cloud.calls("getChartUsage") if q["channel"] in ("Balance", "TotalUsage")
    ]
    solar = by_series(result)[("Home", "Solar")]
    stamps = [ts for ts, _ in solar]
    expected = [m for m in range(LIVE + 60, live + 60, 60) if power_w(1001, "3", m) is not None]
    assert stamps == expected, "every minute with data, once, in time order"
    total = max(kwh(1001, "3", LIVE, 60) or 0.0, 0.0)
    export = 0.0
    for ts, fields in solar:
        energy = kwh(1001, "3", ts, 60)
        assert energy is not None
        assert fields["power_w"] == pytest.approx(energy * 60_000)
        total += max(energy, 0.0)
        export += max(-energy, 0.0)
        assert fields["energy_total_kwh"] == pytest.approx(total)
        assert fields.get("energy_export_kwh", 0.0) == pytest.approx(export)
    assert export > 0


def only_the_kettle(cloud: EmporiaCloud) -> None:
    """Fewer channels: the long windows cost seconds of parsing per channel."""
    cloud.devices = {
        "devices": [d for d in cloud.devices["devices"] if d["deviceGid"] in (1001, 2001)]
    }
    vue = cloud.devices["devices"][0]
    circuits = vue["devices"][0]
    four = [c for c in circuits["channels"] if c["channelNum"] == "4"]  # the kettle hangs there
    cloud.devices["devices"][0] = {**vue, "devices": [{**circuits, "channels": four}]}


def test_backfill_reaches_back_at_most_7_days(cloud: EmporiaCloud) -> None:
    only_the_kettle(cloud)
    clock = Clock()
    poller = make(cloud, clock)
    poller.poll()
    clock.now += 9 * 86400
    result = poller.poll()
    assert result.errors == 0
    kettle = by_series(result)[("Kettle", "total")]
    assert kettle[0][0] >= LIVE + 9 * 86400 - 7 * 86400
    charts = [q for q in cloud.calls("getChartUsage") if q["deviceGid"] == "2001"]
    assert len(charts) == 14


@pytest.mark.parametrize("refusal", ["unauthorized", "forbidden"])
def test_401_and_403_answers_are_counted_and_the_gap_filled_after(
    cloud: EmporiaCloud, refusal: str
) -> None:
    clock = Clock()
    poller = make(cloud, clock)
    poller.poll()
    cloud.mode = refusal
    clock.now += 60
    failed = poller.poll()
    assert failed.errors == 1 and not failed.samples
    assert poller.auth_failed, "a refused token is an auth failure: logged in again later"
    assert all(d.errors == 1 and not d.ok and d.backoff for d in failed.devices)
    cloud.mode = "down"
    clock.now += 60
    assert poller.poll().errors == 1
    cloud.mode = "ok"
    clock.now += 60
    healed = poller.poll()
    assert healed.devices and not any(d.backoff for d in healed.devices)
    oven = [ts for ts, _ in by_series(healed)[("Home", "Oven")]]
    assert oven == [LIVE + 60, LIVE + 120, LIVE + 180]


def test_a_cognito_refusal_is_one_auth_error(
    cloud: EmporiaCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    def refuse(*args: Any, **kwargs: Any) -> bool:
        error = {
            "Error": {
                "Code": "NotAuthorizedException",
                "Message": "Incorrect username or password.",
            }
        }
        raise ClientError(error, "InitiateAuth")

    monkeypatch.setattr(api_module.PyEmVue, "login_simulator", refuse)
    poller = make(cloud, Clock())
    result = poller.poll()
    assert result.errors == 1
    with pytest.raises(EmporiaError, match="Cognito refused the login") as caught:
        poller.api.login()
    assert caught.value.auth


def test_a_window_emporia_refuses_is_a_clear_error(cloud: EmporiaCloud) -> None:
    poller = make(cloud, Clock())
    end = datetime.fromtimestamp(LIVE, UTC)
    with pytest.raises(EmporiaError, match=r"HTTP 400\): an API change"):
        poller.api.chart(1001, "1", end - timedelta(hours=24), end, "1MIN")


def test_cached_tokens_are_tried_first_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cognito cannot be reached here: PyEmVue.login is replaced by one that records its
    arguments and writes tokens as pyemvue's _store_tokens does (open(path, "w"))."""
    calls: list[dict[str, Any]] = []

    def login(self: Any, **kwargs: Any) -> bool:
        calls.append(kwargs)
        if "password" not in kwargs:
            raise ValueError("refresh token expired")
        Path(kwargs["token_storage_file"]).write_text('{"id_token": "t"}')
        return True

    monkeypatch.setattr(api_module.PyEmVue, "login", login)
    config = EmporiaSourceConfig.model_validate(
        {
            "kind": "emporia",
            "accounts": [
                {"name": "home", "username": "me@example.invalid", "password_credential": "x"}
            ],
        }
    )
    api = EmporiaApi(config.accounts[0], "s3cret", tmp_path)
    api.login()
    tokens = tmp_path / "emporia-home.tokens.json"
    assert tokens.stat().st_mode & 0o777 == 0o600
    assert calls == [
        {"username": "me@example.invalid", "password": "s3cret", "token_storage_file": str(tokens)}
    ]
    calls.clear()
    api.login()
    assert calls[0] == {"token_storage_file": str(tokens)}  # the cached tokens first
    assert calls[1]["password"] == "s3cret"  # refused: then the password


def test_vuegraf_schema_points_are_exactly_vuegrafs(cloud: EmporiaCloud) -> None:
    clock = Clock()
    poller = make(cloud, clock, schema="vuegraf")
    live = poller.poll()
    oven = [
        s
        for s in live.samples
        if s.tags["device_name"] == "Home-1" or s.tags["device_name"] == "Oven"
    ]
    [point] = oven
    assert point.measurement == "energy_usage"
    assert dict(point.tags) == {
        "account_name": "home",
        "device_name": "Home-1",
        "detailed": "False",
    }
    # Vuegraf stamps the answer at the minute of its instant (12:00:02 -> 12:00:00)
    assert point.ts == LIVE + 60
    assert point.fields == {"usage": pytest.approx(kwh(1001, "1", LIVE, 60) * 60_000)}
    mains = [s for s in live.samples if s.tags["device_name"] == "Home"]
    assert len(mains) == 1
    assert {s.tags["device_name"] for s in live.samples} >= {
        "Home-Balance",
        "Home-TotalUsage",
        "Kettle",
    }


def test_per_second_data_is_fetched_hourly_within_3_hours(cloud: EmporiaCloud) -> None:
    only_the_kettle(cloud)
    clock = Clock()
    poller = make(cloud, clock, detailed=True)
    clock.now = datetime.now(UTC).timestamp() - 1.0  # the server's chart knows only the past
    first = poller.poll()
    seconds = [
        s for s in first.samples if s.tags.get("interval") == "1s" and s.tags["device"] == "Kettle"
    ]
    assert seconds and all(
        s.fields["power_w"] == pytest.approx(power_w(2001, "1,2,3", s.ts - s.ts % 60))
        for s in seconds
    )
    assert seconds[-1].ts - seconds[0].ts <= 3 * 3600
    calls = [
        q for q in cloud.calls("getChartUsage") if q["scale"] == "1S" and q["deviceGid"] == "2001"
    ]
    assert len(calls) == 3  # 3 h in 1 h calls
    clock.now += 60
    poller.poll()
    assert (
        len(
            [
                q
                for q in cloud.calls("getChartUsage")
                if q["scale"] == "1S" and q["deviceGid"] == "2001"
            ]
        )
        == 3
    )


def test_the_sums_survive_a_restart_through_the_state_dir(
    cloud: EmporiaCloud, tmp_path: Path
) -> None:
    config = EmporiaSourceConfig.model_validate(
        {
            "kind": "emporia",
            "accounts": [
                {"name": "home", "username": "o@example.invalid", "simulator_url": cloud.url}
            ],
        }
    )
    source = EmporiaSource(config, "test", {"home": None}, tmp_path)
    api = EmporiaApi(config.accounts[0], None, tmp_path)
    poller = AccountPoller(
        config, config.accounts[0], api, "test", {}, source.results, source.stop, Clock()
    )
    source.results.put(poller.poll())
    reading = source.read(0)
    assert reading.samples and not (tmp_path / "emporia.json").exists()  # saved at the next read
    source.read(1)
    saved = EmporiaSource(config, "test", {"home": None}, tmp_path).states
    assert saved["home/1001/1"] == ChannelState(
        minute=LIVE, total_kwh=pytest.approx(kwh(1001, "1", LIVE, 60))
    )


def test_vuegraf_hour_and_day_points_follow_the_hour_and_the_local_day(
    cloud: EmporiaCloud,
) -> None:
    only_the_kettle(cloud)
    clock = Clock()
    midnight = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
    clock.now = midnight - 30  # 23:59:30
    poller = make(cloud, clock, schema="vuegraf", detailed=True, timezone="UTC")
    before = poller.poll()
    assert not [s for s in before.samples if s.tags["detailed"] in ("Hour", "Day")]
    clock.now = midnight + 7
    after = poller.poll()
    hours = [s for s in after.samples if s.tags["detailed"] == "Hour"]
    days = [s for s in after.samples if s.tags["detailed"] == "Day"]
    kettle_hour = next(s for s in hours if s.tags["device_name"] == "Kettle")
    assert kettle_hour.ts == midnight - 3600
    used = kwh(2001, "1,2,3", int(midnight) - 3600, 3600)
    assert used is not None and kettle_hour.fields == {"usage": pytest.approx(used * 1000)}
    kettle_day = next(s for s in days if s.tags["device_name"] == "Kettle")
    assert kettle_day.ts == midnight - 1  # 23:59:59 local (UTC here)
    day_used = kwh(2001, "1,2,3", int(midnight) - 86400, 86400)
    assert day_used is not None and kettle_day.fields == {"usage": pytest.approx(day_used * 1000)}
    assert {s.tags["device_name"] for s in hours} >= {"Home", "Home-4", "Home-Balance", "Kettle"}


@pytest.mark.parametrize(
    ("second", "next_second"),
    [(2.0, 5), (4.9, 5), (5.0, 65), (7.0, 65), (59.9, 65)],
)
def test_the_next_poll_is_lag_s_after_the_next_minute_even_from_a_minutes_first_seconds(
    cloud: EmporiaCloud, second: float, next_second: int
) -> None:
    """A poll at 12:00:02 (lag_s 5: it asked for 11:58) is followed by 12:00:05's (for 11:59),
    not 12:01:05's: a collector started at a minute's first seconds missed a live minute."""
    clock = Clock()
    clock.now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp() + second
    poller = make(cloud, clock)
    assert (
        poller._next_poll() == datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp() + next_second
    )


def test_failures_back_off_longer_after_a_refused_login(cloud: EmporiaCloud) -> None:
    clock = Clock()
    poller = make(cloud, clock)
    cloud.mode = "down"
    waits = []
    for _ in range(6):
        poller.poll()
        waits.append(round((poller._next_poll() - clock.now) / 60))
    # the next minute, then 2, 4, 8, 16 minutes capped at 15, each less the minute it waits
    # for anyway (the poll aligns to the minute)
    assert waits == [1, 1, 3, 7, 14, 14]
    cloud.mode = "unauthorized"
    poller.failures = 0
    refused = []
    for _ in range(4):
        poller.poll()
        refused.append(round((poller._next_poll() - clock.now) / 60))
    assert refused == [4, 9, 19, 29]  # 5, 10, 20, 30 minutes


def test_a_long_backfill_ends_when_the_source_closes(cloud: EmporiaCloud) -> None:
    clock = Clock()
    poller = make(cloud, clock)
    poller.poll()
    before = dict(poller.states)
    clock.now += 3 * 86400
    poller.stop.set()
    result = poller.poll()
    assert result.samples == [] and result.errors == 0
    assert poller.states == before, "nothing of the interrupted poll is kept"
