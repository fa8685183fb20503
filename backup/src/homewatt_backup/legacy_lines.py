"""Lines of hourly archives made before the backup used homewatt_common's encoder (manifest
`line_protocol` 1, or no such key), rewritten as that encoder writes them.

How the two differ (every other byte is the same: measurement, tags and fields sorted alike,
string field values escaped alike (`"` and `\\`, a newline as it is), integers with `i`,
unsigned with `u`, `true`/`false`, floats as Python's repr):
- the old encoder doubled every backslash in a measurement, tag key, tag value or field key
  (`C:\\meters` became `C:\\\\meters`), which InfluxDB reads back as two backslashes: a plain
  restore of such a line would store a different name;
- it wrote a newline in a name as `\\n`, which InfluxDB stores as a backslash and an n.
  (InfluxDB cannot hold a newline in a name, so no export had one.)

`rewrite_legacy_line` undoes the old escaping and encodes the names again; a name the current
encoder refuses (one ending with a backslash: the old line was refused by InfluxDB too) raises
LineProtocolError naming it.
"""

from __future__ import annotations

from homewatt_common.lineprotocol import escape_key, series_key

_UNESCAPE = {"n": "\n"}


def _unescape(text: str) -> str:
    """A name as the old encoder escaped it, read back: a backslash and the character after it
    are that character (`\\n` a newline)."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            out.append(_UNESCAPE.get(following, following))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _split(text: str, separator: str) -> list[str]:
    """`text` cut at every `separator` that no backslash escapes (the old escaping: a backslash
    always pairs with the character after it)."""
    parts: list[str] = []
    start = index = 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def _fields(text: str) -> tuple[list[tuple[str, str]], str]:
    """The (escaped key, value as written) pairs of a line's field section, and what follows
    it (the timestamp, and the line end)."""
    fields: list[tuple[str, str]] = []
    index = 0
    while True:
        start = index
        while text[index] != "=":
            index += 2 if text[index] == "\\" else 1
        key = text[start:index]
        index += 1
        start = index
        if text[index] == '"':
            index += 1
            while text[index] != '"':
                index += 2 if text[index] == "\\" else 1
            index += 1
        else:
            while index < len(text) and text[index] not in ", \n":
                index += 1
        fields.append((key, text[start:index]))
        if index >= len(text) or text[index] != ",":
            return fields, text[index:]
        index += 1


def rewrite_legacy_line(line: str) -> str:
    """One line of a `line_protocol` 1 archive (with or without its newline) as the current
    encoder writes it. Lines without a backslash are the same in both and returned as they are.
    LineProtocolError for a name the current encoder refuses; ValueError (IndexError) for a
    line the old encoder cannot have written."""
    if "\\" not in line:
        return line
    index = 0
    while line[index] != " ":
        index += 2 if line[index] == "\\" else 1
    measurement, *tag_parts = _split(line[:index], ",")
    tags = {}
    for part in tag_parts:
        key, value = _split(part, "=")
        tags[_unescape(key)] = _unescape(value)
    fields, rest = _fields(line[index + 1 :])
    head = series_key(_unescape(measurement), tags)
    body = ",".join(f"{escape_key(_unescape(key), 'field key')}={value}" for key, value in fields)
    return f"{head} {body}{rest}"
