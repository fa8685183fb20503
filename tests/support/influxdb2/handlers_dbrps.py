"""/api/v2/dbrps: the database/retention-policy mappings the v1 API reads through.

Reconstructed from influxdb v2.7.12 dbrp/http_server_dbrp.go, dbrp/service.go (the first
mapping of a database becomes its default; a second one with the same org, database and
retention policy is 422; every bucket also has a *virtual* mapping, database = bucket name,
rp `autogen`, listed unless a real mapping covers it) and dbrp/middleware_auth.go (read or
write permission on the mapped bucket). Bodies tab-indented (kithttp.API).
"""

from __future__ import annotations

import re
from typing import Any

from .auth import permission
from .errors import CONFLICT, INVALID, NOT_FOUND, APIError
from .server import Call, Reply, Router, json_reply, valid_id
from .store import new_id


def register(router: Router) -> None:
    router.add("GET", "/api/v2/dbrps", list_dbrps)
    router.add("POST", "/api/v2/dbrps", create_dbrp)
    router.add("GET", "/api/v2/dbrps/{id}", get_dbrp)
    router.add("PATCH", "/api/v2/dbrps/{id}", patch_dbrp)
    router.add("DELETE", "/api/v2/dbrps/{id}", delete_dbrp)


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
    dbrp_id = valid_id(call.params["id"])
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
