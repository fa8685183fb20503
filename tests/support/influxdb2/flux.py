"""The small Flux subset the stand-in runs, and a clear 400 for everything else.

Supported (one pipeline, optionally ending in `yield`):
  from(bucket: "name") or from(bucketID: "id")
  |> range(start: <time>, stop: <time>)    times: RFC3339 (2026-11-23T10:00:00Z), a date
                                            (2026-11-23), a duration from now (-1h, -30d),
                                            an integer (Unix seconds), now()
  |> filter(fn: (r) => <predicate>)         `r.col` or `r["col"]` compared with == != < <= > >=
                                            to a string, number or boolean; and, or, not, ( )
  |> limit(n: N[, offset: M]) |> first() |> last()
  |> count()                                one row per table: the group key and _value, the
                                            number of non-null values (long); flux v0.196.1
                                            stdlib/universe/count.go, an aggregate: key columns
                                            first, then _value (execute/aggregate.go)
  |> to(bucket: "name")                     writes the rows into another bucket (write permission)
  |> yield(name: "name")
Tables come out as InfluxDB's storage reads them: one per series and field, columns _start,
_stop, _time, _value, _field, _measurement and the tags (sorted); group key all but _time and
_value; ordered by measurement, tags, field. Anything else (other functions, variables,
imports, several statements) raises QueryError naming the stand-in's limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import gojson
from .annotated_csv import Table
from .lineprotocol import Point

SUPPORTED = "from, range, filter, limit, first, last, count, to, yield"
FUNCTIONS = frozenset(SUPPORTED.split(", "))
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<time>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))?)
  | (?P<duration>(?:\d+(?:ns|us|µs|ms|mo|s|m|h|d|w|y))+)
  | (?P<number>\d+\.\d*|\d+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<op>\|>|=>|==|!=|<=|>=|=~|!~|[<>()\[\]{},:.+\-*/=])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


class QueryError(Exception):
    """A query the stand-in cannot run (400 invalid, the message names the limit)."""


@dataclass
class Call:
    name: str
    args: dict[str, Any]


@dataclass
class Pipeline:
    calls: list[Call] = field(default_factory=list)


@dataclass
class Compare:
    column: str
    op: str
    value: Any


@dataclass
class BoolOp:
    op: str  # and | or | not
    parts: list[Any]


@dataclass
class Duration:
    ns: int


@dataclass
class Now:
    pass


@dataclass
class Time:
    ns: int


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise QueryError(
                f"cannot parse the query at character {pos + 1}: {text[pos : pos + 20]!r}"
            )
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "ws":
            out.append((kind, match.group()))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self, value: str | None = None) -> bool:
        if self.pos >= len(self.toks):
            return False
        return value is None or self.toks[self.pos][1] == value

    def take(self, value: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.toks):
            raise QueryError("unexpected end of the query")
        tok = self.toks[self.pos]
        if value is not None and tok[1] != value:
            raise QueryError(f"expected {value!r}, found {tok[1]!r}")
        self.pos += 1
        return tok

    def program(self) -> Pipeline:
        if self.peek("import") or self.peek("option"):
            raise QueryError(
                f"'{self.toks[0][1]}' statements are not supported (supported: {SUPPORTED})"
            )
        pipeline = Pipeline([self.call()])
        while self.peek("|>"):
            self.take("|>")
            pipeline.calls.append(self.call())
        if self.pos < len(self.toks):
            raise QueryError(
                "only one pipeline expression is supported; found more after "
                f"{pipeline.calls[-1].name}()"
            )
        return pipeline

    def call(self) -> Call:
        kind, name = self.take()
        if kind != "ident":
            raise QueryError(f"expected a function call, found {name!r}")
        if self.peek("."):
            raise QueryError(
                f"package functions ({name}.…) are not supported (supported: {SUPPORTED})"
            )
        if name not in FUNCTIONS:
            raise QueryError(f"Flux function {name}() is not supported (supported: {SUPPORTED})")
        self.take("(")
        args: dict[str, Any] = {}
        while not self.peek(")"):
            key = self.take()[1]
            self.take(":")
            args[key] = self.value()
            if self.peek(","):
                self.take(",")
        self.take(")")
        return Call(name, args)

    def value(self) -> Any:  # noqa: PLR0911 (one return per kind of Flux literal)
        kind, text = self.take()
        if kind == "string":
            return _unquote(text)
        if kind == "time":
            return Time(gojson.parse_rfc3339(text if "T" in text else f"{text}T00:00:00Z"))
        if kind == "duration":
            return Duration(_duration(text))
        if kind == "number":
            return float(text) if "." in text else int(text)
        if text == "-":
            nxt_kind, nxt = self.take()
            if nxt_kind == "duration":
                return Duration(-_duration(nxt))
            if nxt_kind == "number":
                return -(float(nxt) if "." in nxt else int(nxt))
            raise QueryError(f"unexpected {nxt!r} after '-'")
        if kind == "ident" and text in ("true", "false"):
            return text == "true"
        if kind == "ident" and text == "now" and self.peek("("):
            self.take("(")
            self.take(")")
            return Now()
        if text == "(":
            return self.function()
        raise QueryError(
            f"values like {text!r} are not supported (variables and expressions are not)"
        )

    def function(self) -> Any:
        param = self.take()[1]
        self.take(")")
        self.take("=>")
        return (param, self.expr(param))

    def expr(self, param: str) -> Any:
        parts = [self.conj(param)]
        while self.peek("or"):
            self.take()
            parts.append(self.conj(param))
        return parts[0] if len(parts) == 1 else BoolOp("or", parts)

    def conj(self, param: str) -> Any:
        parts = [self.unary(param)]
        while self.peek("and"):
            self.take()
            parts.append(self.unary(param))
        return parts[0] if len(parts) == 1 else BoolOp("and", parts)

    def unary(self, param: str) -> Any:
        if self.peek("not"):
            self.take()
            return BoolOp("not", [self.unary(param)])
        if self.peek("("):
            self.take("(")
            inner = self.expr(param)
            self.take(")")
            return inner
        column = self.column(param)
        op = self.take()[1]
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            raise QueryError(f"operator {op!r} is not supported in filter (use == != < <= > >=)")
        return Compare(column, op, self.value())

    def column(self, param: str) -> str:
        name = self.take()[1]
        if name != param:
            raise QueryError(f"filter predicates must compare {param}.<column>, found {name!r}")
        if self.peek("."):
            self.take(".")
            return self.take()[1]
        self.take("[")
        column = _unquote(self.take()[1])
        self.take("]")
        return column


def _unquote(text: str) -> str:
    return re.sub(
        r"\\(.)",
        lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)),
        text[1:-1],
    )


def _duration(text: str) -> int:
    total = 0
    for number, unit in re.findall(r"(\d+)(ns|us|µs|ms|mo|s|m|h|d|w|y)", text):
        if unit in ("mo", "y"):
            raise QueryError(f"calendar durations ({text}) are not supported")
        total += int(number) * _DURATION_UNITS[unit]
    return total


def parse(text: str) -> Pipeline:
    pipeline = _Parser(text).program()
    if pipeline.calls[0].name != "from":
        raise QueryError("a query must start with from()")
    return pipeline


def resolve_time(value: Any, now_ns: int) -> int:
    if isinstance(value, Now):
        return now_ns
    if isinstance(value, Time):
        return value.ns
    if isinstance(value, Duration):
        return now_ns + value.ns
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryError(f"range() bounds must be times, durations or integers, not {value!r}")
    if isinstance(value, float):
        raise QueryError("range() bounds must be times, durations or integers")
    return int(value) * 1_000_000_000  # an integer bound is Unix seconds


def matches(predicate: Any, record: dict[str, Any]) -> bool:
    if isinstance(predicate, BoolOp):
        if predicate.op == "and":
            return all(matches(p, record) for p in predicate.parts)
        if predicate.op == "or":
            return any(matches(p, record) for p in predicate.parts)
        return not matches(predicate.parts[0], record)
    assert isinstance(predicate, Compare)
    if predicate.column not in record:
        return False  # Flux: a missing column compares as null, the row is filtered out
    left, right = record[predicate.column], predicate.value
    if isinstance(right, bool) != isinstance(left, bool) or isinstance(right, str) != isinstance(
        left, str
    ):
        return False
    ops = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return bool(ops[predicate.op](left, right))


# ----------------------------------------------------------------------------- execution


@dataclass
class Source:
    """What a run needs from the server: buckets (permission-checked) and their rows."""

    now_ns: int
    find_bucket: Any  # (name: str | None, id: str | None) -> bucket dict; raises APIError
    rows: Any  # (bucket, start_ns, stop_ns) -> list[store.Row]
    write: Any  # (bucket name, list[lineprotocol.Point]) -> None; raises APIError


def run(pipeline: Pipeline, source: Source) -> tuple[str, list[Table]]:
    """Execute a parsed pipeline; return the result name and its tables."""
    source_call, *rest = pipeline.calls
    bucket = source.find_bucket(source_call.args.get("bucket"), source_call.args.get("bucketID"))
    if not rest or rest[0].name != "range":
        raise QueryError(
            "from() must be followed by range() (InfluxDB refuses an unbounded read: "
            f"cannot submit unbounded read to {bucket['name']!r})"
        )
    bounds = rest[0].args
    if "start" not in bounds:
        raise QueryError("range() needs start")
    start = resolve_time(bounds["start"], source.now_ns)
    stop = resolve_time(bounds.get("stop", Now()), source.now_ns)
    tables = _tables(source.rows(bucket, start, stop), start, stop)
    result = "_result"
    for call in rest[1:]:
        if call.name == "range":
            raise QueryError("only one range() is supported, right after from()")
        if call.name == "filter":
            predicate = call.args["fn"][1]
            tables = [_filtered(t, predicate) for t in tables]
            tables = [t for t in tables if t.rows]
        elif call.name == "limit":
            n, offset = int(call.args.get("n", 0)), int(call.args.get("offset", 0))
            tables = [
                Table(t.columns, t.group_key, t.rows[offset : offset + n], t.key_values)
                for t in tables
            ]
        elif call.name in ("first", "last"):
            pick = 0 if call.name == "first" else -1
            tables = [
                Table(t.columns, t.group_key, [t.rows[pick]], t.key_values)
                for t in tables
                if t.rows
            ]
        elif call.name == "count":
            if call.args:
                raise QueryError("count() takes no arguments here (column is not supported)")
            tables = [_counted(t) for t in tables]
        elif call.name == "to":
            target = call.args.get("bucket")
            points = [Point(*_point_parts(t, row)) for t in tables for row in t.rows]
            source.write(target, points)
        elif call.name == "yield":
            result = str(call.args.get("name", "_result"))
    return result, tables


def _tables(rows: list[Any], start: int, stop: int) -> list[Table]:
    by_series: dict[tuple[str, str, str], Table] = {}
    for row in rows:
        key = (row.series, row.field, row.type)
        table = by_series.get(key)
        if table is None:
            tag_names = [k for k, _ in row.tags]
            columns = [
                ("_start", "time"),
                ("_stop", "time"),
                ("_time", "time"),
                ("_value", row.type),
                ("_field", "string"),
                ("_measurement", "string"),
                *((k, "string") for k in tag_names),
            ]
            group = {"_start", "_stop", "_field", "_measurement", *tag_names}
            key_values = {
                "_start": start,
                "_stop": stop,
                "_field": row.field,
                "_measurement": row.measurement,
                **dict(row.tags),
            }
            table = by_series[key] = Table(columns, group, [], key_values)
        table.rows.append(
            [
                start,
                stop,
                row.time_ns,
                row.value,
                row.field,
                row.measurement,
                *(v for _, v in row.tags),
            ]
        )
    return list(by_series.values())


def _counted(table: Table) -> Table:
    """count(): the table's group key columns (their values are those of every row) and
    _value, the number of non-null _value cells, as one row."""
    keep = [i for i, (name, _) in enumerate(table.columns) if name in table.group_key]
    columns = [table.columns[i] for i in keep] + [("_value", "integer")]
    value_at = [name for name, _ in table.columns].index("_value")
    count = sum(1 for row in table.rows if row[value_at] is not None)
    key = [table.key_values.get(name) for name, _ in columns[:-1]]
    return Table(columns, set(table.group_key), [[*key, count]], table.key_values)


def _record(table: Table, row: list[Any]) -> dict[str, Any]:
    return {name: value for (name, _), value in zip(table.columns, row, strict=True)}


def _filtered(table: Table, predicate: Any) -> Table:
    return Table(
        table.columns,
        table.group_key,
        [r for r in table.rows if matches(predicate, _record(table, r))],
        table.key_values,
    )


def _point_parts(table: Table, row: list[Any]) -> tuple[Any, ...]:
    record = _record(table, row)
    kind = dict(table.columns)["_value"]
    tags = tuple(sorted((k, str(v)) for k, v in record.items() if not k.startswith("_")))
    return (
        record["_measurement"],
        tags,
        ((record["_field"], kind, record["_value"]),),
        record["_time"],
    )
