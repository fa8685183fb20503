"""Tokens and permissions as InfluxDB 2 checks them.

Reconstructed from influxdb v2.7.12:
- authz.go: the resource types, Permission.matchesV1 (action equal; `instance` matches all;
  a permission with neither orgID nor id covers the type everywhere; with an orgID, every
  resource of that org; with an id, that resource), OperPermissions (read and write on every
  type but instance, no org: the operator token that setup creates), OwnerPermissions (an
  org's all-access token: every type scoped to the org, `orgs` by id).
- authorizer/authorize.go: a refused check is 401 `"<action>:<resource> is unauthorized"`
  with the resource written `orgs/<orgID>/<type>/<id>`; list endpoints leave out what the
  token may not read instead of failing.
- http/tokens.go and http/authentication_middleware.go: `Authorization: Token <t>` or
  `Bearer <t>`; no header, another scheme or an unknown token is 401 "unauthorized access";
  an inactive token authenticates but holds no permissions (Authorization.PermissionSet).
- http/legacy/influx1x_authentication_handler.go: the v1 API also takes `?u=&p=<token>` and
  Basic auth with the token as password (v1 usernames and passwords themselves are not
  supported by the stand-in).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from .errors import UNAUTHORIZED, APIError, unauthorized_access

RESOURCE_TYPES = (
    "authorizations",
    "buckets",
    "dashboards",
    "orgs",
    "sources",
    "tasks",
    "telegrafs",
    "users",
    "variables",
    "scrapers",
    "secrets",
    "labels",
    "views",
    "documents",
    "notificationRules",
    "notificationEndpoints",
    "checks",
    "dbrp",
    "notebooks",
    "annotations",
    "remotes",
    "replications",
    "instance",
)
ACTIONS = ("read", "write")

Permission = dict[str, Any]  # {"action": ..., "resource": {"type", "id"?, "orgID"?}}


def permission(
    action: str, type_: str, *, id_: str | None = None, org_id: str | None = None
) -> Permission:
    resource: dict[str, Any] = {"type": type_}
    if id_ is not None:
        resource["id"] = id_
    if org_id is not None:
        resource["orgID"] = org_id
    return {"action": action, "resource": resource}


def operator_permissions() -> list[Permission]:
    return [permission(a, t) for t in RESOURCE_TYPES if t != "instance" for a in ACTIONS]


def all_access_permissions(org_id: str) -> list[Permission]:
    """OwnerPermissions(org): what `influx auth create --all-access` asks for."""
    out = []
    for t in RESOURCE_TYPES:
        if t == "instance":
            continue
        for a in ACTIONS:
            out.append(
                permission(a, t, id_=org_id) if t == "orgs" else permission(a, t, org_id=org_id)
            )
    return out


def permission_text(p: Permission) -> str:
    """Permission.String(): `read:orgs/<org>/buckets/<id>`."""
    r = p["resource"]
    if r.get("orgID") and r.get("id"):
        where = f"orgs/{r['orgID']}/{r['type']}/{r['id']}"
    elif r.get("orgID"):
        where = f"orgs/{r['orgID']}/{r['type']}"
    elif r.get("id"):
        where = f"{r['type']}/{r['id']}"
    else:
        where = r["type"]
    return f"{p['action']}:{where}"


def matches(held: Permission, wanted: Permission) -> bool:
    """Permission.matchesV1: does `held` grant `wanted`?"""
    if held["action"] != wanted["action"]:
        return False
    h, w = held["resource"], wanted["resource"]
    if h["type"] == "instance":
        return True
    if h["type"] != w["type"]:
        return False
    if not h.get("orgID") and not h.get("id"):
        return True
    if h.get("orgID") and not h.get("id") and w.get("orgID") and h["orgID"] == w["orgID"]:
        return True
    return bool(h.get("id") and w.get("id") and h["id"] == w["id"])


class Authorizer:
    """The authorization a request carries (an active or inactive token)."""

    def __init__(self, auth: Mapping[str, Any]) -> None:
        self.auth = auth

    @property
    def active(self) -> bool:
        return bool(self.auth.get("status", "active") == "active")

    @property
    def user_id(self) -> str:
        return str(self.auth.get("userID", ""))

    @property
    def org_id(self) -> str:
        return str(self.auth.get("orgID", ""))

    def permissions(self) -> list[Permission]:
        return list(self.auth.get("permissions", [])) if self.active else []

    def allowed(self, wanted: Permission) -> bool:
        return any(matches(p, wanted) for p in self.permissions())

    def require(self, wanted: Permission, *, pretty: bool = False) -> None:
        """authorizer.IsAllowed: 401 "<permission> is unauthorized" when refused."""
        if not self.allowed(wanted):
            raise APIError(
                UNAUTHORIZED, f"{permission_text(wanted)} is unauthorized", pretty=pretty
            )

    def require_all(self, wanted: list[Permission], *, pretty: bool = False) -> None:
        for p in wanted:
            self.require(p, pretty=pretty)

    def is_operator(self) -> bool:
        return all(self.allowed(p) for p in operator_permissions())


def token_from_header(header: str | None) -> str:
    """http.GetToken: `Token <t>` or `Bearer <t>` (scheme case-insensitive)."""
    if not header:
        raise unauthorized_access()
    for scheme in ("token ", "bearer "):
        if header[: len(scheme)].lower() == scheme:
            return header[len(scheme) :]
    raise unauthorized_access()


def v1_token(query: str, header: str | None) -> str:
    """The token of a v1 request: `u`/`p` query parameters, `Token [user:]token`, or Basic."""
    params = parse_qs(query)
    user, password = params.get("u", [""])[0], params.get("p", [""])[0]
    if user and password:
        return password
    if header:
        parts = header.split(" ")
        if len(parts) == 2 and parts[0] == "Token":
            return parts[1].split(":", 1)[-1]
        if len(parts) == 2 and parts[0].lower() == "basic":
            try:
                decoded = base64.b64decode(parts[1]).decode()
            except (ValueError, UnicodeDecodeError):
                raise unauthorized_access() from None
            if ":" in decoded:
                return decoded.split(":", 1)[1]
    raise unauthorized_access()
