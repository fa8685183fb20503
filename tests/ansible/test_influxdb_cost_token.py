"""The influxdb role's cost token (influxdb-cost-token) has exactly what `homewatt-collector
cost --write` needs, against the InfluxDB 2 stand-in (tests/support/influxdb2), which checks
token permissions as influxd 2.7 does.

The permissions are the role's own (tasks/tokens.yml, rendered with this stand-in's bucket and
org ids); the buckets and DBRP mappings are made as the role makes them (dbrps.yml). What cost
does with the token: InfluxQL over the v1 /query on the raw bucket (db homewatt, the default
retention policy), line protocol over the v1 /write with rp=longterm (cost/v1api.py,
cost/config.py write_retention_policy). Everything else is refused. The cost command's own
InfluxQL (first/max/last ... GROUP BY time) is beyond the stand-in's subset, so the reads here
are plain SELECTs; the cost command itself is tested against InfluxDB 1.6.7
(tests/collector/test_cost_influxdb.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import requests
import yaml

from tests.support.influxdb2 import InfluxDB2StandIn

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "ansible" / "roles" / "influxdb"
CONTRACT = json.loads((REPO / "contracts" / "influxdb-grafana.json").read_text())["influxql"]
DB = CONTRACT["database"]
RAW = CONTRACT["retention_policies"]["raw"]
LONGTERM = CONTRACT["retention_policies"]["longterm"]
ORG, OPERATOR = "homewatt", "stand-in-operator-token"
T0 = 1795435200  # 2026-11-23T12:00:00Z


def role_permissions(name: str, bucket_ids: dict[str, str], org_id: str) -> list[dict]:
    """The permissions the role's tokens.yml gives token `name`, rendered as Ansible would."""
    tasks = yaml.safe_load((ROLE / "tasks" / "tokens.yml").read_text())
    [task] = [t for t in tasks if "loop_var" in str(t.get("loop_control", {}))]
    [item] = [i for i in task["loop"] if i["name"] == name]
    text = jinja2.Template(json.dumps(item["permissions"])).render(
        __influxdb_bucket_ids=bucket_ids, __influxdb_org_id=org_id
    )
    permissions: list[dict] = json.loads(text)
    return permissions


class V1:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.headers = url, {"Authorization": f"Token {token}"}

    def query(self, q: str, rp: str = "") -> requests.Response:
        data = {"db": DB, "q": q, "epoch": "s", **({"rp": rp} if rp else {})}
        return requests.post(f"{self.url}/query", data=data, headers=self.headers, timeout=10)

    def write(self, line: str, rp: str = "") -> requests.Response:
        params = {"db": DB, "precision": "s", **({"rp": rp} if rp else {})}
        return requests.post(
            f"{self.url}/write", params=params, data=line.encode(), headers=self.headers, timeout=10
        )

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.headers, timeout=10, **kwargs)


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[InfluxDB2StandIn, V1, V1]]:
    """An onboarded stand-in with the role's buckets and DBRP mappings; the operator and a
    token with the role's cost permissions."""
    server = InfluxDB2StandIn(tmp_path / "standin").start()
    try:
        server.setup(org=ORG, bucket=RAW["bucket"], token=OPERATOR)
        operator = V1(server.url, OPERATOR)
        org_id = server.store.all("orgs")[0]["id"]
        made = operator.api(
            "POST", "/api/v2/buckets",
            json={"orgID": org_id, "name": LONGTERM["bucket"], "retentionRules": []},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        ids = {b["name"]: b["id"] for b in server.store.all("buckets")}
        bucket_ids = {"raw": ids[RAW["bucket"]], "longterm": ids[LONGTERM["bucket"]]}
        for key, policy in (("raw", RAW), ("longterm", LONGTERM)):
            mapped = operator.api(
                "POST", "/api/v2/dbrps",
                json={"orgID": org_id, "bucketID": bucket_ids[key], "database": DB,
                      "retention_policy": policy["name"], "default": policy["default"]},
            )  # fmt: skip
            assert mapped.status_code == 201, mapped.text
        created = operator.api(
            "POST", "/api/v2/authorizations",
            json={"orgID": org_id, "description": "homewatt cost",
                  "permissions": role_permissions("influxdb-cost-token", bucket_ids, org_id)},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        yield server, operator, V1(server.url, created.json()["token"])
    finally:
        server.stop()


def test_cost_token_reads_the_raw_bucket_and_writes_energy_cost_into_longterm(
    standin: tuple[InfluxDB2StandIn, V1, V1],
) -> None:
    _, operator, cost = standin
    assert operator.write(f"electricity,site=home,device=main energy_total_kwh=12.5 {T0}").ok
    read = cost.query("SELECT energy_total_kwh FROM electricity")
    assert read.status_code == 200, read.text
    assert read.json()["results"][0]["series"][0]["values"] == [[T0, 12.5]]
    line = f"energy_cost,site=home,device=main,channel=total,period=flat energy=3.5,cost=1.2 {T0}"
    wrote = cost.write(line, rp=LONGTERM["name"])
    assert wrote.status_code == 204, wrote.text
    back = operator.query("SELECT cost FROM energy_cost", rp=LONGTERM["name"])
    assert back.json()["results"][0]["series"][0]["values"] == [[T0, 1.2]]


def test_cost_token_is_refused_everything_else(standin: tuple[InfluxDB2StandIn, V1, V1]) -> None:
    server, operator, cost = standin
    line = f"energy_cost,site=home,period=bill energy=1,cost=1 {T0}"
    assert operator.write(line, rp=LONGTERM["name"]).status_code == 204
    # no write on the raw bucket (the collector's data), through v1 or v2
    assert cost.write(f"electricity,device=main power_w=1 {T0}").status_code == 403
    raw_v2 = cost.api(
        "POST", "/api/v2/write", params={"org": ORG, "bucket": RAW["bucket"]}, data=b"m f=1"
    )
    assert raw_v2.status_code in (401, 403, 404), raw_v2.text
    # no read of the long-term bucket: its mapping is invisible to the token
    longterm = cost.query("SELECT cost FROM energy_cost", rp=LONGTERM["name"]).json()
    assert "series" not in longterm["results"][0], longterm
    # nothing else of the org: buckets, tokens, tasks, users. The raw bucket by name: its write
    # permission on the long-term bucket also lets the token rename or delete that one, as in
    # influxd 2.7 (authorizer/bucket.go: UpdateBucket and DeleteBucket ask for write on the
    # bucket), which the README says; bucket ids are random, so "the first bucket" was the
    # long-term one in about one run of four.
    org_id = server.store.all("orgs")[0]["id"]
    buckets = {b["name"]: b["id"] for b in server.store.all("buckets")}
    every_bucket = {"action": "read", "resource": {"type": "buckets", "orgID": org_id}}
    for method, path, body in (
        ("POST", "/api/v2/buckets", {"orgID": org_id, "name": "x"}),
        ("POST", "/api/v2/authorizations", {"orgID": org_id, "permissions": [every_bucket]}),
        ("DELETE", f"/api/v2/buckets/{buckets[RAW['bucket']]}", None),
        ("PATCH", f"/api/v2/buckets/{buckets[RAW['bucket']]}", {"name": "renamed"}),
        ("DELETE", f"/api/v2/buckets/{buckets['_monitoring']}", None),
    ):
        refused = cost.api(method, path, json=body)
        assert refused.status_code in (401, 403, 404), (method, path, refused.text)
    assert cost.api("GET", "/api/v2/authorizations").json().get("authorizations", []) == []
    assert cost.api("GET", "/api/v2/tasks").json().get("tasks", []) == []
