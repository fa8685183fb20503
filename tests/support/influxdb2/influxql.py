"""The small InfluxQL subset the stand-in answers on the v1 `/query`, through DBRP mappings.

Supported statements (separated by `;`, keywords in any case):
  SHOW DATABASES
  SHOW MEASUREMENTS
  SHOW FIELD KEYS [FROM <measurement>]
  SHOW TAG KEYS [FROM <measurement>]
  SELECT * | <field or tag>[, ...] FROM [<db>.[<rp>].]<measurement>
         [WHERE <condition>] [GROUP BY * | <tag>[, ...]] [ORDER BY time [ASC|DESC]] [LIMIT <n>]
  A condition compares `time` with a 'RFC3339' string, now() [- <duration>] or an integer
  with a unit (1795435200s), and tags with = or != to a 'string'; AND, OR and ( ) combine.
Anything else (functions such as mean(), GROUP BY time(), field conditions, INTO, writes)
raises QueryError, a 400 naming the stand-in's limit.

Shapes reconstructed from influxdb v2.7.12: influxql/query/result.go and models/rows.go
(statement_id, series{name, tags, columns, values}, error), response_writer.go (compact JSON
and a newline), proxy_executor.go (epoch conversion), v1/coordinator/statement_executor.go
(SHOW DATABASES from the DBRP mappings the token may read; "database name required",
"database not found: <db>"; the default retention policy of a database).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import gojson

SUPPORTED = (
    "SHOW DATABASES, SHOW MEASUREMENTS, SHOW FIELD KEYS, SHOW TAG KEYS and SELECT of raw "
    "fields and tags with time and tag conditions"
)
_UNITS = {
    "ns": 1,
    "u": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<duration>\d+(?:ns|u|µ|ms|s|m|h|d|w)\b)
  | (?P<number>\d+\.\d+|\d+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<ident>"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=~|!~|[=<>(),;*.\-+])
    """,
    re.VERBOSE,
)


class QueryError(Exception):
    """A statement the stand-in does not run."""


@dataclass
class Select:
    columns: list[str]  # ["*"] or names
    database: str
    retention_policy: str
    measurement: str
    condition: Any = None
    group_by: list[str] = field(default_factory=list)
    descending: bool = False
    limit: int = 0


@dataclass
class Show:
    what: str  # databases | measurements | field keys | tag keys
    measurement: str = ""


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise QueryError(
                f"cannot parse the query at character {pos + 1}: {text[pos : pos + 20]!r}"
            )
        pos = match.end()
        if match.lastgroup != "ws":
            out.append((match.lastgroup or "", match.group()))
    return out


def _ident(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1]) if text.startswith('"') else text


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self, word: str | None = None) -> bool:
        if self.pos >= len(self.toks):
            return False
        return word is None or self.toks[self.pos][1].upper() == word.upper()

    def take(self, word: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.toks):
            raise QueryError("unexpected end of the statement")
        tok = self.toks[self.pos]
        if word is not None and tok[1].upper() != word.upper():
            raise QueryError(f"expected {word}, found {tok[1]}")
        self.pos += 1
        return tok

    def statements(self) -> list[Select | Show]:
        out: list[Select | Show] = []
        while self.pos < len(self.toks):
            if self.peek(";"):
                self.take()
                continue
            out.append(self.statement())
            if self.pos < len(self.toks) and not self.peek(";"):
                raise QueryError(
                    f"unexpected {self.toks[self.pos][1]!r}; the stand-in supports {SUPPORTED}"
                )
        return out

    def statement(self) -> Select | Show:
        if self.peek("SHOW"):
            return self.show()
        if self.peek("SELECT"):
            return self.select()
        word = self.toks[self.pos][1].upper()
        raise QueryError(f"{word} statements are not supported (supported: {SUPPORTED})")

    def show(self) -> Show:
        self.take("SHOW")
        words = []
        while (
            self.pos < len(self.toks)
            and self.toks[self.pos][0] == "ident"
            and not self.peek("FROM")
        ):
            words.append(self.take()[1].upper())
        what = " ".join(words).lower()
        if what not in ("databases", "measurements", "field keys", "tag keys"):
            raise QueryError(f"SHOW {what.upper()} is not supported (supported: {SUPPORTED})")
        measurement = ""
        if self.peek("FROM"):
            self.take()
            measurement = _ident(self.take()[1])
        return Show(what, measurement)

    def select(self) -> Select:  # noqa: PLR0912 (one branch per clause of SELECT)
        self.take("SELECT")
        columns = []
        while True:
            kind, text = self.take()
            if text == "*":
                columns.append("*")
            elif kind == "ident":
                if self.peek("("):
                    raise QueryError(
                        f"functions such as {text}() are not supported (supported: {SUPPORTED})"
                    )
                columns.append(_ident(text))
            else:
                raise QueryError(f"selecting {text!r} is not supported (supported: {SUPPORTED})")
            if not self.peek(","):
                break
            self.take(",")
        if self.peek("INTO"):
            raise QueryError("SELECT INTO is not supported")
        self.take("FROM")
        parts = [_ident(self.take()[1])]
        while self.peek("."):
            self.take(".")
            parts.append(_ident(self.take()[1]) if not self.peek(".") else "")
        db, rp, measurement = (["", "", *parts])[-3:]
        statement = Select(columns, db, rp, measurement)
        if self.peek("WHERE"):
            self.take()
            statement.condition = self.condition()
        if self.peek("GROUP"):
            self.take("GROUP")
            self.take("BY")
            while True:
                kind, text = self.take()
                if self.peek("("):
                    raise QueryError(f"GROUP BY {text}() is not supported (supported: {SUPPORTED})")
                statement.group_by.append("*" if text == "*" else _ident(text))
                if not self.peek(","):
                    break
                self.take(",")
        if self.peek("ORDER"):
            self.take("ORDER")
            self.take("BY")
            self.take("time")
            if self.peek("DESC") or self.peek("ASC"):
                statement.descending = self.take()[1].upper() == "DESC"
        if self.peek("LIMIT"):
            self.take()
            statement.limit = int(self.take()[1])
        return statement

    def condition(self) -> Any:
        parts = [self.conjunction()]
        while self.peek("OR"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def conjunction(self) -> Any:
        parts = [self.term()]
        while self.peek("AND"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def term(self) -> Any:
        if self.peek("("):
            self.take("(")
            inner = self.condition()
            self.take(")")
            return inner
        name = _ident(self.take()[1])
        op = self.take()[1]
        if op == "<>":
            op = "!="
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise QueryError(f"the operator {op} is not supported (supported: {SUPPORTED})")
        if name.lower() == "time":
            return ("time", op, self.time_value())
        kind, value = self.take()
        if kind != "string":
            raise QueryError(
                f"conditions on {name} = {value} (fields or numbers) are not supported "
                f"(supported: {SUPPORTED})"
            )
        if op not in ("=", "!="):
            raise QueryError(f"tag comparisons with {op} are not supported")
        return ("tag", name, op, re.sub(r"\\(.)", r"\1", value[1:-1]))

    def time_value(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return gojson.parse_rfc3339(text[1:-1] if "T" in text else f"{text[1:-1]}T00:00:00Z")
        if kind == "duration":
            number, unit = re.match(r"(\d+)(\D+)", text).groups()  # type: ignore[union-attr]
            return int(number) * _UNITS[unit]
        if kind == "number":
            return int(text)
        if text.lower() == "now":
            self.take("(")
            self.take(")")
            offset = 0
            if self.peek("-") or self.peek("+"):
                sign = -1 if self.take()[1] == "-" else 1
                kind, text = self.take()
                if kind != "duration":
                    raise QueryError(
                        f"now() {'-' if sign < 0 else '+'} needs a duration, not {text}"
                    )
                number, unit = re.match(r"(\d+)(\D+)", text).groups()  # type: ignore[union-attr]
                offset = sign * int(number) * _UNITS[unit]
            return ("now", offset)
        raise QueryError(f"time compared with {text!r} is not supported")


def parse(text: str) -> list[Select | Show]:
    return _Parser(text).statements()


# ----------------------------------------------------------------------------- execution


@dataclass
class Context:
    """What the executor needs: the token's readable DBRP mappings and the data."""

    now_ns: int
    db: str
    rp: str
    mappings: Callable[[], list[dict[str, Any]]]  # readable DBRP mappings of the token's org
    rows: Callable[..., list[Any]]  # (bucket_id, start, stop, measurement=) -> store rows
    measurements: Callable[[str], list[str]]
    field_types: Callable[[str, str], list[tuple[str, str]]]
    tag_keys: Callable[[str, str], list[str]]


def _bucket_for(ctx: Context, db: str, rp: str) -> str:
    if not db:
        raise QueryError("database name required")
    found = [m for m in ctx.mappings() if m["database"] == db]
    if not found:
        raise _StatementError(f"database not found: {db}")
    if not rp:
        defaults = [m for m in found if m["default"]]
        if not defaults:
            raise _StatementError(f"default retention policy not set for: {db}")
        return str(defaults[0]["bucketID"])
    for m in found:
        if m["retention_policy"] == rp:
            return str(m["bucketID"])
    raise _StatementError(f"retention policy not found: {rp}")


class _StatementError(Exception):
    """An error InfluxDB reports inside the statement's result (HTTP 200)."""


_INFLUXQL_TYPE = {
    "float": "float",
    "integer": "integer",
    "unsigned": "unsigned",
    "string": "string",
    "boolean": "boolean",
}


def execute(statements: list[Select | Show], ctx: Context, epoch: str) -> list[dict[str, Any]]:
    results = []
    for number, statement in enumerate(statements):
        result: dict[str, Any] = {"statement_id": number}
        try:
            series = _run(statement, ctx, epoch)
            if series:
                result["series"] = series
        except _StatementError as exc:
            result["error"] = str(exc)
        except QueryError as exc:
            if str(exc) == "database name required":
                result["error"] = str(exc)
            else:
                raise
        results.append(result)
    return results


def _run(statement: Select | Show, ctx: Context, epoch: str) -> list[dict[str, Any]]:
    if isinstance(statement, Show):
        if statement.what == "databases":
            seen: list[str] = []
            for mapping in ctx.mappings():
                if mapping["database"] not in seen:
                    seen.append(mapping["database"])
            row: dict[str, Any] = {"name": "databases", "columns": ["name"]}
            if seen:
                row["values"] = [[d] for d in seen]
            return [row]
        bucket = _bucket_for(ctx, ctx.db, ctx.rp)
        if statement.what == "measurements":
            names = ctx.measurements(bucket)
            return (
                [{"name": "measurements", "columns": ["name"], "values": [[n] for n in names]}]
                if names
                else []
            )
        measurements = (
            [statement.measurement] if statement.measurement else ctx.measurements(bucket)
        )
        out: list[dict[str, Any]] = []
        for m in measurements:
            if statement.what == "field keys":
                fields = ctx.field_types(bucket, m)
                if fields:
                    out.append(
                        {
                            "name": m,
                            "columns": ["fieldKey", "fieldType"],
                            "values": [[f, _INFLUXQL_TYPE[t]] for f, t in fields],
                        }
                    )
            else:
                keys = ctx.tag_keys(bucket, m)
                if keys:
                    out.append({"name": m, "columns": ["tagKey"], "values": [[k] for k in keys]})
        return out
    return _select(statement, ctx, epoch)


def _time_bounds(condition: Any, now: int) -> tuple[int, int]:
    low, high = -(2**63) + 2, 2**63 - 2

    def visit(node: Any) -> None:
        nonlocal low, high
        if isinstance(node, tuple) and node[0] == "and":
            for part in node[1]:
                visit(part)
        elif isinstance(node, tuple) and node[0] == "time":
            _, op, value = node
            ts = now + value[1] if isinstance(value, tuple) else value
            if op in (">", ">="):
                low = max(low, ts + (1 if op == ">" else 0))
            elif op in ("<", "<="):
                high = min(high, ts + (1 if op == "<=" else 0))
            elif op == "=":
                low, high = max(low, ts), min(high, ts + 1)
            else:
                raise QueryError("time != is not supported")
        elif (
            isinstance(node, tuple) and node[0] == "or" and any(_mentions_time(p) for p in node[1])
        ):
            raise QueryError("time conditions inside OR are not supported")

    visit(condition)
    return low, high


def _mentions_time(node: Any) -> bool:
    if isinstance(node, tuple) and node[0] in ("and", "or"):
        return any(_mentions_time(p) for p in node[1])
    return isinstance(node, tuple) and node[0] == "time"


def _tag_match(node: Any, tags: dict[str, str]) -> bool:
    if node is None:
        return True
    if node[0] == "and":
        return all(_tag_match(p, tags) for p in node[1])
    if node[0] == "or":
        return any(_tag_match(p, tags) for p in node[1])
    if node[0] == "time":
        return True
    _, name, op, value = node
    equal = tags.get(name, "") == value
    return equal if op == "=" else not equal


def _time_value(ns: int, epoch: str) -> Any:
    if not epoch:
        return gojson.rfc3339nano(ns)
    divisor = {
        "ns": 1,
        "u": 1_000,
        "µ": 1_000,
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60_000_000_000,
        "h": 3_600_000_000_000,
    }.get(epoch, 1)
    return ns // divisor


def _select(statement: Select, ctx: Context, epoch: str) -> list[dict[str, Any]]:
    bucket = _bucket_for(ctx, statement.database or ctx.db, statement.retention_policy or ctx.rp)
    low, high = _time_bounds(statement.condition, ctx.now_ns)
    rows = ctx.rows(bucket, low, high, measurement=statement.measurement)
    field_names = sorted({r.field for r in rows})
    tag_names = sorted({k for r in rows for k, _ in r.tags})
    group_all = "*" in statement.group_by
    grouped_tags = tag_names if group_all else [t for t in statement.group_by if t != "*"]
    if statement.columns == ["*"]:
        columns = sorted(field_names + [t for t in tag_names if t not in grouped_tags])
    else:
        columns = statement.columns
    # points: (group tags, time, series) -> values by column
    points: dict[tuple[tuple[tuple[str, str], ...], int, str], dict[str, Any]] = {}
    for r in rows:
        tags = dict(r.tags)
        if not _tag_match(statement.condition, tags):
            continue
        group = tuple((k, tags.get(k, "")) for k in grouped_tags)
        point = points.setdefault((group, r.time_ns, r.series), dict(tags))
        point[r.field] = r.value
    series: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
    for (group, ts, _), values in sorted(
        points.items(), key=lambda item: (item[0][0], item[0][1], item[0][2])
    ):
        if not any(c in values and c in field_names for c in columns):
            continue
        series.setdefault(group, []).append([ts, *(values.get(c) for c in columns)])
    out: list[dict[str, Any]] = []
    for group, found in sorted(series.items()):
        found.sort(key=lambda v: v[0], reverse=statement.descending)
        kept = found[: statement.limit] if statement.limit else found
        for v in kept:
            v[0] = _time_value(v[0], epoch)
        row: dict[str, Any] = {"name": statement.measurement}
        if grouped_tags:
            row["tags"] = dict(sorted(group))
        row["columns"] = ["time", *columns]
        row["values"] = kept
        out.append(row)
    return out
