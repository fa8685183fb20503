"""/api/v2/authorizations: tokens and their permissions.

Reconstructed from influxdb v2.7.12 authorization/http_server.go (the authResponse shape,
resource names filled in), authorization/middleware_auth.go (create needs write on the org's
authorizations and on the user, and the creator must hold every permission it grants: 403
"permission <p> is not allowed: <p> is unauthorized"; lists show only what the token may
read) and authorization/service.go (64-byte URL-safe base64 tokens). Bodies tab-indented
(kithttp.API).
"""

from __future__ import annotations

import re
from typing import Any

from . import gojson
from .auth import ACTIONS, RESOURCE_TYPES, Authorizer, permission, permission_text
from .errors import FORBIDDEN, INTERNAL, INVALID, NOT_FOUND, APIError
from .handlers_tenant import find_org
from .server import Call, Reply, Router, json_reply, links, valid_id
from .store import new_id, new_token


def register(router: Router) -> None:
    router.add("GET", "/api/v2/authorizations", list_authorizations)
    router.add("POST", "/api/v2/authorizations", create_authorization)
    router.add("GET", "/api/v2/authorizations/{id}", get_authorization)
    router.add("PATCH", "/api/v2/authorizations/{id}", patch_authorization)
    router.add("DELETE", "/api/v2/authorizations/{id}", delete_authorization)


def _names(call: Call, resource: dict[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    if resource.get("id"):
        kind = {"buckets": "buckets", "orgs": "orgs", "users": "users"}.get(resource["type"])
        found = call.store.get(kind, resource["id"]) if kind else None
        if found:
            out["name"] = found["name"]
        elif kind:
            return out
    if resource.get("orgID"):
        org = call.store.get("orgs", resource["orgID"])
        if org:
            out["org"] = org["name"]
    return out


def auth_json(call: Call, auth: dict[str, Any]) -> dict[str, Any]:
    """authorization/http_server.go authResponse."""
    org = call.store.get("orgs", auth["orgID"]) or {"name": ""}
    user = call.store.get("users", auth["userID"]) or {"name": ""}
    return {
        "id": auth["id"],
        "token": auth["token"],
        "status": auth["status"],
        "description": auth["description"],
        "orgID": auth["orgID"],
        "org": org["name"],
        "userID": auth["userID"],
        "user": user["name"],
        "permissions": [
            {"action": p["action"], "resource": _names(call, p["resource"])}
            for p in auth["permissions"]
        ],
        "links": links(
            self=f"/api/v2/authorizations/{auth['id']}", user=f"/api/v2/users/{auth['userID']}"
        ),
        "createdAt": gojson.rfc3339nano(auth["createdAt"]),
        "updatedAt": gojson.rfc3339nano(auth["updatedAt"]),
    }


def _can_read_auth(auth: Authorizer, doc: dict[str, Any]) -> bool:
    return auth.allowed(
        permission("read", "authorizations", id_=doc["id"], org_id=doc["orgID"])
    ) and auth.allowed(permission("read", "users", id_=doc["userID"]))


def list_authorizations(call: Call) -> Reply:
    docs = call.store.all("authorizations")
    if call.arg("userID"):
        docs = [a for a in docs if a["userID"] == call.arg("userID")]
    if call.arg("user"):
        users = {u["id"] for u in call.store.all("users") if u["name"] == call.arg("user")}
        docs = [a for a in docs if a["userID"] in users]
    if call.arg("orgID"):
        docs = [a for a in docs if a["orgID"] == call.arg("orgID")]
    if call.arg("org"):
        org = find_org(call, name=call.arg("org"))
        docs = [a for a in docs if a["orgID"] == org["id"]]
    if call.arg("token"):
        docs = [a for a in docs if a["token"] == call.arg("token")]
    docs = [a for a in docs if _can_read_auth(call.auth, a)]
    return json_reply(
        200,
        {
            "links": {"self": "/api/v2/authorizations"},
            "authorizations": [auth_json(call, a) for a in docs],
        },
    )


def _resource_ok(p: Any) -> bool:
    if not isinstance(p, dict) or not isinstance(p.get("resource"), dict):
        return False
    r = p["resource"]
    ids_ok = all(
        r.get(k) is None or re.fullmatch(r"[0-9a-f]{16}", str(r[k])) for k in ("id", "orgID")
    )
    return p.get("action") in ACTIONS and r.get("type") in RESOURCE_TYPES and bool(ids_ok)


def create_authorization(call: Call) -> Reply:
    body = call.body_json() or {}
    permissions = body.get("permissions") or []
    if not permissions:
        raise APIError(INVALID, "authorization must include permissions", pretty=True)
    for p in permissions:
        if not _resource_ok(p):
            raise APIError(INVALID, f"invalid permission {gojson.marshal(p).decode()}", pretty=True)
    org_id = str(body.get("orgID") or "")
    if not re.fullmatch(r"[0-9a-f]{16}", org_id):
        raise APIError(INVALID, "org id required: invalid ID", pretty=True)
    status = body.get("status") or "active"
    if status not in ("active", "inactive"):
        raise APIError(INVALID, "status must be active or inactive", pretty=True)
    creator = call.store.get("users", call.auth.user_id)
    if creator is None:
        raise APIError(INVALID, "unable to create token", pretty=True)
    user_id = str(body.get("userID") or creator["id"])
    auth = call.auth
    auth.require(permission("write", "authorizations", org_id=org_id), pretty=True)
    auth.require(permission("write", "users", id_=user_id), pretty=True)
    clean = []
    for p in permissions:
        wanted = {
            "action": p["action"],
            "resource": {
                k: v for k, v in p["resource"].items() if k in ("type", "id", "orgID") and v
            },
        }
        if not auth.allowed(wanted):
            text = permission_text(wanted)
            raise APIError(
                FORBIDDEN, f"permission {text} is not allowed: {text} is unauthorized", pretty=True
            )
        if wanted["resource"]["type"] == "instance":
            raise APIError(
                INTERNAL,
                "authorizations cannot be created with the instance type, "
                "it is only used during setup",
                pretty=True,
            )
        clean.append(wanted)
    if call.store.get("users", user_id) is None or call.store.get("orgs", org_id) is None:
        raise APIError(INVALID, "unable to create token", pretty=True)
    now = call.store.now_ns()
    doc = {
        "id": new_id(),
        "token": new_token(),
        "status": status,
        "description": str(body.get("description") or ""),
        "orgID": org_id,
        "userID": user_id,
        "permissions": clean,
        "createdAt": now,
        "updatedAt": now,
    }
    call.store.put("authorizations", doc)
    return json_reply(201, auth_json(call, doc))


def _find_auth(call: Call) -> dict[str, Any]:
    doc = call.store.get("authorizations", valid_id(call.params["id"]))
    if doc is None:
        raise APIError(NOT_FOUND, "authorization not found", pretty=True)
    return doc


def get_authorization(call: Call) -> Reply:
    doc = _find_auth(call)
    call.auth.require(
        permission("read", "authorizations", id_=doc["id"], org_id=doc["orgID"]), pretty=True
    )
    call.auth.require(permission("read", "users", id_=doc["userID"]), pretty=True)
    return json_reply(200, auth_json(call, doc))


def patch_authorization(call: Call) -> Reply:
    doc = _find_auth(call)
    call.auth.require(
        permission("write", "authorizations", id_=doc["id"], org_id=doc["orgID"]), pretty=True
    )
    call.auth.require(permission("write", "users", id_=doc["userID"]), pretty=True)
    body = call.body_json() or {}
    if "status" in body:
        if body["status"] not in ("active", "inactive"):
            raise APIError(INVALID, "status must be active or inactive", pretty=True)
        doc["status"] = body["status"]
    if "description" in body:
        doc["description"] = str(body["description"] or "")
    doc["updatedAt"] = call.store.now_ns()
    call.store.put("authorizations", doc)
    return json_reply(200, auth_json(call, doc))


def delete_authorization(call: Call) -> Reply:
    doc = _find_auth(call)
    call.auth.require(
        permission("write", "authorizations", id_=doc["id"], org_id=doc["orgID"]), pretty=True
    )
    call.auth.require(permission("write", "users", id_=doc["userID"]), pretty=True)
    call.store.delete("authorizations", doc["id"])
    return Reply(204)
