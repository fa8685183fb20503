"""A parser for the InfluxQL that InfluxDB 2's v1-compatible `/query` documents, and nothing more.

Every dashboard and alert query goes through `parse()` when it is generated and again in the tests,
after Grafana's macros are expanded. A statement, clause or function outside these pages is
refused with a `QueryError` naming it and the page, so a query that only InfluxDB 1.x understands
cannot slip into a dashboard:

- statements and the unsupported list (SELECT INTO, CREATE, ALTER, DROP, ...):
  https://docs.influxdata.com/influxdb/v2/query-data/influxql/#influxql-support
- SELECT, FROM (measurement, retention policy, regular expression), WHERE, math, subqueries:
  https://docs.influxdata.com/influxdb/v2/query-data/influxql/explore-data/select/ ,
  .../explore-data/where/ , .../math-operators/ , .../explore-data/subqueries/
- GROUP BY tags and time(interval[, offset]), fill():
  https://docs.influxdata.com/influxdb/v2/query-data/influxql/explore-data/group-by/
- ORDER BY time, LIMIT/OFFSET/SLIMIT/SOFFSET, time syntax (epoch with a unit, `now()`, `+`/`-`
  a duration with the required whitespace, no OR between time conditions) and `tz()`:
  https://docs.influxdata.com/influxdb/v2/query-data/influxql/explore-data/time-and-timezone/
- functions: https://docs.influxdata.com/influxdb/v2/query-data/influxql/functions/
- SHOW TAG VALUES, SHOW MEASUREMENTS, SHOW TAG KEYS, SHOW FIELD KEYS, SHOW SERIES:
  https://docs.influxdata.com/influxdb/v2/query-data/influxql/explore-schema/

`parse()` returns what the statement reads (measurements with their retention policy, fields,
tags, the output columns), which the tests compare with what the collector and the backup write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DOCS = "https://docs.influxdata.com/influxdb/v2/query-data/influxql/"

AGGREGATES = {"count", "distinct", "integral", "mean", "median", "mode", "spread", "stddev", "sum"}
SELECTORS = {"bottom", "first", "last", "max", "min", "percentile", "sample", "top"}
TRANSFORMATIONS = {
    "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cumulative_sum", "derivative",
    "difference", "elapsed", "exp", "floor", "histogram", "ln", "log", "log2", "log10",
    "moving_average", "non_negative_derivative", "non_negative_difference", "pow", "round", "sin",
    "sqrt", "tan",
}  # fmt: skip
TECHNICAL = {
    "holt_winters", "holt_winters_with_fit", "chande_momentum_oscillator",
    "exponential_moving_average", "double_exponential_moving_average",
    "kaufmans_efficiency_ratio", "kaufmans_adaptive_moving_average",
    "triple_exponential_moving_average", "triple_exponential_derivative",
    "relative_strength_index",
}  # fmt: skip
FUNCTIONS = AGGREGATES | SELECTORS | TRANSFORMATIONS | TECHNICAL
FILL_OPTIONS = {"null", "none", "previous", "linear"}
DURATION_UNITS = ("ns", "us", "u", "µ", "ms", "s", "m", "h", "d", "w")
UNSUPPORTED_STATEMENTS = {"ALTER", "CREATE", "DROP", "DELETE", "GRANT", "KILL", "REVOKE", "INSERT"}


class QueryError(ValueError):
    """A query outside the InfluxQL that InfluxDB 2's /query documents, or not InfluxQL at all."""


# ---------------------------------------------------------------------------------- tokenizer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<ident_q>"(?:[^"\\]|\\.)*")
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<duration>\d+(?:ns|us|u|µ|ms|s|m|h|d|w)(?![A-Za-z0-9_]))
  | (?P<number>\d+\.\d*|\.\d+|\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>::|=~|!~|!=|<>|<=|>=|[=<>+\-*%(),.;])
  | (?P<slash>/)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # ident, keyword-ish ident, string, number, duration, regex, op, end
    text: str
    pos: int
    space_before: bool


def _regex_end(text: str, start: int) -> int:
    """Index after the closing slash of a regex literal opened at text[start] == '/'."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "/":
            return i + 1
        i += 1
    raise QueryError(f"unterminated regular expression at {start}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    space = True
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise QueryError(f"unexpected character {text[pos]!r} at {pos}")
        kind = match.lastgroup or ""
        if kind == "ws":
            space = True
            pos = match.end()
            continue
        if kind == "slash":
            # A slash is a regex literal where an operand is expected, else division.
            previous = tokens[-1] if tokens else None
            operand_expected = previous is None or (
                previous.kind == "op" and previous.text not in (")",)
            )
            if (
                previous is not None
                and previous.kind == "ident"
                and previous.text.upper()
                in (
                    "FROM",
                    "BY",
                    "KEY",
                    "MEASUREMENT",
                )
            ):
                operand_expected = True
            if operand_expected:
                end = _regex_end(text, pos)
                tokens.append(Token("regex", text[pos:end], pos, space))
                pos, space = end, False
                continue
            kind = "op"
        if kind == "ident_q":
            kind = "ident"
        tokens.append(Token(kind, match.group(), pos, space))
        pos, space = match.end(), False
    tokens.append(Token("end", "", len(text), space))
    return tokens


# ---------------------------------------------------------------------------------- results


@dataclass
class Source:
    """A measurement read by a statement: its retention policy (None: the default) and name."""

    measurement: str
    retention_policy: str | None = None
    regex: bool = False


@dataclass
class Statement:
    kind: str  # "SELECT" or "SHOW TAG VALUES" ...
    sources: list[Source] = field(default_factory=list)
    subqueries: list[Statement] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)  # field keys read (or subquery columns)
    tags: set[str] = field(default_factory=set)  # tag keys filtered or grouped by
    functions: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # output column names
    group_by_time: tuple[str, str | None] | None = None
    fill: str | None = None
    tz: str | None = None
    time_conditions: list[str] = field(default_factory=list)


def _unquote_ident(text: str) -> str:
    if text.startswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


# ---------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def is_kw(self, *words: str, token: Token | None = None) -> bool:
        t = token or self.tok
        return t.kind == "ident" and not t.text.startswith('"') and t.text.upper() in words

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def advance(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            self.fail(f"expected {word}")
        self.advance()

    def expect_op(self, op: str) -> None:
        if not self.is_op(op):
            self.fail(f"expected {op!r}")
        self.advance()

    def fail(self, message: str) -> None:
        t = self.tok
        shown = t.text or "end of query"
        raise QueryError(f"{message} at {t.pos} (found {shown!r}) in: {self.text}")

    # -- statements
    def statement(self) -> Statement:
        if self.is_kw("SELECT"):
            stmt = self.select()
        elif self.is_kw("SHOW"):
            stmt = self.show()
        elif self.tok.kind == "ident" and self.tok.text.upper() in UNSUPPORTED_STATEMENTS:
            raise QueryError(
                f"{self.tok.text.upper()} is not a query a dashboard may run "
                f"(InfluxDB 2's /query: {DOCS}#influxql-support)"
            )
        else:
            self.fail("expected SELECT or SHOW")
            raise AssertionError  # unreachable: fail() raises
        if self.is_op(";"):
            raise QueryError(f"one statement per query, found ';' at {self.tok.pos}")
        if self.tok.kind != "end":
            self.fail("unexpected text after the statement")
        return stmt

    def select(self) -> Statement:  # noqa: PLR0912 (one branch per clause, in grammar order)
        self.expect_kw("SELECT")
        stmt = Statement("SELECT")
        while True:
            if self.is_op("*"):
                self.advance()
                stmt.columns.append("*")
                stmt.fields.add("*")
            else:
                expr = self.expr(stmt, context="select")
                name = expr
                if self.is_kw("AS"):
                    self.advance()
                    name = _unquote_ident(self.ident())
                stmt.columns.append(name)
            if not self.is_op(","):
                break
            self.advance()
        if self.is_kw("INTO"):
            raise QueryError(
                f"SELECT INTO is not supported by InfluxDB 2's /query ({DOCS}#influxql-support)"
            )
        self.expect_kw("FROM")
        self.sources(stmt)
        if self.is_kw("WHERE"):
            self.advance()
            self.expr(stmt, context="where")
        if self.is_kw("GROUP"):
            self.group_by(stmt)
        if self.is_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            if not self.is_kw("TIME"):
                self.fail("InfluxQL orders by time only")
            self.advance()
            if self.is_kw("ASC", "DESC"):
                self.advance()
        for clause in ("LIMIT", "OFFSET", "SLIMIT", "SOFFSET"):
            if self.is_kw(clause):
                self.advance()
                if self.tok.kind != "number":
                    self.fail(f"{clause} takes a number")
                self.advance()
        if self.is_kw("TZ"):
            self.advance()
            self.expect_op("(")
            if self.tok.kind != "string":
                self.fail("tz() takes a quoted IANA time zone name")
            stmt.tz = self.advance().text[1:-1]
            self.expect_op(")")
        return stmt

    def show(self) -> Statement:  # noqa: PLR0912 (one branch per clause, in grammar order)
        self.expect_kw("SHOW")
        words = []
        while self.tok.kind == "ident" and self.tok.text.upper() in (
            "TAG",
            "VALUES",
            "KEYS",
            "MEASUREMENTS",
            "FIELD",
            "SERIES",
            "DATABASES",
        ):
            words.append(self.advance().text.upper())
        kind = "SHOW " + " ".join(words)
        if kind not in (
            "SHOW TAG VALUES",
            "SHOW TAG KEYS",
            "SHOW MEASUREMENTS",
            "SHOW FIELD KEYS",
            "SHOW SERIES",
            "SHOW DATABASES",
        ):
            raise QueryError(f"{kind} is not documented for InfluxDB 2 ({DOCS}explore-schema/)")
        stmt = Statement(kind)
        if self.is_kw("ON"):
            raise QueryError("ON <database>: the datasource names the database (db parameter)")
        if self.is_kw("FROM"):
            self.advance()
            self.sources(stmt)
        if self.is_kw("WITH"):
            self.advance()
            self.expect_kw("KEY" if kind.startswith("SHOW TAG") else "MEASUREMENT")
            if self.is_op("=", "!=", "<>"):
                self.advance()
                stmt.tags.add(_unquote_ident(self.ident()))
            elif self.is_op("=~", "!~"):
                self.advance()
                if self.tok.kind != "regex":
                    self.fail("expected a regular expression")
                self.advance()
            elif self.is_kw("IN"):
                self.advance()
                self.expect_op("(")
                while True:
                    stmt.tags.add(_unquote_ident(self.ident()))
                    if not self.is_op(","):
                        break
                    self.advance()
                self.expect_op(")")
            else:
                self.fail("expected =, =~ or IN")
        elif kind == "SHOW TAG VALUES":
            self.fail("SHOW TAG VALUES needs WITH KEY")
        if self.is_kw("WHERE"):
            self.advance()
            self.expr(stmt, context="where")
        for clause in ("LIMIT", "OFFSET"):
            if self.is_kw(clause):
                self.advance()
                if self.tok.kind != "number":
                    self.fail(f"{clause} takes a number")
                self.advance()
        return stmt

    def sources(self, stmt: Statement) -> None:
        while True:
            if self.is_op("("):
                self.advance()
                sub = self.select()
                self.expect_op(")")
                stmt.subqueries.append(sub)
            elif self.tok.kind == "regex":
                stmt.sources.append(Source(self.advance().text, regex=True))
            else:
                parts = [_unquote_ident(self.ident())]
                while self.is_op("."):
                    self.advance()
                    parts.append(_unquote_ident(self.ident()))
                if len(parts) == 3:
                    raise QueryError(
                        f"FROM names a database ({parts[0]!r}): the datasource chooses it"
                    )
                if len(parts) > 3:
                    self.fail("too many parts in a measurement name")
                rp = parts[0] if len(parts) == 2 else None
                stmt.sources.append(Source(parts[-1], rp))
            if not self.is_op(","):
                break
            self.advance()

    def group_by(self, stmt: Statement) -> None:
        self.expect_kw("GROUP")
        self.expect_kw("BY")
        while True:
            if self.is_kw("TIME") and self.peek().kind == "op" and self.peek().text == "(":
                self.advance()
                self.expect_op("(")
                interval = self.duration()
                offset = None
                if self.is_op(","):
                    self.advance()
                    negative = self.is_op("-")
                    if negative:
                        self.advance()
                    offset = ("-" if negative else "") + self.duration()
                self.expect_op(")")
                stmt.group_by_time = (interval, offset)
            elif self.is_op("*"):
                self.advance()
                stmt.tags.add("*")
            elif self.tok.kind == "regex":
                self.advance()
            else:
                stmt.tags.add(_unquote_ident(self.ident()))
            if not self.is_op(","):
                break
            self.advance()
        if self.is_kw("FILL"):
            self.advance()
            self.expect_op("(")
            if self.tok.kind == "number" or (
                self.tok.kind == "ident" and self.tok.text.lower() in FILL_OPTIONS
            ):
                stmt.fill = self.advance().text.lower()
            elif self.is_op("-") and self.peek().kind == "number":
                self.advance()
                stmt.fill = "-" + self.advance().text
            else:
                self.fail("fill() takes a number, null, none, previous or linear")
            self.expect_op(")")

    def duration(self) -> str:
        if self.tok.kind != "duration":
            self.fail("expected a duration such as 1m or 1d")
        return self.advance().text

    def ident(self) -> str:
        if self.tok.kind != "ident":
            self.fail("expected a name")
        return self.advance().text

    # -- expressions: OR < AND < comparison < + - < * / % < unary < primary
    def expr(self, stmt: Statement, context: str) -> str:
        return self._or(stmt, context)

    def _or(self, stmt: Statement, context: str) -> str:
        start = len(stmt.time_conditions)
        left = self._and(stmt, context)
        while self.is_kw("OR"):
            self.advance()
            right = self._and(stmt, context)
            left = f"{left} OR {right}"
            if len(stmt.time_conditions) > start:
                raise QueryError(
                    "OR between time conditions is not supported "
                    f"({DOCS}explore-data/time-and-timezone/)"
                )
        return left

    def _and(self, stmt: Statement, context: str) -> str:
        left = self._cmp(stmt, context)
        while self.is_kw("AND"):
            self.advance()
            left = f"{left} AND {self._cmp(stmt, context)}"
        return left

    def _cmp(self, stmt: Statement, context: str) -> str:
        left_start = self.tok
        left = self._add(stmt, context)
        if self.is_op("=", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~"):
            op = self.advance().text
            right_start = self.tok
            right = self._add(stmt, context)
            lhs = left_start.text if left_start.kind == "ident" else None
            if lhs is not None and _unquote_ident(lhs).lower() == "time":
                stmt.fields.discard(lhs)
                stmt.fields.discard(_unquote_ident(lhs))
                stmt.time_conditions.append(f"time {op} {right}")
            elif lhs is not None and right_start.kind in ("string", "regex"):
                # tag = 'value' / tag =~ /regex/ (a field compared with a string is rare here)
                name = _unquote_ident(lhs.split("::")[0])
                stmt.fields.discard(name)
                if not lhs.endswith("::field"):
                    stmt.tags.add(name)
                else:
                    stmt.fields.add(name)
            return f"{left} {op} {right}"
        return left

    def _add(self, stmt: Statement, context: str) -> str:
        left = self._mul(stmt, context)
        while self.is_op("+", "-"):
            op = self.advance()
            if self.tok.kind == "duration" and not self.tok.space_before:
                raise QueryError(
                    f"InfluxQL needs a space between {op.text!r} and a duration "
                    f"({DOCS}explore-data/time-and-timezone/): {self.text}"
                )
            left = f"{left} {op.text} {self._mul(stmt, context)}"
        return left

    def _mul(self, stmt: Statement, context: str) -> str:
        left = self._unary(stmt, context)
        while self.is_op("*", "/", "%"):
            op = self.advance().text
            left = f"{left} {op} {self._unary(stmt, context)}"
        return left

    def _unary(self, stmt: Statement, context: str) -> str:
        if self.is_op("-"):
            self.advance()
            return "-" + self._primary(stmt, context)
        return self._primary(stmt, context)

    def _primary(self, stmt: Statement, context: str) -> str:
        t = self.tok
        if t.kind in ("number", "duration", "string", "regex"):
            self.advance()
            return t.text
        if self.is_op("("):
            self.advance()
            inner = self.expr(stmt, context)
            self.expect_op(")")
            return f"({inner})"
        if t.kind == "ident":
            name = self.advance().text
            if self.is_op("("):
                return self._call(name, stmt, context)
            if self.is_op("::"):
                self.advance()
                cast = self.ident().lower()
                if cast not in ("field", "tag", "float", "integer"):
                    self.fail("unknown type cast")
                if cast == "tag":
                    stmt.tags.add(_unquote_ident(name))
                else:
                    stmt.fields.add(_unquote_ident(name))
                return f"{name}::{cast}"
            if name.upper() in ("TRUE", "FALSE"):
                return name.lower()
            key = _unquote_ident(name)
            if key.lower() != "time":
                stmt.fields.add(key)
            return key
        self.fail("expected a value, a name or a function")
        raise AssertionError  # unreachable

    def _call(self, name: str, stmt: Statement, context: str) -> str:
        fname = name.lower()
        self.expect_op("(")
        if fname == "now":
            self.expect_op(")")
            if context != "where":
                self.fail("now() belongs in WHERE")
            return "now()"
        if fname not in FUNCTIONS:
            raise QueryError(
                f"{name}() is not an InfluxQL function InfluxDB 2 documents ({DOCS}functions/)"
            )
        if context != "select":
            self.fail(f"{name}() belongs in SELECT")
        stmt.functions.append(fname)
        args = []
        if not self.is_op(")"):
            while True:
                if self.tok.kind == "regex":
                    args.append(self.advance().text)
                    stmt.fields.add("*")
                elif self.is_op("*"):
                    self.advance()
                    args.append("*")
                    stmt.fields.add("*")
                else:
                    args.append(self.expr(stmt, context))
                if not self.is_op(","):
                    break
                self.advance()
        self.expect_op(")")
        return fname  # InfluxQL names the output column after the function


def parse(text: str) -> Statement:
    """The statement, or QueryError naming what InfluxDB 2's /query does not document."""
    return _Parser(text).statement()


def all_statements(stmt: Statement) -> list[Statement]:
    """The statement and its subqueries, outermost first."""
    out = [stmt]
    for sub in stmt.subqueries:
        out.extend(all_statements(sub))
    return out
