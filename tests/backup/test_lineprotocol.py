"""Line protocol produced from exports is what InfluxDB parses back (escaping, types)."""

from __future__ import annotations

from homewatt_backup.lineprotocol import format_field, format_line, line_timestamp


def test_line_protocol_escapes_measurement_tags_fields_and_strings() -> None:
    line = format_line(
        "my meas,x",
        {"de vice": "plug kitchen", "ch=a": "relay,0", "empty": ""},
        {"note": format_field('kettle "on" \\', "string") or ""},
        1700000000,
    )
    assert line == (
        "my\\ meas\\,x,ch\\=a=relay\\,0,de\\ vice=plug\\ kitchen "
        'note="kettle \\"on\\" \\\\" 1700000000'
    )


def test_field_types_keep_integers_floats_booleans_and_skip_nan() -> None:
    assert format_field(12, "integer") == "12i"
    assert format_field(12, "unsignedLong") == "12u"
    assert format_field(230, "float") == "230.0"
    assert format_field(230.25, "double") == "230.25"
    assert format_field(True, "boolean") == "true"
    assert format_field("false", "boolean") == "false"
    assert format_field(float("nan"), "float") is None


def test_line_timestamp_reads_the_last_token_even_after_strings_with_spaces() -> None:
    assert line_timestamp('m s="a 12" 1700000000\n') == 1700000000
    assert line_timestamp('m s="a 12"') is None
    assert line_timestamp("# comment 12") is None
    assert line_timestamp("") is None
