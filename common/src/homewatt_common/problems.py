"""The one error format of both apps: `file:line: key: problem`, plain text.

A `Problem` is one thing wrong with one input: a config file's key (`where` is the file, with a
line), a command-line option (`where` is empty, `key` is `--option`), or a secret file.
`ProblemsError` carries one or more of them; its text is one line per problem. Nothing here is
ever rendered as rich markup: a pattern like `^[a-z0-9]*$` or a URL with `[...]` prints as it is.

`validation_problems` turns a pydantic ValidationError into problems, with the YAML line of each
key when the document is known (anything with `line_of`, such as yamlfile.YamlDocument) and
messages a newcomer can act on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

Loc = tuple[int | str, ...]


class Lines(Protocol):
    """Where a key stands in its file: yamlfile.YamlDocument (which imports this module)."""

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the key at `loc`, or None when it is not in the file."""


@dataclass(frozen=True)
class Problem:
    """One problem: `where` (a file, or '' for the command line), its line, the key, the text;
    `fix`: shell lines that fix it (printed below the problem, never part of its one line)."""

    where: str
    message: str
    key: str = ""
    line: int | None = None
    fix: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}:{self.line}" if self.line else self.where)
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)


class ProblemsError(Exception):
    """One or more problems with an input; str() gives one line per problem. A plain string is
    one problem without a place (a message that names its own subject)."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        assert problems, "a ProblemsError needs at least one problem"
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, where: str, message: str, key: str = "", line: int | None = None) -> ProblemsError:
        return cls([Problem(where, message, key, line)])


def option_problem(option: str, message: str) -> ProblemsError:
    """A problem with a command-line option: `--option: problem`."""
    return ProblemsError.one("", message, key=option)


def format_loc(loc: Iterable[int | str]) -> str:
    """('sinks', 0, 'url') -> 'sinks[0].url' (how the keys read in the YAML file)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_input(value: Any) -> str:  # noqa: PLR0911 (one return per kind of YAML value)
    """A value as the user wrote it in YAML: true, null, .nan, 'text', a list, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


# pydantic error types whose message gains the offending input ("..., not true").
_TYPE_ERRORS = {
    "int_type",
    "int_parsing",
    "int_from_float",
    "float_type",
    "float_parsing",
    "bool_type",
    "bool_parsing",
    "string_type",
    "finite_number",
    "literal_error",
    "enum",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "string_pattern_mismatch",
    "dict_type",
    "list_type",
    "model_type",
}


def message_of(error: Any, *, example: str = "the example config") -> str:
    """A pydantic error as a sentence: what is wrong and, for a wrong value, what was given."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key (a typo? see {example})"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return (
            f"must be one of {ctx.get('expected_tags', '?')}, not {describe_input(ctx.get('tag'))}"
        )
    if kind == "union_tag_not_found":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in _TYPE_ERRORS:
        message = f"{message}, not {describe_input(error.get('input'))}"
    return message


def validation_problems(
    exc: ValidationError,
    where: str,
    document: Lines | None = None,
    *,
    union_tags: Collection[str] = (),
    rename: Callable[[Loc], str] | None = None,
    example: str = "the example config",
) -> list[Problem]:
    """Every error of `exc` as a Problem of `where` (with its YAML line if `document` is given).

    `union_tags`: values of tagged unions that pydantic puts into the location (source.modbus.port
    is the user's source.port). `rename`: a location -> the name the user knows (e.g. an option)."""
    problems = []
    for error in exc.errors():
        loc: Loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p in union_tags))
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # the problem is the discriminator key (source.kind), not the whole section
            loc = (*loc, str(error.get("ctx", {}).get("discriminator", "kind")).strip("'"))
        line = document.line_of(loc) if document is not None else None
        key = rename(loc) if rename is not None else format_loc(loc) or "(top level)"
        problems.append(Problem(where, message_of(error, example=example), key, line))
    return problems
