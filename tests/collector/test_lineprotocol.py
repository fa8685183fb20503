"""Line protocol encoding: what InfluxDB's parser expects, character for character."""

from __future__ import annotations

import math

import pytest

from homewatt_collector.lineprotocol import encode, series_key
from homewatt_collector.models import Sample


def sample(**fields: float | int | bool | str) -> Sample:
    return Sample("electricity", {"site": "home", "device": "main"}, fields, 1_700_000_000)


def test_tags_are_sorted_and_fields_typed() -> None:
    line = encode(sample(power_w=12.5, read_errors=3, ok=True, note="x"))
    assert line == (
        'electricity,device=main,site=home note="x",ok=true,power_w=12.5,read_errors=3i 1700000000'
    )


def test_special_characters_are_escaped() -> None:
    s = Sample("my meas", {"device": "a,b=c d"}, {"f x": 'say "hi" \\'}, 1)
    assert encode(s) == r'my\ meas,device=a\,b\=c\ d f\ x="say \"hi\" \\" 1'


def test_empty_tag_values_are_left_out_of_the_series_key() -> None:
    assert series_key(Sample("m", {"a": "", "b": "x"}, {"f": 1.0}, 1)) == "m,b=x"


def test_non_finite_floats_are_left_out() -> None:
    assert encode(sample(power_w=math.nan, voltage_v=230.0)).endswith(" voltage_v=230.0 1700000000")


def test_a_sample_without_any_finite_field_is_refused() -> None:
    with pytest.raises(ValueError, match="no finite field"):
        encode(sample(power_w=math.inf))
