"""Config files: YAML read strictly, every node's line kept for error messages.

- The file must be UTF-8 (a leading byte order mark is accepted and dropped); anything else is
  refused in one line naming the first bad byte and its offset.
- A key given twice in one mapping is refused (YAML's spec says keys are unique; PyYAML would
  silently keep the last one), naming both lines. Merge keys (`<<: *anchor`) are not duplicates.
- Syntax errors name the file, line and column.
- `YamlDocument.line_of(loc)` gives the 1-based line of the value at a location such as
  ('sinks', 0, 'url'), or of its nearest parent that exists (for a missing key).

Errors are ProblemsError (problems.py): `file:line: key: problem`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from homewatt_common.problems import Loc, Problem, ProblemsError, format_loc

UTF8_BOM = b"\xef\xbb\xbf"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its data and its node tree (for line numbers)."""

    path: Path
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the node at `loc`, or of its nearest parent that exists."""
        node = self.root
        line = None
        for part in loc:
            if node is None:
                break
            line = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and part < len(node.value)
            ):
                node = node.value[part]
            else:
                node = None
        if node is not None:
            line = node.start_mark.line + 1
        return line


def decode_utf8(raw: bytes, where: str) -> str:
    """UTF-8 text without a leading BOM; ProblemsError naming the first byte that is not UTF-8."""
    body = raw.removeprefix(UTF8_BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(raw) - len(body))
        line = raw[:offset].count(b"\n") + 1
        raise ProblemsError.one(
            where,
            f"not UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset}): save the file as UTF-8",
            line=line,
        ) from None


def load_yaml(path: Path) -> YamlDocument:
    """Read and parse `path` (see the module docstring); ProblemsError on any problem."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProblemsError.one(where, "the file does not exist") from None
    except OSError as exc:
        raise ProblemsError.one(where, f"cannot read it: {exc.strerror or exc}") from None
    return parse_yaml(decode_utf8(raw, where), path)


def parse_yaml(text: str, path: Path) -> YamlDocument:
    """Parse YAML text that came from `path` (errors name that path)."""
    where = str(path)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks every character at once (ReaderError)
        root = loader.get_single_node()
        if root is not None:
            duplicates = list(_duplicate_keys(root, ()))
            if duplicates:
                raise ProblemsError(
                    [
                        Problem(where, f"duplicate key (first on line {first})", key, line)
                        for key, line, first in duplicates
                    ]
                )
        try:
            data = loader.construct_document(root) if root is not None else None
        except ValueError as exc:  # a scalar YAML resolves but cannot build: 2026-02-30
            raise _construct_problem(where, root, exc) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        if mark is None:
            raise ProblemsError.one(where, f"not valid YAML: {problem}") from None
        raise ProblemsError.one(
            f"{where}:{mark.line + 1}:{mark.column + 1}", f"not valid YAML: {problem}"
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ProblemsError.one(
            where,
            f"not valid YAML: character U+{exc.character:04X} is not allowed"
            if isinstance(exc.character, int)
            else f"not valid YAML: {exc.reason}",
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise ProblemsError.one(where, f"not valid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDocument(path, data, root)


def _construct_problem(where: str, root: yaml.Node | None, exc: ValueError) -> ProblemsError:
    """The value PyYAML resolved but could not build (an impossible date such as 2026-02-30,
    whose constructor raises a bare ValueError without a place), named with its key and line."""
    for loc, node in _scalars(root, ()):
        try:
            yaml.constructor.SafeConstructor().construct_object(node)
        except ValueError as error:
            return ProblemsError(
                [
                    Problem(
                        where,
                        f"{node.value!r} is not a valid value ({error}); quote it for text",
                        format_loc(loc) or "(top level)",
                        node.start_mark.line + 1,
                    )
                ]
            )
    return ProblemsError.one(where, f"not valid YAML: {exc}")


def _scalars(node: yaml.Node | None, loc: Loc) -> Iterator[tuple[Loc, yaml.ScalarNode]]:
    """Every scalar value under `node` with its location (keys are not values)."""
    if isinstance(node, yaml.ScalarNode):
        yield loc, node
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(value, (*loc, getattr(key, "value", "?")))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _scalars(item, (*loc, index))


def _duplicate_keys(
    node: yaml.Node, loc: Loc, seen: set[int] | None = None
) -> Iterator[tuple[str, int, int]]:
    """(key path, its line, the line of its first occurrence) for every repeated key."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                continue
            identity = (key.tag, key.value)
            line = key.start_mark.line + 1
            if identity in first:
                yield format_loc((*loc, key.value)), line, first[identity]
            else:
                first[identity] = line
            yield from _duplicate_keys(value, (*loc, key.value), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index), seen)
