"""Pure pieces of the stand-in checked against the Go behaviour they reconstruct: JSON float
text (encoding/json), durations (time.Duration.String, time.ParseDuration), sizes
(go-humanize ParseBytes), shard-group boundaries (time.Time.Truncate since Go's zero time)."""

from __future__ import annotations

import pytest

from tests.support.influxdb2 import config, gojson
from tests.support.influxdb2.store import DAY, HOUR, default_shard_group_duration, truncate_go


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (230.0, "230"),
        (231.5, "231.5"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (-0.0, "-0"),
    ],
)
def test_json_floats_are_written_as_go_encoding_json_writes_them(value: float, text: str) -> None:
    assert gojson.go_float(value) == text


def test_go_durations_and_times_read_and_write_like_go() -> None:
    assert gojson.go_duration(30 * DAY) == "720h0m0s"
    assert gojson.go_duration(HOUR) == "1h0m0s"
    assert gojson.go_duration(1_500_000_000) == "1.5s"
    assert config.go_duration_ns("1h30m") == 90 * 60 * 10**9
    assert config.go_duration_ns("500ms") == 5 * 10**8
    with pytest.raises(ValueError, match='time: invalid duration "1 second"'):
        config.go_duration_ns("1 second")
    assert gojson.rfc3339nano(1795435202_500000000) == "2026-11-23T12:00:02.5Z"
    assert gojson.parse_rfc3339("2026-11-23T13:00:02.5+01:00") == 1795435202_500000000


def test_sizes_follow_go_humanize() -> None:
    assert config.size_bytes("128MiB") == 128 * 2**20
    assert config.size_bytes("128m") == 128 * 10**6
    assert config.size_bytes("1073741824") == 2**30
    with pytest.raises(ValueError, match="lots"):
        config.size_bytes("lots")


def test_shard_groups_start_on_go_zero_time_boundaries() -> None:
    wednesday = gojson.parse_rfc3339("2026-10-21T10:00:00Z")
    assert gojson.rfc3339nano(truncate_go(wednesday, 7 * DAY)) == "2026-10-19T00:00:00Z"  # Monday
    assert gojson.rfc3339nano(truncate_go(wednesday, DAY)) == "2026-10-21T00:00:00Z"
    assert default_shard_group_duration(0) == 7 * DAY
    assert default_shard_group_duration(30 * DAY) == DAY
    assert default_shard_group_duration(HOUR) == HOUR
