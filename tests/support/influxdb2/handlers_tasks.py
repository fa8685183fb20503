"""/api/v2/tasks: stored with the options of their `option task = {...}` record.

Reconstructed from influxdb v2.7.12 http/task_service.go (the answer shape, written by
json.NewEncoder: compact with a newline), kv/task.go (createTask) and task/options (name,
every or cron, offset; "invalid options: no task options defined"). The stand-in never runs
a task, and does not compile the rest of the task's Flux (a real InfluxDB refuses a script
that does not parse).
"""

from __future__ import annotations

import re
from typing import Any

from . import gojson
from .auth import permission
from .errors import INVALID, NOT_FOUND, APIError
from .handlers_tenant import SECOND, find_org
from .server import Call, Reply, Router, json_reply, links, valid_id
from .store import new_id


def register(router: Router) -> None:
    router.add("GET", "/api/v2/tasks", list_tasks)
    router.add("POST", "/api/v2/tasks", create_task)
    router.add("GET", "/api/v2/tasks/{id}", get_task)
    router.add("PATCH", "/api/v2/tasks/{id}", patch_task)
    router.add("DELETE", "/api/v2/tasks/{id}", delete_task)


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
        "links": links(
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
    task = call.store.get("tasks", valid_id(call.params["id"], pretty=False))
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
