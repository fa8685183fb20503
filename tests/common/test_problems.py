"""The one error format: `file:line: key: problem`, plain text, strict values explained."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from homewatt_common.configmodel import ConfigModel, PathField, validate
from homewatt_common.problems import Problem, ProblemsError, describe_input, format_loc


def test_a_problem_reads_file_line_key_problem_and_leaves_out_what_it_lacks() -> None:
    assert str(Problem("main.yaml", "unknown key", "sinks[0].tokn", 7)) == (
        "main.yaml:7: sinks[0].tokn: unknown key"
    )
    assert str(Problem("", "Input should be less than 248", "--id")) == (
        "--id: Input should be less than 248"
    )
    assert str(Problem("main.yaml", "the file is empty")) == "main.yaml: the file is empty"


def test_locations_read_like_the_yaml() -> None:
    assert format_loc(("sinks", 0, "url")) == "sinks[0].url"
    assert format_loc(("source", "meters", 2)) == "source.meters[2]"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (True, "true"),
        (None, "null"),
        (float("nan"), ".nan"),
        (float("-inf"), "-.inf"),
        ("7", "'7'"),
        ([1], "a list"),
        ({}, "a mapping"),
        (0.5, "0.5"),
    ],
)
def test_a_wrong_value_is_shown_as_it_was_written_in_yaml(value: object, written: str) -> None:
    assert describe_input(value) == written


class Example(ConfigModel):
    interval_s: int = Field(1, ge=1, le=3600)
    timeout_s: float = Field(10.0, gt=0)
    verify_tls: bool = True
    parity: Literal["N", "E", "O"] = "N"
    name: str = Field("local", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    token_file: Path | None = PathField()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"interval_s": True}, "interval_s: Input should be a valid integer, not true"),
        ({"interval_s": 1.5}, "interval_s: Input should be a valid integer, not 1.5"),
        ({"timeout_s": float("nan")}, "timeout_s: Input should be a finite number, not .nan"),
        ({"timeout_s": float("inf")}, "timeout_s: Input should be a finite number, not .inf"),
        ({"timeout_s": "5"}, "timeout_s: Input should be a valid number, not '5'"),
        ({"verify_tls": 1}, "verify_tls: Input should be a valid boolean, not 1"),
        ({"parity": "X"}, "parity: Input should be 'N', 'E' or 'O', not 'X'"),
        (
            {"name": "My Sink"},
            "name: String should match pattern '^[a-z0-9][a-z0-9_-]*$', not 'My Sink'",
        ),
        ({"colour": "red"}, "colour: unknown key (a typo? see the example config)"),
    ],
)
def test_strict_values_each_get_one_line_saying_what_was_given(
    data: dict[str, object], expected: str
) -> None:
    with pytest.raises(ProblemsError) as info:
        validate(Example, data, "main.yaml")
    assert str(info.value) == f"main.yaml: {expected}"


def test_an_integer_is_a_valid_float_and_a_string_a_valid_path() -> None:
    example = validate(Example, {"timeout_s": 5, "token_file": "/etc/x"}, "main.yaml")
    assert example.timeout_s == 5.0
    assert str(example.token_file) == "/etc/x"
