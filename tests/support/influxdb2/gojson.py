"""JSON and time text the way InfluxDB's Go code writes it.

Source: Go's encoding/json (floats in 'f' form unless the exponent is < -6 or >= 21, where
'e' form is used; `<`, `>`, `&`, U+2028 and U+2029 escaped; non-ASCII written as UTF-8),
`json.MarshalIndent(v, "", "\\t")` for kithttp.API answers (kit/transport/http/api.go,
influxdb v2.7.12), `json.NewEncoder(w).Encode(v)` (compact plus a newline) elsewhere, and
time.Time's RFC3339Nano text (trailing zeros of the fraction dropped).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_float(value: float) -> str:
    """encoding/json's float64 text: strconv 'f' form with the shortest digits, or 'e' form
    when the magnitude is < 1e-6 or >= 1e21 (with e-07 shortened to e-7)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = repr(value).partition("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
        if sign == "+" and len(digits) < 2:
            digits = digits.rjust(2, "0")
        return f"{mantissa.removesuffix('.0')}e{sign}{digits}"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" and value == 0 and math.copysign(1, value) > 0 else text


def go_float_fixed(value: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): what Flux's CSV encoder writes for a double."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _encode(value: Any, indent: str | None, level: int) -> str:  # noqa: PLR0911 (a return per JSON kind)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for raw, escaped in _GO_ESCAPES.items():
            text = text.replace(raw, escaped)
        return text
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{_encode(str(k), None, 0)}:{_sep(indent)}{_encode(v, indent, level + 1)}"
            for k, v in value.items()
        ]
        return _wrap("{", "}", items, indent, level)
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return _wrap("[", "]", [_encode(v, indent, level + 1) for v in value], indent, level)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _sep(indent: str | None) -> str:
    return "" if indent is None else " "


def _wrap(open_: str, close: str, items: list[str], indent: str | None, level: int) -> str:
    if indent is None:
        return open_ + ",".join(items) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(items) + "\n" + indent * level + close


def marshal(value: Any) -> bytes:
    """json.Marshal: compact, no trailing newline."""
    return _encode(value, None, 0).encode()


def marshal_indent(value: Any) -> bytes:
    """json.MarshalIndent(v, "", "\\t"): what kithttp.API.Respond writes."""
    return _encode(value, "\t", 0).encode()


def encoder_line(value: Any) -> bytes:
    """json.NewEncoder(w).Encode(v): compact plus a newline."""
    return marshal(value) + b"\n"


def rfc3339nano(ns: int) -> str:
    """time.Time.Format(time.RFC3339Nano) in UTC for a Unix time in nanoseconds."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def rfc3339(ns: int) -> str:
    """time.Time.Format(time.RFC3339): whole seconds."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> int:
    """An RFC3339 time with an optional fraction and Z or an offset, as Unix nanoseconds."""
    main, fraction, zone = text, "", "Z"
    if text.endswith(("Z", "z")):
        main = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        main, zone = text[:-6], text[-6:]
    else:
        raise ValueError(f"invalid RFC3339 time {text!r}")
    if "." in main:
        main, fraction = main.split(".", 1)
        if not fraction.isdigit() or len(fraction) > 9:
            raise ValueError(f"invalid RFC3339 time {text!r}")
    moment = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)


def go_duration(ns: int) -> str:
    """time.Duration.String(): 720h0m0s, 1h0m0s, 1.5s, 0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                whole, rest = divmod(ns, size)
                frac = f".{rest:0{len(str(size)) - 1}d}".rstrip("0").rstrip(".") if size > 1 else ""
                return f"{sign}{whole}{frac}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds, frac_ns = divmod(rest, 1_000_000_000)
    frac = f".{frac_ns:09d}".rstrip("0") if frac_ns else ""
    text = f"{seconds}{frac}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text
