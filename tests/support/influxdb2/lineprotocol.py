"""Line protocol in and out, with the parse errors InfluxDB 2 answers.

Reconstructed from influxdb v2.7.12 models/points.go (scanLine, scanKey, scanMeasurement,
scanTags*, scanFields, scanNumber, scanBoolean, scanTime, parsePoint, the escape sets, the
reserved tag keys `_field`, `_measurement`, `time`) and models/time.go (the time range): the
scanner below follows the same states on bytes, so a bad line fails with the same words
("unable to parse '<line>': missing fields", "invalid boolean", "bad timestamp", ...).
Several bad lines are reported together, one per line, as ParsePointsWithPrecision does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FieldType = str  # "float" | "integer" | "unsigned" | "string" | "boolean" (influxql names)
PRECISION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
MIN_NANO = -(2**63) + 2
MAX_NANO = 2**63 - 2
_RESERVED_TAG_KEYS = (b"\xff", b"\x00", b"_field", b"_measurement", b"time")
_MAX_KEY_LENGTH = 65535


class LineProtocolError(ValueError):
    """All bad lines of a batch, each as `unable to parse '<line>': <reason>`."""


class _Bad(Exception):
    pass


@dataclass(frozen=True)
class Point:
    """One parsed point: tags sorted by key, fields in the order written."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldType, object], ...]
    time_ns: int

    @property
    def series_key(self) -> str:
        """models.Point.Key(): the escaped measurement and sorted tags, `m,t1=a,t2=b`."""
        return series_key(self.measurement, self.tags)


def series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    parts = [escape_measurement(measurement)]
    parts += [f"{escape_tag(k)}={escape_tag(v)}" for k, v in tags]
    return ",".join(parts)


def escape_measurement(text: str) -> str:
    return text.replace(",", "\\,").replace(" ", "\\ ")


def escape_tag(text: str) -> str:
    return text.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def _unescape_measurement(raw: bytes) -> bytes:
    return raw.replace(b"\\,", b",").replace(b"\\ ", b" ") if b"\\" in raw else raw


def _unescape_tag(raw: bytes) -> bytes:
    if b"\\" not in raw:
        return raw
    return raw.replace(b"\\,", b",").replace(b"\\ ", b" ").replace(b"\\=", b"=")


def _unescape_string_field(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 1 < len(raw) and raw[i + 1] in (0x5C, 0x22):
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return bytes(out)


def format_field_value(kind: FieldType, value: object) -> str:
    """The field value as line protocol writes it (floats keep full precision)."""
    if kind == "float":
        return repr(float(value))  # type: ignore[arg-type]
    if kind == "integer":
        return f"{value}i"
    if kind == "unsigned":
        return f"{value}u"
    if kind == "boolean":
        return "true" if value else "false"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def format_line(point: Point) -> str:
    fields = ",".join(
        f"{escape_tag(name)}={format_field_value(kind, value)}"
        for name, kind, value in point.fields
    )
    return f"{point.series_key} {fields} {point.time_ns}"


# ----------------------------------------------------------------------------- the scanner


def _is_numeric(b: int) -> bool:
    return 0x30 <= b <= 0x39 or b == 0x2E


def _skip_whitespace(buf: bytes, i: int) -> int:
    while i < len(buf) and buf[i] in (0x20, 0x09, 0x00):
        i += 1
    return i


def _scan_line(buf: bytes, i: int) -> int:
    """The end of the line starting at i (a newline inside a quoted field value is kept)."""
    quoted = fields = False
    equals = commas = 0
    while i < len(buf):
        c = buf[i]
        if c == 0x5C and i + 2 < len(buf):
            i += 2
            continue
        if c == 0x20:
            fields = True
        if fields:
            if not quoted and c == 0x3D:
                i += 1
                equals += 1
                continue
            if not quoted and c == 0x2C:
                i += 1
                commas += 1
                continue
            if c == 0x22 and equals > commas:
                i += 1
                quoted = not quoted
                continue
        if c == 0x0A and not quoted:
            break
        i += 1
    return i


def _scan_measurement(buf: bytes, i: int) -> tuple[str, int]:
    if i >= len(buf) or buf[i] == 0x2C:
        raise _Bad("missing measurement")
    while True:
        i += 1
        if i >= len(buf):
            raise _Bad("missing fields")
        if buf[i - 1] == 0x5C:
            continue
        if buf[i] == 0x2C:
            return "tags", i + 1
        if buf[i] == 0x20:
            return "fields", i


def _scan_tag_key(buf: bytes, i: int) -> int:
    if i >= len(buf) or buf[i] in (0x20, 0x2C, 0x3D):
        raise _Bad("missing tag key")
    while True:
        i += 1
        if i >= len(buf) or (buf[i] in (0x20, 0x2C) and buf[i - 1] != 0x5C):
            raise _Bad("missing tag value")
        if buf[i] == 0x3D and buf[i - 1] != 0x5C:
            return i + 1


def _scan_tag_value(buf: bytes, i: int) -> tuple[str, int]:
    if i >= len(buf) or buf[i] in (0x2C, 0x20):
        raise _Bad("missing tag value")
    while True:
        i += 1
        if i >= len(buf):
            raise _Bad("missing fields")
        if buf[i] == 0x3D and buf[i - 1] != 0x5C:
            raise _Bad("invalid tag format")
        if buf[i] == 0x2C and buf[i - 1] != 0x5C:
            return "tags", i + 1
        if buf[i] == 0x20 and buf[i - 1] != 0x5C:
            return "fields", i


def _split_unescaped(raw: bytes, stop: int) -> tuple[bytes, bytes]:
    for j in range(len(raw)):
        if raw[j] == stop and (j == 0 or raw[j - 1] != 0x5C):
            return raw[:j], raw[j + 1 :]
    return raw, b""


def _scan_key(buf: bytes, i: int) -> tuple[bytes, list[tuple[bytes, bytes]], int]:
    start = _skip_whitespace(buf, i)
    state, i = _scan_measurement(buf, start)
    measurement_end = i - 1 if state == "tags" else i
    tags: list[tuple[bytes, bytes]] = []
    while state == "tags":
        key_start = i
        i = _scan_tag_key(buf, i)
        state, i = _scan_tag_value(buf, i)
        end = i - 1 if state == "tags" else i
        key, value = _split_unescaped(buf[key_start:end], 0x3D)
        tags.append((key, value))
    for key, _ in tags:
        if key in _RESERVED_TAG_KEYS:
            raise _Bad(f"cannot use reserved tag key {_go_quote(key)}")
    keys = sorted(k for k, _ in tags)
    if len(set(keys)) != len(keys):
        raise _Bad("duplicate tags")
    if i - start > _MAX_KEY_LENGTH:
        raise _Bad(f"max key length exceeded: {i - start} > {_MAX_KEY_LENGTH}")
    return buf[start:measurement_end], sorted(tags), i


def _go_quote(raw: bytes) -> str:
    return '"' + raw.decode("utf-8", "replace").replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scan_number(buf: bytes, i: int) -> int:  # noqa: PLR0912 (one branch per rule of models/points.go)
    start = i
    is_int = is_unsigned = decimal = scientific = False
    if i < len(buf) and buf[i] == 0x2D:
        i += 1
        if i == len(buf):
            raise _Bad("invalid number")
    while i < len(buf):
        c = buf[i]
        if c in (0x2C, 0x20):
            break
        if c == 0x69 and i > start and not (is_int or is_unsigned):  # i
            is_int = True
            i += 1
            continue
        if c == 0x75 and i > start and not (is_int or is_unsigned):  # u
            is_unsigned = True
            i += 1
            continue
        if c == 0x2E:
            if decimal:
                raise _Bad("invalid number")
            decimal = True
        if i > start and c in (0x65, 0x45):
            scientific = True
            i += 1
            continue
        if c in (0x2B, 0x2D) and buf[i - 1] in (0x65, 0x45):
            i += 1
            continue
        if i + 2 < len(buf) and c in (0x4E, 0x6E):
            raise _Bad("invalid number")
        if not _is_numeric(c):
            raise _Bad("invalid number")
        i += 1
    if (is_int or is_unsigned) and (decimal or scientific):
        raise _Bad("invalid number")
    digits = i - start - int(is_int) - int(decimal) - int(buf[start] == 0x2D)
    if digits <= 0:
        raise _Bad("invalid number")
    if (is_int or is_unsigned) and buf[i - 1] not in (0x69, 0x75):
        raise _Bad("invalid number")
    if is_unsigned and buf[start] == 0x2D:
        raise _Bad("invalid number")
    return i


def _scan_boolean(buf: bytes, i: int) -> int:
    start = i
    if i < len(buf) and buf[i] not in b"tfTF":
        raise _Bad("invalid boolean")
    i += 1
    while i < len(buf) and buf[i] not in (0x2C, 0x20):
        i += 1
    word = buf[start:i]
    if len(word) == 1 or word in (b"true", b"false", b"TRUE", b"True", b"FALSE", b"False"):
        return i
    raise _Bad("invalid boolean")


def _scan_fields(buf: bytes, i: int) -> tuple[bytes, int]:  # noqa: PLR0912 (mirrors scanFields)
    start = i = _skip_whitespace(buf, i)
    quoted = False
    equals = commas = 0
    while i < len(buf):
        c = buf[i]
        if c == 0x5C and i + 1 < len(buf):
            i += 2
            continue
        if c == 0x22 and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if c == 0x3D and not quoted:
            equals += 1
            if buf[i - 1] == 0x20 and buf[i - 2] != 0x5C:
                raise _Bad("missing field key")
            if buf[i - 1] == 0x2C and buf[i - 2] != 0x5C:
                raise _Bad("missing field key")
            if i + 1 >= len(buf) or buf[i + 1] in (0x2C, 0x20):
                raise _Bad("missing field value")
            nxt = buf[i + 1]
            if _is_numeric(nxt) or nxt in (0x2D, 0x4E, 0x6E):
                i = _scan_number(buf, i + 1)
                continue
            if nxt != 0x22:
                i = _scan_boolean(buf, i + 1)
                continue
        if c == 0x2C and not quoted:
            commas += 1
        if c == 0x20 and not quoted:
            break
        i += 1
    if quoted:
        raise _Bad("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise _Bad("invalid field format")
    return buf[start:i], i


def _scan_time(buf: bytes, i: int) -> tuple[bytes, int]:
    start = i = _skip_whitespace(buf, i)
    while i < len(buf) and buf[i] not in (0x0A, 0x20):
        if i == start and buf[i] == 0x2D:
            i += 1
            continue
        if not 0x30 <= buf[i] <= 0x39:
            raise _Bad("bad timestamp")
        i += 1
    return buf[start:i], i


def _field_values(raw: bytes) -> list[tuple[str, FieldType, object]]:
    fields: list[tuple[str, FieldType, object]] = []
    rest = raw
    while rest:
        key, rest = _split_unescaped(rest, 0x3D)
        # the value runs to the next comma outside quotes
        j, quoted = 0, False
        while j < len(rest):
            if rest[j] == 0x5C and j + 1 < len(rest):
                j += 2
                continue
            if rest[j] == 0x22:
                quoted = not quoted
            elif rest[j] == 0x2C and not quoted:
                break
            j += 1
        value, rest = rest[:j], rest[j + 1 :]
        name = _unescape_tag(key).decode("utf-8", "replace")
        fields.append((name, *_typed(value)))
    return fields


def _typed(value: bytes) -> tuple[FieldType, object]:
    if value.startswith(b'"'):
        return "string", _unescape_string_field(value[1:-1]).decode("utf-8", "replace")
    if value[:1] in (b"t", b"T"):
        return "boolean", True
    if value[:1] in (b"f", b"F"):
        return "boolean", False
    if value.endswith(b"i"):
        number = int(value[:-1])
        if not -(2**63) <= number < 2**63:
            raise _Bad(f"unable to parse integer {value[:-1].decode()}: value out of range")
        return "integer", number
    if value.endswith(b"u"):
        number = int(value[:-1])
        if number >= 2**64:
            raise _Bad(f"unable to parse unsigned {value[:-1].decode()}: value out of range")
        return "unsigned", number
    try:
        number_f = float(value)
    except ValueError:
        raise _Bad("invalid number") from None
    if math.isnan(number_f) or math.isinf(number_f):
        raise _Bad("invalid float")
    return "float", number_f


def _parse_point(block: bytes, now_ns: int, precision: str) -> Point:
    raw_measurement, tags, i = _scan_key(block, 0)
    if not raw_measurement:
        raise _Bad("missing measurement")
    raw_fields, i = _scan_fields(block, i)
    if not raw_fields:
        raise _Bad("missing fields")
    fields = _field_values(raw_fields)
    raw_time, i = _scan_time(block, i)
    if raw_time:
        if raw_time == b"-":
            raise _Bad("bad timestamp")
        ts = int(raw_time) * PRECISION_NS.get(precision, 1)  # GetPrecisionMultiplier: else ns
        if not MIN_NANO <= ts <= MAX_NANO:
            raise _Bad(f"time outside range {MIN_NANO} - {MAX_NANO}")
        if any(b != 0x20 for b in block[i:]):
            raise _Bad("point is invalid")
    else:
        step = PRECISION_NS.get(precision, 1)
        ts = now_ns - now_ns % step
    measurement = _unescape_measurement(raw_measurement).decode("utf-8", "replace")
    decoded = tuple(
        (_unescape_tag(k).decode("utf-8", "replace"), _unescape_tag(v).decode("utf-8", "replace"))
        for k, v in tags
    )
    return Point(measurement, decoded, tuple(fields), ts)


def parse(body: bytes, precision: str, now_ns: int) -> list[Point]:
    """All points of a write body; LineProtocolError lists every bad line (none is kept)."""
    points: list[Point] = []
    failed: list[str] = []
    pos = 0
    while pos < len(body):
        end = _scan_line(body, pos)
        block = body[pos:end]
        pos = end + 1
        start = _skip_whitespace(block, 0)
        if start >= len(block) or block[start] == 0x23:  # blank or a # comment
            continue
        line = block[start:].removesuffix(b"\n")
        try:
            points.append(_parse_point(line, now_ns, precision))
        except _Bad as exc:
            failed.append(f"unable to parse '{line.decode('utf-8', 'replace')}': {exc}")
    if failed:
        raise LineProtocolError("\n".join(failed))
    return points
