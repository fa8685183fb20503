"""/health, /ready, setup, orgs, users, buckets, authorizations, DBRP mappings and tasks.

Reconstructed from influxdb v2.7.12 (paths below are in that repository):
- /health: http/health.go (the exact bytes, a newline at the end); /ready: http/ready.go.
- setup: tenant/http_server_onboarding.go and tenant/service_onboarding.go (GET answers
  {"allowed": bool}; POST creates the user, org, bucket and an operator token and answers 201;
  once any user or org exists, 422 "onboarding has already been completed"; missing fields
  422; a password outside 8-72 characters 400, tenant/service_user.go IsPasswordStrong).
  Creating an org also creates its system buckets `_tasks` (3 days) and `_monitoring` (7 days)
  (tenant/service_org.go).
- orgs, users, buckets: tenant/http_server_{org,user,bucket}.go, tenant/service_bucket.go
  (names starting with `_` or holding `"` are refused; `bucket with name X already exists`
  422; an unknown org or bucket name 404), storage/bucket_service.go (shard-group duration
  normalised) and v1/services/meta/client.go (a retention under 1h fails with 500
  "retention policy duration must be at least 1h0m0s").
- authorizations: authorization/http_server.go, authorization/middleware_auth.go (create
  needs write on the org's authorizations and on the user, and the creator must hold every
  permission it grants: 403 "permission <p> is not allowed: <p> is unauthorized").
- dbrps: dbrp/http_server_dbrp.go, dbrp/service.go (the first mapping of a database becomes
  its default; a second mapping with the same org, database and retention policy is 422;
  every bucket also has a *virtual* mapping, database = bucket name, rp `autogen`, listed
  unless a real mapping covers it), dbrp/middleware_auth.go (read/write of the bucket).
- tasks: http/task_service.go, kv/task.go, task/options (the `option task = {...}` record:
  name, every or cron, offset). The stand-in stores tasks but never runs them, and it does not
  compile the rest of the task's Flux (a real InfluxDB refuses a script that does not parse).
The JSON bodies are kithttp.API's tab-indented ones where those handlers use it, compact with
a newline where they use json.NewEncoder (tasks).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import urllib.parse
from typing import Any

from . import gojson
from .auth import (
    ACTIONS,
    RESOURCE_TYPES,
    Authorizer,
    operator_permissions,
    permission,
    permission_text,
)
from .errors import CONFLICT, FORBIDDEN, INTERNAL, INVALID, NOT_FOUND, UNPROCESSABLE, APIError
from .server import COMMIT, Call, Reply, Router, json_reply
from .store import (
    DAY,
    MIN_RETENTION,
    new_id,
    new_token,
    normalised_shard_group_duration,
)

SECOND = 1_000_000_000


def register(router: Router) -> None:
    router.add("GET", "/health", health)
    router.add("GET", "/ready", ready)
    router.add("GET", "/api/v2/setup", setup_allowed)
    router.add("POST", "/api/v2/setup", setup)
    router.add("GET", "/api/v2/orgs", list_orgs)
    router.add("POST", "/api/v2/orgs", create_org)
    router.add("GET", "/api/v2/orgs/{id}", get_org)
    router.add("GET", "/api/v2/users", list_users)
    router.add("GET", "/api/v2/users/{id}", get_user)
    router.add("GET", "/api/v2/me", get_me)
    router.add("GET", "/api/v2/buckets", list_buckets)
    router.add("POST", "/api/v2/buckets", create_bucket)
    router.add("GET", "/api/v2/buckets/{id}", get_bucket)
    router.add("PATCH", "/api/v2/buckets/{id}", patch_bucket)
    router.add("DELETE", "/api/v2/buckets/{id}", delete_bucket)
    router.add("GET", "/api/v2/authorizations", list_authorizations)
    router.add("POST", "/api/v2/authorizations", create_authorization)
    router.add("GET", "/api/v2/authorizations/{id}", get_authorization)
    router.add("PATCH", "/api/v2/authorizations/{id}", patch_authorization)
    router.add("DELETE", "/api/v2/authorizations/{id}", delete_authorization)
    router.add("GET", "/api/v2/dbrps", list_dbrps)
    router.add("POST", "/api/v2/dbrps", create_dbrp)
    router.add("GET", "/api/v2/dbrps/{id}", get_dbrp)
    router.add("PATCH", "/api/v2/dbrps/{id}", patch_dbrp)
    router.add("DELETE", "/api/v2/dbrps/{id}", delete_dbrp)
    router.add("GET", "/api/v2/tasks", list_tasks)
    router.add("POST", "/api/v2/tasks", create_task)
    router.add("GET", "/api/v2/tasks/{id}", get_task)
    router.add("PATCH", "/api/v2/tasks/{id}", patch_task)
    router.add("DELETE", "/api/v2/tasks/{id}", delete_task)


def _links(**links: str) -> dict[str, str]:
    return dict(sorted(links.items()))  # Go writes map keys sorted


def _time(ns: int) -> str:
    return gojson.rfc3339nano(ns)


def _valid_id(text: str, *, pretty: bool = True) -> str:
    """platform.IDFromString."""
    if len(text) != 16:
        raise APIError(INVALID, "id must have a length of 16 bytes", pretty=pretty)
    if not re.fullmatch(r"[0-9a-f]{16}", text) or text == "0" * 16:
        raise APIError(INVALID, "invalid ID", pretty=pretty)
    return text


# ----------------------------------------------------------------------------- system


def health(call: Call) -> Reply:
    body = (
        '{"name":"influxdb", "message":"ready for queries and writes", "status":"pass", '
        f'"checks":[], "version": "{call.server.version}", "commit": "{COMMIT}"}}\n'
    )
    return Reply(200, body.encode(), {"Content-Type": "application/json; charset=utf-8"})


def ready(call: Call) -> Reply:
    up_ns = call.server.now_ns() - call.server.started_ns
    status = {
        "status": "ready",
        "started": _time(call.server.started_ns),
        "up": gojson.go_duration(up_ns),
    }
    body = gojson.marshal_indent(status).replace(b"\t", b"    ") + b"\n"
    return Reply(200, body, {"Content-Type": "application/json; charset=utf-8"})


# ----------------------------------------------------------------------------- setup


def setup_allowed(call: Call) -> Reply:
    return json_reply(200, {"allowed": not call.store.onboarded()})


def setup(call: Call) -> Reply:
    body = call.body_json() or {}
    if not isinstance(body, dict):
        raise APIError(INVALID, "failed to unmarshal json: not an object", pretty=True)
    retention_s = int(body.get("retentionPeriodSeconds") or 0)
    if not retention_s and body.get("retentionPeriodHrs"):
        retention_s = int(body["retentionPeriodHrs"]) // SECOND  # a Go time.Duration in ns
    result = onboard(
        call.store,
        username=str(body.get("username", "")),
        password=str(body.get("password", "")),
        org=str(body.get("org", "")),
        bucket=str(body.get("bucket", "")),
        retention_s=retention_s,
        token=str(body.get("token", "")),
    )
    return json_reply(
        201,
        {
            "user": user_json(result["user"]),
            "bucket": bucket_json(result["bucket"]),
            "org": org_json(result["org"]),
            "auth": {
                **auth_core_json(result["auth"]),
                "links": _links(
                    self=f"/api/v2/authorizations/{result['auth']['id']}",
                    user=f"/api/v2/users/{result['auth']['userID']}",
                ),
            },
        },
    )


def _hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return f"scrypt${salt}${digest.hex()}"


def onboard(
    store: Any,
    *,
    username: str,
    password: str,
    org: str,
    bucket: str,
    retention_s: int = 0,
    token: str = "",
) -> dict[str, Any]:
    """OnboardInitialUser: the user, org (with system buckets), bucket and operator token."""
    with store.lock:
        if store.onboarded():
            raise APIError(CONFLICT, "onboarding has already been completed", pretty=True)
        missing = [
            n for n, v in (("username", username), ("org", org), ("bucket", bucket)) if not v
        ]
        if missing:
            raise APIError(
                UNPROCESSABLE,
                f"onboarding failed: missing required fields [{','.join(missing)}]",
                pretty=True,
            )
        if password and not 8 <= len(password) <= 72:
            raise APIError(
                INVALID, "passwords must be between 8 and 72 characters long", pretty=True
            )
        now = store.now_ns()
        user = {"id": new_id(), "name": username, "status": "active"}
        store.put("users", user)
        if password:
            store.put("passwords", {"id": user["id"], "hash": _hash_password(password)})
        org_doc = create_org_doc(store, org)
        bucket_doc = create_bucket_doc(store, org_doc["id"], bucket, retention_s * SECOND, 0)
        auth = {
            "id": new_id(),
            "token": token or new_token(),
            "status": "active",
            "description": f"{username}'s Token",
            "orgID": org_doc["id"],
            "userID": user["id"],
            "permissions": operator_permissions(),
            "createdAt": now,
            "updatedAt": now,
        }
        store.put("authorizations", auth)
    return {"user": user, "org": org_doc, "bucket": bucket_doc, "auth": auth}


# ----------------------------------------------------------------------------- orgs and users


def org_json(org: dict[str, Any]) -> dict[str, Any]:
    oid, name = org["id"], org["name"]
    return {
        "links": _links(
            self=f"/api/v2/orgs/{oid}",
            logs=f"/api/v2/orgs/{oid}/logs",
            members=f"/api/v2/orgs/{oid}/members",
            owners=f"/api/v2/orgs/{oid}/owners",
            secrets=f"/api/v2/orgs/{oid}/secrets",
            labels=f"/api/v2/orgs/{oid}/labels",
            buckets=f"/api/v2/buckets?org={name}",
            tasks=f"/api/v2/tasks?org={name}",
            dashboards=f"/api/v2/dashboards?org={name}",
        ),
        "id": oid,
        "name": name,
        "description": org.get("description", ""),
        "createdAt": _time(org["createdAt"]),
        "updatedAt": _time(org["updatedAt"]),
    }


def create_org_doc(store: Any, name: str) -> dict[str, Any]:
    if not name:
        raise APIError(INVALID, "org name is empty", pretty=True)
    if any(o["name"] == name for o in store.all("orgs")):
        raise APIError(CONFLICT, f"organization with name {name} already exists", pretty=True)
    now = store.now_ns()
    org = {"id": new_id(), "name": name, "description": "", "createdAt": now, "updatedAt": now}
    store.put("orgs", org)
    create_bucket_doc(store, org["id"], "_tasks", 3 * DAY, 0, system=True)
    create_bucket_doc(store, org["id"], "_monitoring", 7 * DAY, 0, system=True)
    return org


def find_org(
    call: Call, *, name: str = "", org_id: str = "", pretty: bool = True
) -> dict[str, Any]:
    if org_id:
        org = call.store.get("orgs", org_id)
        if org is None:
            raise APIError(NOT_FOUND, "organization not found", pretty=pretty)
        return org
    if not name:
        raise APIError(INVALID, "Please provide either orgID or org", pretty=pretty)
    for org in call.store.all("orgs"):
        if org["name"] == name:
            return org
    raise APIError(NOT_FOUND, f'organization name "{name}" not found', pretty=pretty)


def _can_read_org(auth: Authorizer, org_id: str) -> bool:
    return auth.allowed(permission("read", "orgs", id_=org_id))


def list_orgs(call: Call) -> Reply:
    name, org_id = call.arg("org"), call.arg("orgID")
    orgs = [find_org(call, name=name, org_id=org_id)] if name or org_id else call.store.all("orgs")
    orgs = [o for o in orgs if _can_read_org(call.auth, o["id"])]
    return json_reply(200, {"links": {"self": "/api/v2/orgs"}, "orgs": [org_json(o) for o in orgs]})


def get_org(call: Call) -> Reply:
    org = find_org(call, org_id=_valid_id(call.params["id"]))
    call.auth.require(permission("read", "orgs", id_=org["id"]), pretty=True)
    return json_reply(200, org_json(org))


def create_org(call: Call) -> Reply:
    call.auth.require(permission("write", "orgs"), pretty=True)
    body = call.body_json() or {}
    org = create_org_doc(call.store, str(body.get("name", "")))
    return json_reply(201, org_json(org))


def user_json(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "links": {"self": f"/api/v2/users/{user['id']}"},
        "id": user["id"],
        "name": user["name"],
        "status": user["status"],
    }


def list_users(call: Call) -> Reply:
    users = [
        u
        for u in call.store.all("users")
        if call.auth.allowed(permission("read", "users", id_=u["id"]))
    ]
    if call.arg("name"):
        users = [u for u in users if u["name"] == call.arg("name")]
    return json_reply(
        200, {"links": {"self": "/api/v2/users"}, "users": [user_json(u) for u in users]}
    )


def get_user(call: Call) -> Reply:
    user = call.store.get("users", _valid_id(call.params["id"]))
    if user is None:
        raise APIError(NOT_FOUND, "user not found", pretty=True)
    call.auth.require(permission("read", "users", id_=user["id"]), pretty=True)
    return json_reply(200, user_json(user))


def get_me(call: Call) -> Reply:
    user = call.store.get("users", call.auth.user_id)
    if user is None:
        raise APIError(NOT_FOUND, "user not found", pretty=True)
    return json_reply(200, user_json(user))


# ----------------------------------------------------------------------------- buckets


def bucket_json(bucket: dict[str, Any]) -> dict[str, Any]:
    bid, oid = bucket["id"], bucket["orgID"]
    rules = []
    if bucket["retentionPeriod"] or bucket["shardGroupDuration"]:
        rules.append(
            {
                "type": "expire",
                "everySeconds": bucket["retentionPeriod"] // SECOND,
                "shardGroupDurationSeconds": bucket["shardGroupDuration"] // SECOND,
            }
        )
    out: dict[str, Any] = {"id": bid, "orgID": oid, "type": bucket["type"]}
    if bucket.get("description"):
        out["description"] = bucket["description"]
    out.update(
        name=bucket["name"],
        retentionRules=rules,
        createdAt=_time(bucket["createdAt"]),
        updatedAt=_time(bucket["updatedAt"]),
        links=_links(
            self=f"/api/v2/buckets/{bid}",
            org=f"/api/v2/orgs/{oid}",
            members=f"/api/v2/buckets/{bid}/members",
            owners=f"/api/v2/buckets/{bid}/owners",
            labels=f"/api/v2/buckets/{bid}/labels",
            write=f"/api/v2/write?org={oid}&bucket={bid}",
        ),
        labels=[],
    )
    return out


def create_bucket_doc(
    store: Any,
    org_id: str,
    name: str,
    retention_ns: int,
    shard_group_ns: int,
    *,
    description: str = "",
    system: bool = False,
) -> dict[str, Any]:
    """BucketSvc.CreateBucket plus storage.BucketService (normalise, then check retention)."""
    if name.startswith("_") and not system:
        raise APIError(
            INVALID,
            f"bucket name {name} is invalid. Buckets may not start with underscore",
            pretty=True,
        )
    if '"' in name:
        raise APIError(
            INVALID,
            f"bucket name {name} is invalid. Bucket names may not include quotation marks",
            pretty=True,
        )
    if not name:
        raise APIError(INVALID, "bucket name is empty", pretty=True)
    if store.get("orgs", org_id) is None:
        raise APIError(NOT_FOUND, "organization not found", pretty=True)
    if any(b["orgID"] == org_id and b["name"] == name for b in store.all("buckets")):
        raise APIError(CONFLICT, f"bucket with name {name} already exists", pretty=True)
    if retention_ns and retention_ns < MIN_RETENTION:
        raise APIError(INTERNAL, "retention policy duration must be at least 1h0m0s", pretty=True)
    now = store.now_ns()
    bucket = {
        "id": new_id(),
        "orgID": org_id,
        "type": "system" if system else "user",
        "name": name,
        "description": description,
        "retentionPeriod": retention_ns,
        "shardGroupDuration": normalised_shard_group_duration(shard_group_ns, retention_ns),
        "createdAt": now,
        "updatedAt": now,
    }
    store.put("buckets", bucket)
    return bucket


def can_read_bucket(auth: Authorizer, bucket: dict[str, Any]) -> bool:
    """AuthorizeReadBucket: a system bucket needs read on its org."""
    if bucket["type"] == "system":
        return _can_read_org(auth, bucket["orgID"])
    return auth.allowed(permission("read", "buckets", id_=bucket["id"], org_id=bucket["orgID"]))


def require_read_bucket(auth: Authorizer, bucket: dict[str, Any], *, pretty: bool = True) -> None:
    if bucket["type"] == "system":
        auth.require(permission("read", "orgs", id_=bucket["orgID"]), pretty=pretty)
    else:
        auth.require(
            permission("read", "buckets", id_=bucket["id"], org_id=bucket["orgID"]), pretty=pretty
        )


def find_bucket_by_id(call: Call, bucket_id: str, *, pretty: bool = True) -> dict[str, Any]:
    bucket = call.store.get("buckets", _valid_id(bucket_id, pretty=pretty))
    if bucket is None:
        raise APIError(NOT_FOUND, "bucket not found", pretty=pretty)
    return bucket


def _paging_link(call: Call, limit: int, offset: int) -> str:
    """influxdb.NewPagingLinks: the filter and paging parameters, url.Values.Encode order."""
    values = {k: call.arg(k) for k in ("id", "name", "org", "orgID") if call.arg(k)}
    values.update(descending="false", limit=str(limit), offset=str(offset))
    return "/api/v2/buckets?" + urllib.parse.urlencode(sorted(values.items()))


def list_buckets(call: Call) -> Reply:
    buckets = call.store.all("buckets")
    if call.arg("id"):
        buckets = [find_bucket_by_id(call, call.arg("id"))]
    org_id = call.arg("orgID")
    if org_id:
        org_id = _valid_id(org_id)
    elif call.arg("org"):
        org_id = find_org(call, name=call.arg("org"))["id"]
    if org_id:
        buckets = [b for b in buckets if b["orgID"] == org_id]
    name = call.arg("name")
    if name:
        buckets = [b for b in buckets if b["name"] == name]
        if org_id and not buckets:
            raise APIError(NOT_FOUND, f'bucket "{name}" not found', pretty=True)
    buckets = [b for b in buckets if can_read_bucket(call.auth, b)]
    limit = int(call.arg("limit") or 20)
    offset = int(call.arg("offset") or 0)
    page = buckets[offset : offset + limit]
    links = {"self": _paging_link(call, limit, offset)}
    if len(page) >= limit:
        links["next"] = _paging_link(call, limit, offset + limit)
    if offset > 0:
        links["prev"] = _paging_link(call, limit, max(offset - limit, 0))
    return json_reply(
        200, {"links": dict(sorted(links.items())), "buckets": [bucket_json(b) for b in page]}
    )


def create_bucket(call: Call) -> Reply:
    body = call.body_json() or {}
    org_id = str(body.get("orgID") or "")
    if not org_id:
        raise APIError(INVALID, "organization id must be provided", pretty=True)
    _valid_id(org_id)
    rules = body.get("retentionRules") or []
    if len(rules) > 1:
        raise APIError(
            UNPROCESSABLE,
            "buckets cannot have more than one retention rule at this time",
            pretty=True,
        )
    every = int(rules[0].get("everySeconds") or 0) if rules else 0
    sgd = int(rules[0].get("shardGroupDurationSeconds") or 0) if rules else 0
    if every < 0:
        raise APIError(UNPROCESSABLE, "expiration seconds cannot be negative", pretty=True)
    if sgd < 0:
        raise APIError(
            UNPROCESSABLE, "shard-group duration seconds cannot be negative", pretty=True
        )
    call.auth.require(permission("write", "buckets", org_id=org_id), pretty=True)
    bucket = create_bucket_doc(
        call.store,
        org_id,
        str(body.get("name", "")),
        every * SECOND,
        sgd * SECOND,
        description=str(body.get("description") or ""),
    )
    return json_reply(201, bucket_json(bucket))


def get_bucket(call: Call) -> Reply:
    bucket = find_bucket_by_id(call, call.params["id"])
    require_read_bucket(call.auth, bucket)
    return json_reply(200, bucket_json(bucket))


def patch_bucket(call: Call) -> Reply:
    bucket = find_bucket_by_id(call, call.params["id"])
    call.auth.require(
        permission("write", "buckets", id_=bucket["id"], org_id=bucket["orgID"]), pretty=True
    )
    body = call.body_json() or {}
    if "name" in body and body["name"] != bucket["name"]:
        if bucket["type"] == "system":
            raise APIError(INVALID, "system buckets cannot be renamed", pretty=True)
        if any(
            b["orgID"] == bucket["orgID"] and b["name"] == body["name"]
            for b in call.store.all("buckets")
        ):
            raise APIError(CONFLICT, "bucket name is not unique", pretty=True)
        bucket["name"] = body["name"]
    if "description" in body:
        bucket["description"] = body["description"] or ""
    rules = body.get("retentionRules") or []
    if len(rules) > 1:
        raise APIError(
            UNPROCESSABLE,
            "buckets cannot have more than one retention rule at this time",
            pretty=True,
        )
    if rules:
        if rules[0].get("everySeconds") is not None:
            every = int(rules[0]["everySeconds"]) * SECOND
            if every and every < MIN_RETENTION:
                raise APIError(
                    INTERNAL, "retention policy duration must be at least 1h0m0s", pretty=True
                )
            bucket["retentionPeriod"] = every
        if rules[0].get("shardGroupDurationSeconds") is not None:
            bucket["shardGroupDuration"] = normalised_shard_group_duration(
                int(rules[0]["shardGroupDurationSeconds"]) * SECOND, bucket["retentionPeriod"]
            )
    bucket["updatedAt"] = call.store.now_ns()
    call.store.put("buckets", bucket)
    return json_reply(200, bucket_json(bucket))


def delete_bucket(call: Call) -> Reply:
    bucket = find_bucket_by_id(call, call.params["id"])
    call.auth.require(
        permission("write", "buckets", id_=bucket["id"], org_id=bucket["orgID"]), pretty=True
    )
    if bucket["type"] == "system":
        raise APIError(INVALID, "system buckets cannot be deleted", pretty=True)
    call.store.delete("buckets", bucket["id"])
    call.store.drop_bucket_data(bucket["id"])
    for dbrp in call.store.all("dbrps"):  # dbrp.BucketService deletes the bucket's mappings
        if dbrp["bucketID"] == bucket["id"]:
            call.store.delete("dbrps", dbrp["id"])
    return Reply(204)


# ----------------------------------------------------------------------------- authorizations


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


def auth_core_json(auth: dict[str, Any]) -> dict[str, Any]:
    """influxdb.Authorization as JSON (the onboarding answer's `auth`)."""
    return {
        "id": auth["id"],
        "token": auth["token"],
        "status": auth["status"],
        "description": auth["description"],
        "orgID": auth["orgID"],
        "userID": auth["userID"],
        "permissions": auth["permissions"],
        "createdAt": _time(auth["createdAt"]),
        "updatedAt": _time(auth["updatedAt"]),
    }


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
        "links": _links(
            self=f"/api/v2/authorizations/{auth['id']}", user=f"/api/v2/users/{auth['userID']}"
        ),
        "createdAt": _time(auth["createdAt"]),
        "updatedAt": _time(auth["updatedAt"]),
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
    doc = call.store.get("authorizations", _valid_id(call.params["id"]))
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


# ----------------------------------------------------------------------------- DBRP mappings

_DBRP_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def _dbrp_org(call: Call) -> str:
    """mustGetOrgIDFromHTTPRequest."""
    if call.arg("orgID"):
        org_id = call.arg("orgID")
        if not re.fullmatch(r"[0-9a-f]{16}", org_id):
            raise APIError(INVALID, f'invalid org ID "{org_id}": invalid ID', pretty=True)
        return org_id
    name = call.arg("org")
    if not name:
        raise APIError(INVALID, "either 'org' or 'orgID' must be provided", pretty=True)
    for org in call.store.all("orgs"):
        if org["name"] == name:
            return str(org["id"])
    raise APIError(NOT_FOUND, f'invalid org "{name}": organization not found', pretty=True)


def dbrp_mappings(call: Call, org_id: str) -> list[dict[str, Any]]:
    """Service.FindMany for an org: stored mappings (default flag from the index) and the
    buckets' virtual mappings, then only those whose bucket the token may read."""
    defaults = {d["id"]: d["dbrp"] for d in call.store.all("dbrp_defaults")}
    found = []
    for m in call.store.all("dbrps"):
        if m["orgID"] != org_id:
            continue
        found.append(
            {**m, "default": defaults.get(f"{org_id}/{m['database']}") == m["id"], "virtual": False}
        )
    for bucket in call.store.all("buckets"):
        if bucket["orgID"] != org_id:
            continue
        db, _, rp = bucket["name"].partition("/")
        virtual = {
            "id": bucket["id"],
            "database": db,
            "retention_policy": rp or "autogen",
            "default": not rp,
            "orgID": org_id,
            "bucketID": bucket["id"],
            "virtual": True,
        }
        same_db = [m for m in found if m["database"] == db]
        if any(
            not m["virtual"] and m["retention_policy"] == virtual["retention_policy"]
            for m in same_db
        ):
            continue
        if any(m["default"] for m in same_db):
            virtual["default"] = False
        found.append(virtual)
    readable = []
    for m in found:
        stored = call.store.get("buckets", m["bucketID"])
        if stored and call.auth.allowed(
            permission("read", "buckets", id_=m["bucketID"], org_id=org_id)
        ):
            readable.append(m)
    return readable


def dbrp_json(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": m["id"],
        "database": m["database"],
        "retention_policy": m["retention_policy"],
        "default": m["default"],
        "virtual": m["virtual"],
        "orgID": m["orgID"],
        "bucketID": m["bucketID"],
    }


def list_dbrps(call: Call) -> Reply:
    org_id = _dbrp_org(call)
    found = dbrp_mappings(call, org_id)
    for key, column in (
        ("id", "id"),
        ("bucketID", "bucketID"),
        ("db", "database"),
        ("rp", "retention_policy"),
    ):
        if call.arg(key):
            found = [m for m in found if m[column] == call.arg(key)]
    if call.arg("default"):
        if call.arg("default") not in (
            "true",
            "false",
            "1",
            "0",
            "t",
            "f",
            "TRUE",
            "FALSE",
            "True",
            "False",
        ):
            raise APIError(INVALID, "invalid default parameter", pretty=True)
        want = call.arg("default").lower() in ("true", "1", "t")
        found = [m for m in found if m["default"] == want]
    return json_reply(200, {"content": [dbrp_json(m) for m in found]})


def create_dbrp(call: Call) -> Reply:
    body = call.body_json() or {}
    org_id = str(body.get("orgID") or "")
    if not org_id:
        name = str(body.get("org") or "")
        if not name:
            raise APIError(INVALID, "either 'org' or 'orgID' must be provided", pretty=True)
        org_id = next((o["id"] for o in call.store.all("orgs") if o["name"] == name), "")
        if not org_id:
            raise APIError(NOT_FOUND, f'invalid org "{name}": organization not found', pretty=True)
    elif not re.fullmatch(r"[0-9a-f]{16}", org_id):
        raise APIError(INVALID, f'invalid org ID "{org_id}": invalid ID', pretty=True)
    bucket_id = str(body.get("bucketID") or "")
    if not re.fullmatch(r"[0-9a-f]{16}", bucket_id):
        raise APIError(INVALID, f'invalid bucket ID "{bucket_id}": invalid ID', pretty=True)
    db, rp = str(body.get("database") or ""), str(body.get("retention_policy") or "")
    if not _DBRP_NAME.fullmatch(db):
        raise APIError(
            INVALID,
            "DBRP provided is invalid: database must contain at least one character and only be "
            "letters, numbers, '_', '-', and '.'",
            pretty=True,
        )
    if not _DBRP_NAME.fullmatch(rp):
        raise APIError(
            INVALID,
            "DBRP provided is invalid: retentionPolicy must contain at least one character and "
            "only be letters, numbers, '_', '-', and '.'",
            pretty=True,
        )
    call.auth.require(permission("write", "buckets", id_=bucket_id, org_id=org_id), pretty=True)
    bucket = call.store.get("buckets", bucket_id)
    if bucket is None:
        raise APIError(NOT_FOUND, "bucket not found", pretty=True)
    if any(
        m["orgID"] == org_id and m["database"] == db and m["retention_policy"] == rp
        for m in call.store.all("dbrps")
    ):
        raise APIError(
            CONFLICT, "another DBRP mapping with same orgID, db, and rp exists", pretty=True
        )
    doc = {
        "id": new_id(),
        "database": db,
        "retention_policy": rp,
        "orgID": org_id,
        "bucketID": bucket_id,
    }
    call.store.put("dbrps", doc)
    key = f"{org_id}/{db}"
    if call.store.get("dbrp_defaults", key) is None or body.get("default"):
        call.store.put("dbrp_defaults", {"id": key, "dbrp": doc["id"]})
    default = call.store.get("dbrp_defaults", key)
    result = {**doc, "default": bool(default and default["dbrp"] == doc["id"]), "virtual": False}
    return json_reply(201, dbrp_json(result))


def _find_dbrp(call: Call) -> tuple[str, dict[str, Any]]:
    dbrp_id = _valid_id(call.params["id"])
    org_id = _dbrp_org(call)
    doc = call.store.get("dbrps", dbrp_id)
    if doc is None or doc["orgID"] != org_id:
        bucket = call.store.get("buckets", dbrp_id)
        if bucket is None or bucket["orgID"] != org_id:
            raise APIError(NOT_FOUND, "unable to find DBRP", pretty=True)
        virtual = next((m for m in dbrp_mappings(call, org_id) if m["id"] == dbrp_id), None)
        if virtual is None:
            call.auth.require(
                permission("read", "buckets", id_=dbrp_id, org_id=org_id), pretty=True
            )
            raise APIError(NOT_FOUND, "unable to find DBRP", pretty=True)
        return org_id, virtual
    call.auth.require(
        permission("read", "buckets", id_=doc["bucketID"], org_id=org_id), pretty=True
    )
    default = call.store.get("dbrp_defaults", f"{org_id}/{doc['database']}")
    return org_id, {
        **doc,
        "default": bool(default and default["dbrp"] == doc["id"]),
        "virtual": False,
    }


def get_dbrp(call: Call) -> Reply:
    _, doc = _find_dbrp(call)
    return json_reply(200, {"content": dbrp_json(doc)})


def patch_dbrp(call: Call) -> Reply:
    org_id, doc = _find_dbrp(call)
    if doc["virtual"]:
        raise APIError(NOT_FOUND, "unable to find DBRP", pretty=True)
    call.auth.require(
        permission("write", "buckets", id_=doc["bucketID"], org_id=org_id), pretty=True
    )
    body = call.body_json() or {}
    key = f"{org_id}/{doc['database']}"
    if (
        body.get("retention_policy") is not None
        and body["retention_policy"] != doc["retention_policy"]
    ):
        rp = str(body["retention_policy"])
        if any(
            m["orgID"] == org_id
            and m["database"] == doc["database"]
            and m["retention_policy"] == rp
            for m in call.store.all("dbrps")
        ):
            raise APIError(
                CONFLICT, "another DBRP mapping with same orgID, db, and rp exists", pretty=True
            )
        doc["retention_policy"] = rp
    stored = {k: doc[k] for k in ("id", "database", "retention_policy", "orgID", "bucketID")}
    call.store.put("dbrps", stored)
    if body.get("default") is True:
        call.store.put("dbrp_defaults", {"id": key, "dbrp": doc["id"]})
    elif body.get("default") is False and doc["default"]:
        others = [
            m
            for m in call.store.all("dbrps")
            if m["orgID"] == org_id and m["database"] == doc["database"] and m["id"] != doc["id"]
        ]
        if others:
            call.store.put("dbrp_defaults", {"id": key, "dbrp": others[0]["id"]})
    default = call.store.get("dbrp_defaults", key)
    doc["default"] = bool(default and default["dbrp"] == doc["id"])
    return json_reply(200, {"content": dbrp_json(doc)})


def delete_dbrp(call: Call) -> Reply:
    try:
        org_id, doc = _find_dbrp(call)
    except APIError as exc:
        if exc.code == NOT_FOUND:
            return Reply(204)  # deleting a mapping that does not exist is not an error
        raise
    if doc["virtual"]:
        return Reply(204)
    call.auth.require(
        permission("write", "buckets", id_=doc["bucketID"], org_id=org_id), pretty=True
    )
    call.store.delete("dbrps", doc["id"])
    key = f"{org_id}/{doc['database']}"
    if doc["default"]:
        others = [
            m
            for m in call.store.all("dbrps")
            if m["orgID"] == org_id and m["database"] == doc["database"]
        ]
        if others:
            call.store.put("dbrp_defaults", {"id": key, "dbrp": others[0]["id"]})
        else:
            call.store.delete("dbrp_defaults", key)
    return Reply(204)


# ----------------------------------------------------------------------------- tasks

_TASK_OPTION = re.compile(r"option\s+task\s*=\s*\{(?P<body>[^}]*)\}", re.S)
_TASK_FIELD = re.compile(r'(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|[0-9a-z]+)')


def task_options(flux: str) -> dict[str, str]:
    """The `option task = {...}` record (task/options); the errors InfluxDB gives."""
    match = _TASK_OPTION.search(flux)
    if not match:
        raise APIError(INVALID, "invalid options: no task options defined")
    fields = {k: v.strip('"') for k, v in _TASK_FIELD.findall(match.group("body"))}
    if "name" not in fields:
        raise APIError(INVALID, "invalid options: missing required option: 'name'")
    if "every" in fields and "cron" in fields:
        raise APIError(INVALID, "invalid options: cannot use both cron and every in task options")
    if "every" not in fields and "cron" not in fields:
        raise APIError(INVALID, "invalid options: must specify exactly one of either cron or every")
    return fields


def task_json(task: dict[str, Any]) -> dict[str, Any]:
    tid = task["id"]
    out: dict[str, Any] = {
        "links": _links(
            self=f"/api/v2/tasks/{tid}",
            members=f"/api/v2/tasks/{tid}/members",
            owners=f"/api/v2/tasks/{tid}/owners",
            labels=f"/api/v2/tasks/{tid}/labels",
            runs=f"/api/v2/tasks/{tid}/runs",
            logs=f"/api/v2/tasks/{tid}/logs",
        ),
        "labels": [],
        "id": tid,
        "orgID": task["orgID"],
        "org": task["org"],
        "ownerID": task["ownerID"],
        "name": task["name"],
    }
    if task.get("description"):
        out["description"] = task["description"]
    out.update(status=task["status"], flux=task["flux"])
    for key in ("every", "cron", "offset"):
        if task.get(key):
            out[key] = task[key]
    out["latestCompleted"] = gojson.rfc3339(task["createdAt"])
    out["createdAt"] = gojson.rfc3339(task["createdAt"])
    out["updatedAt"] = gojson.rfc3339(task["updatedAt"])
    return out


def _task_reply(status: int, task: dict[str, Any]) -> Reply:
    return json_reply(status, task_json(task), pretty=False, newline=True)


def list_tasks(call: Call) -> Reply:
    tasks = call.store.all("tasks")
    if call.arg("orgID"):
        tasks = [t for t in tasks if t["orgID"] == call.arg("orgID")]
    if call.arg("org"):
        tasks = [t for t in tasks if t["org"] == call.arg("org")]
    if call.arg("name"):
        tasks = [t for t in tasks if t["name"] == call.arg("name")]
    if call.arg("status"):
        tasks = [t for t in tasks if t["status"] == call.arg("status")]
    tasks = [
        t
        for t in tasks
        if call.auth.allowed(permission("read", "tasks", id_=t["id"], org_id=t["orgID"]))
    ]
    payload = {"links": {"self": "/api/v2/tasks"}, "tasks": [task_json(t) for t in tasks]}
    return json_reply(200, payload, pretty=False, newline=True)


def create_task(call: Call) -> Reply:
    body = call.body_json(pretty=False, what="failed to decode request")
    if not isinstance(body, dict) or not body.get("flux"):
        raise APIError(INVALID, "failed to decode request: flux is required")
    org_id = str(body.get("orgID") or "")
    if not org_id and body.get("org"):
        org_id = find_org(call, name=str(body["org"]), pretty=False)["id"]
    org = call.store.get("orgs", org_id) if org_id else None
    if org is None:
        raise APIError(INVALID, "invalid organization id")
    call.auth.require(permission("write", "tasks", org_id=org_id))
    options = task_options(str(body["flux"]))
    status = body.get("status") or "active"
    if status not in ("active", "inactive"):
        raise APIError(INVALID, f"invalid task status: {status!r}")
    now = call.store.now_ns() // SECOND * SECOND
    task = {
        "id": new_id(),
        "orgID": org_id,
        "org": org["name"],
        "ownerID": call.auth.user_id,
        "name": options["name"],
        "description": str(body.get("description") or ""),
        "status": status,
        "flux": str(body["flux"]),
        "every": options.get("every", ""),
        "cron": options.get("cron", ""),
        "offset": options.get("offset", ""),
        "createdAt": now,
        "updatedAt": now,
    }
    call.store.put("tasks", task)
    return _task_reply(201, task)


def _find_task(call: Call) -> dict[str, Any]:
    task = call.store.get("tasks", _valid_id(call.params["id"], pretty=False))
    if task is None:
        raise APIError(NOT_FOUND, "failed to find task: task not found")
    return task


def get_task(call: Call) -> Reply:
    task = _find_task(call)
    call.auth.require(permission("read", "tasks", id_=task["id"], org_id=task["orgID"]))
    return _task_reply(200, task)


def patch_task(call: Call) -> Reply:
    task = _find_task(call)
    call.auth.require(permission("write", "tasks", id_=task["id"], org_id=task["orgID"]))
    body = call.body_json(pretty=False, what="failed to decode request")
    if body.get("flux"):
        options = task_options(str(body["flux"]))
        task.update(
            flux=body["flux"],
            name=options["name"],
            every=options.get("every", ""),
            cron=options.get("cron", ""),
            offset=options.get("offset", ""),
        )
    if body.get("status"):
        if body["status"] not in ("active", "inactive"):
            raise APIError(INVALID, f"invalid task status: {body['status']!r}")
        task["status"] = body["status"]
    if "description" in body:
        task["description"] = str(body["description"] or "")
    task["updatedAt"] = call.store.now_ns() // SECOND * SECOND
    call.store.put("tasks", task)
    return _task_reply(200, task)


def delete_task(call: Call) -> Reply:
    task = _find_task(call)
    call.auth.require(permission("write", "tasks", id_=task["id"], org_id=task["orgID"]))
    call.store.delete("tasks", task["id"])
    return Reply(204)
