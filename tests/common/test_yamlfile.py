"""Config files as both apps read them: UTF-8 only, a BOM is fine, duplicate keys refused,
every node's line known."""

from __future__ import annotations

from pathlib import Path

import pytest

from homewatt_common.problems import ProblemsError
from homewatt_common.yamlfile import load_yaml


def problem_of(path: Path) -> str:
    with pytest.raises(ProblemsError) as info:
        load_yaml(path)
    return str(info.value)


def test_lines_of_keys_list_items_and_missing_keys_point_at_the_nearest_node(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("site: home\nsinks:\n  - url: http://a\n    org: o\n  - url: http://b\n")
    document = load_yaml(path)
    assert document.data["sinks"][1]["url"] == "http://b"
    assert document.line_of(("site",)) == 1
    assert document.line_of(("sinks", 0, "org")) == 4
    assert document.line_of(("sinks", 1, "url")) == 5
    assert document.line_of(("sinks", 1, "bucket")) == 5  # missing: its mapping's line
    assert document.line_of(("nothing", "here")) == 1


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfsite: home\n")
    assert load_yaml(path).data == {"site": "home"}


def test_a_file_that_is_not_utf8_is_one_line_naming_the_byte_and_its_offset(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"site: home\ndevice: k\xfcche\n")  # Latin-1, as an old editor saves it
    assert problem_of(path) == (
        f"{path}:2: not UTF-8 text (byte 0xfc at offset 20): save the file as UTF-8"
    )


def test_the_offset_of_a_bad_byte_counts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: \xff\n")
    assert "(byte 0xff at offset 6)" in problem_of(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site: a\nsite: b\n", ":2: site: duplicate key (first on line 1)"),
        (
            "sinks:\n  - url: x\n    org: o\n    url: y\n",
            ":4: sinks[0].url: duplicate key (first on line 2)",
        ),
        (
            "source:\n  kind: modbus\n  meters: []\n  kind: demo\n",
            ":4: source.kind: duplicate key (first on line 2)",
        ),
    ],
)
def test_a_key_given_twice_is_refused_naming_both_lines(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert problem_of(path) == f"{path}{expected}"


def test_every_duplicate_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\na: 2\nb: {c: 1, c: 2}\n")
    assert problem_of(path).splitlines() == [
        f"{path}:2: a: duplicate key (first on line 1)",
        f"{path}:3: b.c: duplicate key (first on line 3)",
    ]


def test_merge_keys_and_anchors_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "base: &base {timeout_s: 1, org: o}\n"
        "sinks:\n  - <<: *base\n    timeout_s: 2\n  - <<: *base\n"
    )
    data = load_yaml(path).data
    assert data["sinks"][0] == {"timeout_s": 2, "org": "o"}
    assert data["sinks"][1] == {"timeout_s": 1, "org": "o"}


def test_syntax_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("site: home\nsource: [kind: demo\n")
    assert problem_of(path).startswith(f"{path}:3:1: not valid YAML: ")


def test_a_control_character_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("site: home\norg: o\x07\n")
    assert problem_of(path) == f"{path}:2: not valid YAML: character U+0007 is not allowed"


def test_a_missing_or_unreadable_file_is_one_line(tmp_path: Path) -> None:
    assert (
        problem_of(tmp_path / "absent.yaml")
        == f"{tmp_path / 'absent.yaml'}: the file does not exist"
    )
    assert problem_of(tmp_path) == f"{tmp_path}: cannot read it: Is a directory"


def test_a_value_yaml_cannot_build_is_one_line_naming_its_key_and_line(tmp_path: Path) -> None:
    """PyYAML resolves 2026-02-30 as a date and its constructor raises a bare ValueError."""
    path = tmp_path / "tariff.yaml"
    path.write_text("timezone: Europe/Warsaw\nholidays:\n  - 2026-12-25\n  - 2026-02-30\n")
    with pytest.raises(ProblemsError) as caught:
        load_yaml(path)
    assert str(caught.value) == (
        f"{path}:4: holidays[1]: '2026-02-30' is not a valid value"
        " (day is out of range for month); quote it for text"
    )
