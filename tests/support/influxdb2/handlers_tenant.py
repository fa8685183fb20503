"""/health, /ready, setup, orgs, users and buckets (InfluxDB's "tenant" service).

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
The JSON bodies are kithttp.API's: tab-indented (kit/transport/http/api.go).
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.parse
from typing import Any

from . import gojson
from .auth import Authorizer, operator_permissions, permission
from .errors import CONFLICT, INTERNAL, INVALID, NOT_FOUND, UNPROCESSABLE, APIError
from .server import COMMIT, Call, Reply, Router, json_reply, links, valid_id
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
        "started": gojson.rfc3339nano(call.server.started_ns),
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
                "links": links(
                    self=f"/api/v2/authorizations/{result['auth']['id']}",
                    user=f"/api/v2/users/{result['auth']['userID']}",
                ),
            },
        },
    )


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
        "createdAt": gojson.rfc3339nano(auth["createdAt"]),
        "updatedAt": gojson.rfc3339nano(auth["updatedAt"]),
    }


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
        "links": links(
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
        "createdAt": gojson.rfc3339nano(org["createdAt"]),
        "updatedAt": gojson.rfc3339nano(org["updatedAt"]),
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
    org = find_org(call, org_id=valid_id(call.params["id"]))
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
    user = call.store.get("users", valid_id(call.params["id"]))
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
        createdAt=gojson.rfc3339nano(bucket["createdAt"]),
        updatedAt=gojson.rfc3339nano(bucket["updatedAt"]),
        links=links(
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
    bucket = call.store.get("buckets", valid_id(bucket_id, pretty=pretty))
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
        org_id = valid_id(org_id)
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
    paging = {"self": _paging_link(call, limit, offset)}
    if len(page) >= limit:
        paging["next"] = _paging_link(call, limit, offset + limit)
    if offset > 0:
        paging["prev"] = _paging_link(call, limit, max(offset - limit, 0))
    return json_reply(200, {"links": links(**paging), "buckets": [bucket_json(b) for b in page]})


def create_bucket(call: Call) -> Reply:
    body = call.body_json() or {}
    org_id = str(body.get("orgID") or "")
    if not org_id:
        raise APIError(INVALID, "organization id must be provided", pretty=True)
    valid_id(org_id)
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
