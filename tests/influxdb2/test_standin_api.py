"""The stand-in's management API: health, setup, tokens and their permissions, buckets, DBRP
mappings, tasks. Expected answers are InfluxDB 2.7.12's as reconstructed from its source (see
tests/support/influxdb2); NOT run against a real InfluxDB 2, which cannot run here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests

from tests.influxdb2.conftest import BUCKET, ORG, TOKEN, Api
from tests.support.influxdb2 import COMMIT, VERSION, InfluxDB2StandIn

PRETTY_CONFLICT = (
    b'{\n\t"code": "conflict",\n\t"message": "onboarding has already been completed"\n}'
)


def test_health_ping_and_ready_answer_without_a_token_in_influxdbs_bytes(
    standin: InfluxDB2StandIn,
) -> None:
    health = requests.get(f"{standin.url}/health", timeout=5)
    assert health.status_code == 200
    assert health.content == (
        b'{"name":"influxdb", "message":"ready for queries and writes", "status":"pass", '
        b'"checks":[], "version": "'
        + VERSION.encode()
        + b'", "commit": "'
        + COMMIT.encode()
        + b'"}\n'
    )
    assert health.headers["Content-Type"] == "application/json; charset=utf-8"
    for method in ("GET", "HEAD"):
        ping = requests.request(method, f"{standin.url}/ping", timeout=5)
        assert ping.status_code == 204 and ping.content == b""
        assert ping.headers["X-Influxdb-Build"] == "OSS"
        assert ping.headers["X-Influxdb-Version"] == VERSION
    ready = requests.get(f"{standin.url}/ready", timeout=5).json()
    assert ready["status"] == "ready"


def test_setup_is_once_only_a_second_setup_is_422_onboarding_already_completed(
    standin: InfluxDB2StandIn,
) -> None:
    assert requests.get(f"{standin.url}/api/v2/setup", timeout=5).json() == {"allowed": False}
    again = requests.post(
        f"{standin.url}/api/v2/setup",
        json={"username": "x", "password": "long enough", "org": "o", "bucket": "b"},
        timeout=5,
    )
    assert again.status_code == 422
    assert again.content == PRETTY_CONFLICT
    assert again.headers["X-Platform-Error-Code"] == "conflict"
    assert [o["name"] for o in standin.store.all("orgs")] == [ORG]


def test_setup_refuses_missing_fields_and_a_short_password_and_creates_nothing(
    tmp_path: Path,
) -> None:
    with InfluxDB2StandIn(tmp_path) as fresh:
        missing = requests.post(f"{fresh.url}/api/v2/setup", json={"username": "admin"}, timeout=5)
        assert missing.status_code == 422
        assert (
            missing.json()["message"] == "onboarding failed: missing required fields [org,bucket]"
        )
        short = requests.post(
            f"{fresh.url}/api/v2/setup",
            json={"username": "admin", "password": "short", "org": "o", "bucket": "b"},
            timeout=5,
        )
        assert short.status_code == 400
        assert short.json() == {
            "code": "invalid",
            "message": "passwords must be between 8 and 72 characters long",
        }
        assert requests.get(f"{fresh.url}/api/v2/setup", timeout=5).json() == {"allowed": True}


def test_setup_makes_the_operator_token_the_org_with_its_system_buckets_and_the_bucket(
    standin: InfluxDB2StandIn, operator: Api
) -> None:
    buckets = operator("GET", "/api/v2/buckets").json()["buckets"]
    assert sorted((b["name"], b["type"]) for b in buckets) == [
        ("_monitoring", "system"),
        ("_tasks", "system"),
        (BUCKET, "user"),
    ]
    retention = {b["name"]: b["retentionRules"] for b in buckets}
    assert retention["_tasks"] == [
        {"type": "expire", "everySeconds": 259200, "shardGroupDurationSeconds": 86400}
    ]
    assert retention[BUCKET] == [
        {"type": "expire", "everySeconds": 0, "shardGroupDurationSeconds": 604800}
    ]
    [auth] = operator("GET", "/api/v2/authorizations").json()["authorizations"]
    assert auth["token"] == TOKEN and auth["description"] == "admin's Token"
    types = {p["resource"]["type"] for p in auth["permissions"]}
    assert "instance" not in types and {"buckets", "authorizations", "orgs", "users"} <= types
    assert all("orgID" not in p["resource"] for p in auth["permissions"])  # operator: no org


def test_no_token_a_bad_scheme_or_an_unknown_token_is_401_unauthorized_access(
    standin: InfluxDB2StandIn,
) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Token nope"}):
        answer = requests.get(f"{standin.url}/api/v2/buckets", headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.content == b'{"code":"unauthorized","message":"unauthorized access"}'
    bearer = requests.get(
        f"{standin.url}/api/v2/buckets", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert bearer.status_code == 200


def test_a_read_token_gets_403_on_write_and_a_write_token_cannot_query(
    token_for: Callable[..., Api],
) -> None:
    reader = token_for(("read", "buckets", BUCKET))
    writer = token_for(("write", "buckets", BUCKET))
    refused = reader.write("m f=1 1700000000")
    assert refused.status_code == 403
    assert refused.content == b'{"code":"forbidden","message":"insufficient permissions for write"}'
    assert writer.write("m f=1 1700000000").status_code == 204
    query = writer.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)')
    assert query.status_code == 404
    assert (
        query.json()["message"]
        == f'failed to initialize execute state: could not find bucket "{BUCKET}"'
    )
    assert reader.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)').status_code == 200
    # a token sees only what it may read; the writer may not list buckets at all
    assert [b["name"] for b in reader("GET", "/api/v2/buckets").json()["buckets"]] == [BUCKET]
    assert writer("GET", "/api/v2/buckets").json()["buckets"] == []


def test_a_token_on_another_bucket_gets_403_and_an_inactive_token_may_do_nothing(
    standin: InfluxDB2StandIn, operator: Api, token_for: Callable[..., Api]
) -> None:
    org_id = standin.store.all("orgs")[0]["id"]
    assert (
        operator("POST", "/api/v2/buckets", json={"orgID": org_id, "name": "longterm"}).status_code
        == 201
    )
    longterm_writer = token_for(("write", "buckets", "longterm"))
    assert longterm_writer.write("m f=1 1700000000").status_code == 403
    assert longterm_writer.write("m f=1 1700000000", bucket="longterm").status_code == 204
    inactive = token_for(
        ("write", "buckets", BUCKET), ("read", "buckets", BUCKET), status="inactive"
    )
    assert inactive.write("m f=1 1700000000").status_code == 403
    assert inactive.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)').status_code == 404


def test_backup_needs_the_operator_token_an_all_access_token_gets_401(
    token_for: Callable[..., Api], operator: Api
) -> None:
    types = (
        "authorizations",
        "buckets",
        "dashboards",
        "orgs",
        "tasks",
        "users",
        "dbrp",
        "variables",
    )
    all_access = token_for(*((a, t, "*") for t in types for a in ("read", "write")))
    refused = all_access("GET", "/api/v2/backup/metadata")
    assert refused.status_code == 401
    assert (
        refused.content
        == b'{"code":"unauthorized","message":"read:authorizations is unauthorized"}'
    )
    assert all_access("GET", "/api/v2/backup/shards/1").status_code == 401
    assert operator("GET", "/api/v2/backup/metadata").status_code == 200


def test_a_token_cannot_grant_a_permission_it_does_not_hold(
    standin: InfluxDB2StandIn, token_for: Callable[..., Api]
) -> None:
    org_id = standin.store.all("orgs")[0]["id"]
    bucket_id = next(b["id"] for b in standin.store.all("buckets") if b["name"] == BUCKET)
    user_id = standin.store.all("users")[0]["id"]
    creator = Api(
        standin.url, token_for(("write", "authorizations", "*"), ("read", "buckets", BUCKET)).token
    )
    # it also needs write on the user the token is for
    standin.store.put(
        "authorizations",
        {
            **next(a for a in standin.store.all("authorizations") if a["token"] == creator.token),
            "permissions": [
                {"action": "write", "resource": {"type": "authorizations", "orgID": org_id}},
                {"action": "write", "resource": {"type": "users", "id": user_id}},
                {
                    "action": "read",
                    "resource": {"type": "buckets", "orgID": org_id, "id": bucket_id},
                },
            ],
        },
    )
    wanted = {"action": "write", "resource": {"type": "buckets", "orgID": org_id, "id": bucket_id}}
    refused = creator(
        "POST", "/api/v2/authorizations", json={"orgID": org_id, "permissions": [wanted]}
    )
    assert refused.status_code == 403
    text = f"write:orgs/{org_id}/buckets/{bucket_id}"
    assert refused.json()["message"] == f"permission {text} is not allowed: {text} is unauthorized"
    allowed = {"action": "read", "resource": {"type": "buckets", "orgID": org_id, "id": bucket_id}}
    assert (
        creator(
            "POST", "/api/v2/authorizations", json={"orgID": org_id, "permissions": [allowed]}
        ).status_code
        == 201
    )


def test_buckets_refuse_duplicates_reserved_names_and_retention_under_an_hour(
    standin: InfluxDB2StandIn, operator: Api
) -> None:
    org_id = standin.store.all("orgs")[0]["id"]
    duplicate = operator("POST", "/api/v2/buckets", json={"orgID": org_id, "name": BUCKET})
    assert duplicate.status_code == 422
    assert duplicate.json() == {
        "code": "conflict",
        "message": f"bucket with name {BUCKET} already exists",
    }
    reserved = operator("POST", "/api/v2/buckets", json={"orgID": org_id, "name": "_mine"})
    assert reserved.status_code == 400
    short = operator(
        "POST",
        "/api/v2/buckets",
        json={
            "orgID": org_id,
            "name": "short",
            "retentionRules": [{"type": "expire", "everySeconds": 60}],
        },
    )
    assert short.status_code == 500
    assert short.json()["message"] == "retention policy duration must be at least 1h0m0s"
    month = operator(
        "POST",
        "/api/v2/buckets",
        json={
            "orgID": org_id,
            "name": "raw30",
            "retentionRules": [{"type": "expire", "everySeconds": 30 * 86400}],
        },
    )
    assert month.status_code == 201
    assert month.json()["retentionRules"] == [
        {"type": "expire", "everySeconds": 2592000, "shardGroupDurationSeconds": 86400}
    ]
    missing = operator("GET", "/api/v2/buckets", params={"org": ORG, "name": "nope"})
    assert missing.status_code == 404 and missing.json()["message"] == 'bucket "nope" not found'
    unknown_org = operator("GET", "/api/v2/buckets", params={"org": "nope"})
    assert unknown_org.status_code == 404
    assert unknown_org.json()["message"] == 'organization name "nope" not found'


def test_every_bucket_has_a_virtual_dbrp_until_a_real_mapping_covers_it(
    standin: InfluxDB2StandIn, operator: Api
) -> None:
    org_id = standin.store.all("orgs")[0]["id"]
    bucket_id = next(b["id"] for b in standin.store.all("buckets") if b["name"] == BUCKET)
    listed = operator("GET", "/api/v2/dbrps", params={"orgID": org_id, "db": BUCKET}).json()[
        "content"
    ]
    assert listed == [
        {
            "id": bucket_id,
            "database": BUCKET,
            "retention_policy": "autogen",
            "default": True,
            "virtual": True,
            "orgID": org_id,
            "bucketID": bucket_id,
        }
    ]
    body = {
        "orgID": org_id,
        "bucketID": bucket_id,
        "database": BUCKET,
        "retention_policy": "autogen",
    }
    created = operator("POST", "/api/v2/dbrps", json=body)
    assert created.status_code == 201
    assert created.json()["default"] is True and created.json()["virtual"] is False
    listed = operator("GET", "/api/v2/dbrps", params={"orgID": org_id, "db": BUCKET}).json()[
        "content"
    ]
    assert [m["virtual"] for m in listed] == [False]
    again = operator("POST", "/api/v2/dbrps", json=body)
    assert again.status_code == 422
    assert again.json()["message"] == "another DBRP mapping with same orgID, db, and rp exists"
    no_org = operator("GET", "/api/v2/dbrps")
    assert (
        no_org.status_code == 400
        and no_org.json()["message"] == "either 'org' or 'orgID' must be provided"
    )


def test_tasks_keep_their_options_and_a_script_without_task_options_is_refused(
    standin: InfluxDB2StandIn, operator: Api
) -> None:
    flux = (
        'option task = {name: "downsample power", every: 1m, offset: 10s}\n'
        f'from(bucket: "{BUCKET}") |> range(start: -task.every)'
    )
    created = operator("POST", "/api/v2/tasks", json={"org": ORG, "flux": flux, "status": "active"})
    assert created.status_code == 201, created.text
    assert created.content.endswith(b"}\n")  # json.NewEncoder, not kithttp.API
    task = created.json()
    assert (task["name"], task["every"], task["offset"], task["status"]) == (
        "downsample power",
        "1m",
        "10s",
        "active",
    )
    found = operator("GET", "/api/v2/tasks", params={"name": "downsample power"}).json()["tasks"]
    assert [t["id"] for t in found] == [task["id"]]
    paused = operator("PATCH", f"/api/v2/tasks/{task['id']}", json={"status": "inactive"})
    assert paused.json()["status"] == "inactive"
    refused = operator(
        "POST", "/api/v2/tasks", json={"org": ORG, "flux": f'from(bucket: "{BUCKET}")'}
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "invalid",
        "message": "invalid options: no task options defined",
    }


def test_unknown_paths_are_404_path_not_found_and_wrong_methods_405(operator: Api) -> None:
    assert operator("GET", "/api/v2/nothing").json() == {
        "code": "not found",
        "message": "path not found",
    }
    wrong = operator("PUT", "/api/v2/buckets")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method not allowed"


def test_state_survives_a_restart_on_the_same_directory(tmp_path: Path) -> None:
    with InfluxDB2StandIn(tmp_path) as first:
        first.setup(org=ORG, bucket=BUCKET, token=TOKEN)
        assert Api(first.url, TOKEN).write("m f=1 1700000000").status_code == 204
    with InfluxDB2StandIn(tmp_path) as second:
        api = Api(second.url, TOKEN)
        assert requests.get(f"{second.url}/api/v2/setup", timeout=5).json() == {"allowed": False}
        answer = api.flux(f'from(bucket: "{BUCKET}") |> range(start: 0)', annotations=[])
        assert answer.text.splitlines()[1].endswith(",2023-11-14T22:13:20Z,1,f,m")
