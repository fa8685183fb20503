"""/ping, /api/v2/write, /api/v2/query, and the v1 /write and /query (through DBRP mappings).

Reconstructed from influxdb v2.7.12:
- /ping: http/legacy/ping_handler.go (GET and HEAD, 204, no token needed).
- /api/v2/write: http/write_handler.go (precision ns|us|ms|s, else 400 "invalid precision;
  ..."; no bucket 404 "bucket not found"; org by name or ID; bucket by ID or name; a token
  without write on the bucket 403 "insufficient permissions for write"; a gzip body whose
  header is bad is 500 "An internal error has occurred", one that breaks later 400 "unable to
  read data: ..."), http/points/points_parser.go (400 with every bad line), 422 "failure
  writing points to database: partial write: ..." (v1/coordinator/points_writer.go,
  tsdb/shard.go), 204 when all is stored.
- /api/v2/query: http/query.go (JSON or application/vnd.flux bodies, dialect checks, org),
  http/query_handler.go (errors before any output are JSON; after output they become an error
  table), flux csv/dialect.go (`text/csv; charset=utf-8`, chunked), the bucket lookup of
  query/stdlib/influxdata/influxdb (a bucket the token may not read is "could not find
  bucket", 404 "failed to initialize execute state: could not find bucket \\"x\\"").
- /query and /write (v1): http/legacy/influxqld_handler.go, write_handler.go and
  influx1x_authentication_handler.go; answers `application/json` (compact, newline);
  chunked=true sends one JSON object per statement result.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

from . import annotated_csv, flux, gojson, influxql, lineprotocol
from .auth import Authorizer, permission
from .errors import FORBIDDEN, INTERNAL, INVALID, NOT_FOUND, UNPROCESSABLE, APIError, unsupported
from .handlers_dbrps import dbrp_mappings
from .handlers_tenant import can_read_bucket, find_org
from .server import Call, Reply, Router

FLUX_CONTENT_TYPE = "application/vnd.flux"


def register(router: Router) -> None:
    router.add("GET", "/ping", ping)
    router.add("POST", "/api/v2/write", write)
    router.add("POST", "/api/v2/query", query)
    router.add("GET", "/query", v1_query)
    router.add("POST", "/query", v1_query)
    router.add("POST", "/write", v1_write)


def ping(call: Call) -> Reply:
    return Reply(204)


# ----------------------------------------------------------------------------- writes


def _check_gzip_header(call: Call) -> None:
    """points.BatchReadCloser: gzip.NewReader reads the header at once; its error is not a
    platform error, so influxd answers 500 "An internal error has occurred"."""
    if call.request.header("Content-Encoding") in ("gzip", "x-gzip"):
        body = call.request.body
        if len(body) < 10 or body[:2] != b"\x1f\x8b":
            raise APIError(INTERNAL, "An internal error has occurred")


def _read_body(call: Call) -> bytes:
    """readAll of the (gzip) body, after the bucket and permission checks as in influxd."""
    body = call.request.body
    if call.request.header("Content-Encoding") not in ("gzip", "x-gzip"):
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise APIError(INVALID, f"unable to read data: gzip: {exc}") from None


def _org_of_request(call: Call) -> dict[str, Any]:
    """queryOrganization: `org` (name or ID) or `orgID`."""
    org, org_id = call.arg("org"), call.arg("orgID")
    if org_id:
        return find_org(call, org_id=org_id, pretty=False)
    if org and len(org) == 16 and all(c in "0123456789abcdef" for c in org):
        found = call.store.get("orgs", org)
        if found:
            return found
    if not org:
        raise APIError(INVALID, "Please provide either orgID or org")
    return find_org(call, name=org, pretty=False)


def store_points(call: Call, bucket: dict[str, Any], points: list[lineprotocol.Point]) -> None:
    """WritePoints; a partial write becomes the 422 InfluxDB answers."""
    result = call.store.write(bucket, points)
    if result.conflict_reason:
        raise APIError(
            UNPROCESSABLE,
            f"failure writing points to database: partial write: {result.conflict_reason} "
            f"dropped={result.conflict_dropped}",
        )
    dropped = result.retention_dropped
    if dropped:
        bound = gojson.rfc3339nano(result.retention_bound_ns)
        oldest = min(dropped, key=lambda p: p.time_ns)
        newest = max(dropped, key=lambda p: p.time_ns)

        def text(p: lineprotocol.Point) -> str:
            return (
                f"point {p.series_key} at {gojson.rfc3339nano(p.time_ns)} dropped because it "
                f"violates a Retention Policy Lower Bound at {bound}"
            )

        summary = (
            f"dropped {len(dropped)} points outside retention policy of duration "
            f"{gojson.go_duration(int(bucket['retentionPeriod']))} - oldest {text(oldest)}, "
            f"newest {text(newest)}"
        )
        raise APIError(
            UNPROCESSABLE,
            f"failure writing points to database: partial write: {summary} dropped={len(dropped)} "
            f"for database: {bucket['id']} for retention policy: autogen",
        )


def _require_write(auth: Authorizer, bucket: dict[str, Any]) -> None:
    if not auth.allowed(permission("write", "buckets", id_=bucket["id"], org_id=bucket["orgID"])):
        raise APIError(FORBIDDEN, "insufficient permissions for write")


def write(call: Call) -> Reply:
    precision = call.arg("precision") or "ns"
    if precision not in ("ns", "us", "ms", "s"):
        raise APIError(INVALID, "invalid precision; valid precision units are ns, us, ms, and s")
    name = call.arg("bucket")
    if not name:
        raise APIError(NOT_FOUND, "bucket not found")
    _check_gzip_header(call)
    org = _org_of_request(call)
    in_org = [b for b in call.store.all("buckets") if b["orgID"] == org["id"]]
    # WriteHandler.findBucket: by ID when the name is one, else by name
    bucket = next((b for b in in_org if b["id"] == name), None)
    bucket = bucket or next((b for b in in_org if b["name"] == name), None)
    if bucket is None:
        raise APIError(NOT_FOUND, f'bucket "{name}" not found')
    _require_write(call.auth, bucket)
    body = _read_body(call)
    try:
        points = lineprotocol.parse(body, precision, call.server.now_ns())
    except lineprotocol.LineProtocolError as exc:
        raise APIError(INVALID, str(exc)) from None
    store_points(call, bucket, points)
    return Reply(204)


# ----------------------------------------------------------------------------- Flux


def _decode_query(call: Call) -> dict[str, Any]:
    content_type = (call.request.header("Content-Type") or "application/json").split(";")[0].strip()
    if content_type == FLUX_CONTENT_TYPE:
        return {"query": call.request.body.decode("utf-8", "replace")}
    try:
        body = json.loads(call.request.body or b"")
    except ValueError as exc:
        raise APIError(
            INVALID,
            "failed to decode request body: failed parsing request body as JSON; if sending a raw "
            f"Flux script, set 'Content-Type: {FLUX_CONTENT_TYPE}' in your request headers: {exc}",
        ) from None
    if not isinstance(body, dict):
        raise APIError(INVALID, "failed to decode request body: the body is not a JSON object")
    return body


def _validate_dialect(body: dict[str, Any]) -> tuple[list[str], bool]:
    def bad(message: str) -> APIError:
        return APIError(INVALID, f"failed to decode request body: {message}")

    if not body.get("query"):
        if body.get("ast"):
            raise unsupported("queries sent as an AST are not supported; send the Flux text")
        raise bad("request body requires either query or AST")
    if (body.get("type") or "flux") != "flux":
        raise bad(f"unknown query type: {body['type']}")
    dialect = body.get("dialect") or {}
    delimiter = dialect.get("delimiter") or ","
    if len(delimiter) != 1:
        raise bad("invalid dialect delimeter: must be length 1")
    if delimiter != ",":
        raise unsupported("a CSV delimiter other than ',' is not supported")
    if len(dialect.get("commentPrefix") or "") > 1:
        raise bad("invalid dialect comment prefix: must be length 0 or 1")
    annotations = list(dialect.get("annotations") or [])
    for annotation in annotations:
        if annotation not in ("group", "datatype", "default"):
            raise bad(f"unknown dialect annotation type: {annotation}")
    if (dialect.get("dateTimeFormat") or "RFC3339") not in ("RFC3339", "RFC3339Nano"):
        raise bad(f"unknown dialect date time format: {dialect['dateTimeFormat']}")
    header = dialect.get("header")
    return annotations, header is None or bool(header)


def query(call: Call) -> Reply:
    body = _decode_query(call)
    annotations, header = _validate_dialect(body)
    try:
        org = _org_of_request(call)
    except APIError as exc:
        raise APIError(INVALID, f"failed to decode request body: {exc.message}") from None
    try:
        pipeline = flux.parse(str(body["query"]))
    except flux.QueryError as exc:
        raise unsupported(
            f"{exc} (the stand-in runs a small Flux subset: {flux.SUPPORTED})"
        ) from None
    auth = call.auth
    now = call.server.now_ns()

    def find_bucket(name: str | None, bucket_id: str | None) -> dict[str, Any]:
        for b in call.store.all("buckets"):
            named = (name and b["name"] == name) or (bucket_id and b["id"] == bucket_id)
            if b["orgID"] == org["id"] and named and can_read_bucket(auth, b):
                return b
        raise APIError(
            NOT_FOUND,
            f'failed to initialize execute state: could not find bucket "{name or bucket_id}"',
        )

    def write_to(name: str, points: list[lineprotocol.Point]) -> None:
        target = next(
            (b for b in call.store.all("buckets") if b["orgID"] == org["id"] and b["name"] == name),
            None,
        )
        if target is None:
            raise APIError(
                NOT_FOUND, f'failed to initialize execute state: could not find bucket "{name}"'
            )
        _require_write(auth, target)
        store_points(call, target, points)

    source = flux.Source(
        now, find_bucket, lambda b, start, stop: call.store.rows(b["id"], start, stop), write_to
    )
    try:
        result, tables = flux.run(pipeline, source)
    except flux.QueryError as exc:
        raise unsupported(
            f"{exc} (the stand-in runs a small Flux subset: {flux.SUPPORTED})"
        ) from None
    fault = call.server.query_fault

    def chunks() -> Iterator[bytes]:
        written = False
        for count, chunk in enumerate(
            annotated_csv.encode_tables(
                tables, annotations=annotations, header=header, result=result
            )
        ):
            if fault is not None and count == fault[0] and chunk != "\r\n":
                yield annotated_csv.encode_error(fault[1], annotations, written).encode()
                return
            written = written or chunk != "\r\n"
            yield chunk.encode()

    return Reply(
        200,
        chunks(),
        {"Content-Type": "text/csv; charset=utf-8"},
        gzip_capable=True,
    )


# ----------------------------------------------------------------------------- v1


def _v1_auth(call: Call) -> Authorizer:
    return call.server.authenticate_v1(call.request, call.request.raw_query)


def v1_query(call: Call) -> Reply:
    auth = _v1_auth(call)
    call._auth = auth
    form = dict(call.request.query)
    if call.request.method == "POST":
        content_type = call.request.header("Content-Type").split(";")[0].strip()
        if content_type == "application/x-www-form-urlencoded":
            for key, values in parse_qs(call.request.body.decode(), keep_blank_values=True).items():
                form.setdefault(key, values)
        elif content_type == "application/vnd.influxql":
            form.setdefault("q", [call.request.body.decode()])
    q = form.get("q", [""])[0].strip()
    if not q:
        raise unsupported("an empty InfluxQL query (parameter q) is not answered")
    accept = call.request.header("Accept")
    if accept in ("application/csv", "text/csv", "application/x-msgpack"):
        raise unsupported(f"InfluxQL answers as {accept} are not supported; only application/json")
    try:
        statements = influxql.parse(q)
    except influxql.QueryError as exc:
        raise unsupported(f"{exc} (the stand-in answers a small InfluxQL subset)") from None
    org_id = auth.org_id
    ctx = influxql.Context(
        now_ns=call.server.now_ns(),
        db=form.get("db", [""])[0],
        rp=form.get("rp", [""])[0],
        mappings=lambda: dbrp_mappings(call, org_id),
        rows=lambda bucket_id, start, stop, measurement=None: call.store.rows(
            bucket_id, start, stop, measurement=measurement
        ),
        measurements=call.store.measurements,
        field_types=call.store.field_types,
        tag_keys=call.store.tag_keys,
    )
    try:
        results = influxql.execute(statements, ctx, form.get("epoch", [""])[0])
    except influxql.QueryError as exc:
        raise unsupported(f"{exc} (the stand-in answers a small InfluxQL subset)") from None
    headers = {"Content-Type": "application/json"}
    if form.get("chunked", [""])[0] == "true":
        return Reply(
            200,
            (gojson.marshal({"results": [r]}) + b"\n" for r in results),
            headers,
            gzip_capable=True,
        )
    return Reply(200, gojson.marshal({"results": results}) + b"\n", headers, gzip_capable=True)


def v1_write(call: Call) -> Reply:
    auth = _v1_auth(call)
    db, rp = call.arg("db"), call.arg("rp")
    if not db:
        raise APIError(INVALID, "missing db")
    _check_gzip_header(call)
    # the v1 write may read the mappings of buckets it can write (legacy/write_handler.go)
    extra = [
        {"action": "read", "resource": p["resource"]}
        for p in auth.permissions()
        if p["action"] == "write" and p["resource"]["type"] == "buckets"
    ]
    widened = Authorizer({**auth.auth, "permissions": extra + auth.permissions()})
    call._auth = widened
    mappings = [m for m in dbrp_mappings(call, auth.org_id) if m["database"] == db]
    mappings = [m for m in mappings if (m["retention_policy"] == rp if rp else m["default"])]
    if not mappings:
        raise APIError(NOT_FOUND, "no dbrp mapping found")
    bucket = call.store.get("buckets", mappings[0]["bucketID"])
    if bucket is None:
        raise APIError(NOT_FOUND, "bucket not found")
    _require_write(widened, bucket)
    body = _read_body(call)
    precision = call.arg("precision") or "ns"
    try:
        points = lineprotocol.parse(body, precision, call.server.now_ns())
    except lineprotocol.LineProtocolError as exc:
        raise APIError(INVALID, str(exc)) from None
    store_points(call, bucket, points)
    return Reply(204)
