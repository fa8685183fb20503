"""InfluxDB 2's error answers: `{"code": ..., "message": ...}` with the status its code maps to.

Source (influxdb v2.7.12): kit/platform/errors/errors.go (the codes; a message is "Msg: Err"
when both are set), kit/transport/http/error_handler.go (code -> status, the
`X-Platform-Error-Code` header, compact JSON, "An internal error has occurred" for errors that
are not platform errors) and kit/transport/http/api.go (handlers built on kithttp.API, e.g.
setup, orgs, buckets, authorizations and DBRPs, write the same body tab-indented).
"""

from __future__ import annotations

from . import gojson

INTERNAL = "internal error"
NOT_IMPLEMENTED = "not implemented"
NOT_FOUND = "not found"
CONFLICT = "conflict"
INVALID = "invalid"
UNPROCESSABLE = "unprocessable entity"
EMPTY_VALUE = "empty value"
UNAVAILABLE = "unavailable"
FORBIDDEN = "forbidden"
TOO_MANY_REQUESTS = "too many requests"
UNAUTHORIZED = "unauthorized"
METHOD_NOT_ALLOWED = "method not allowed"
TOO_LARGE = "request too large"

STATUS = {
    INTERNAL: 500,
    NOT_IMPLEMENTED: 501,
    INVALID: 400,
    UNPROCESSABLE: 422,
    EMPTY_VALUE: 400,
    CONFLICT: 422,
    NOT_FOUND: 404,
    UNAVAILABLE: 503,
    FORBIDDEN: 403,
    TOO_MANY_REQUESTS: 429,
    UNAUTHORIZED: 401,
    METHOD_NOT_ALLOWED: 405,
    TOO_LARGE: 413,
}

# What an answer that InfluxDB would give but this stand-in cannot says first.
STANDIN = "influxdb stand-in"


class APIError(Exception):
    """An error answer. `pretty` selects kithttp.API's tab-indented body."""

    def __init__(self, code: str, message: str, *, pretty: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.pretty = pretty

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 500)

    def body(self) -> bytes:
        payload = {"code": self.code, "message": self.message}
        return gojson.marshal_indent(payload) if self.pretty else gojson.marshal(payload)

    def as_pretty(self) -> APIError:
        return APIError(self.code, self.message, pretty=True)


def unsupported(what: str) -> APIError:
    """A 400 for something InfluxDB does but this stand-in does not: never a silent pretend."""
    return APIError(INVALID, f"{STANDIN}: {what}")


def unauthorized_access() -> APIError:
    """http/errors.go UnauthorizedError: no token, a bad scheme or an unknown token."""
    return APIError(UNAUTHORIZED, "unauthorized access")
