"""The influxdb role inside its Molecule instance, against the InfluxDB 2 stand-in image.

Not run against a real InfluxDB 2 (no registry is reachable here): the container runs
`homewatt-test/influxdb-standin`, which serves InfluxDB 2's HTTP API with its status codes,
bodies and token permissions (tests/support/influxdb2). What is proven here is the role's
orchestration and its use of the API: image reference, restart policy, memory limit,
healthcheck, published ports, volumes, onboarding once, each token's permissions, secret files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import testinfra.host
from conftest import NestedContainer

CONTAINER = "homewatt-influxdb"
CREDENTIALS = "/etc/homewatt/credentials"
URL = "http://127.0.0.1:8086"


def curl(method: str, path: str, token: str, *args: str) -> str:
    """A curl command run in the instance with the token read there from its credential file
    (no secret passes through the test, so none can reach its output)."""
    auth = f'-H "Authorization: Token $(cat {CREDENTIALS}/{token})"'
    return f"curl -sS -X {method} {auth} {' '.join(args)} '{URL}{path}'"


def status(host: testinfra.host.Host, method: str, path: str, token: str, data: str = "") -> int:
    """The HTTP status InfluxDB answers to `method path` with the token named `token` (0 when
    nothing answers)."""
    body = f"--data-binary '{data}'" if data else ""
    done = host.run(curl(method, path, token, "-o /dev/null -w '%{http_code}'", body))
    return int(done.stdout or 0) if done.rc == 0 else 0


def query(host: testinfra.host.Host, token: str, influxql: str, rp: str = "") -> tuple[int, str]:
    """InfluxQL through the v1 /query (as Grafana asks): the status and the body."""
    path = "/query?db=homewatt" + (f"&rp={rp}" if rp else "")
    done = host.run(
        curl("POST", path, token, "-w '\\n%{http_code}'", f"--data-urlencode 'q={influxql}'")
    )
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body


@pytest.fixture
def influxdb(nested_container: Callable[[str], NestedContainer]) -> NestedContainer:
    return nested_container(CONTAINER)


def test_container_runs_the_pinned_image_restarts_and_is_limited_for_a_1gb_pi(
    influxdb: NestedContainer,
) -> None:
    influxdb.assert_runs_pinned_and_restarts_unless_stopped(
        "homewatt-test/influxdb-standin", memory_mb=320
    )
    env = influxdb.env()
    assert env["INFLUXD_STORAGE_CACHE_MAX_MEMORY_SIZE"] == "64MiB"
    assert env["INFLUXD_STORAGE_MAX_CONCURRENT_COMPACTIONS"] == "1"
    assert env["INFLUXD_QUERY_CONCURRENCY"] == "4"
    assert env["INFLUXD_QUERY_MAX_MEMORY_BYTES"] == str(128 * 1024 * 1024)
    assert env["INFLUXD_STORAGE_WAL_FSYNC_DELAY"] == "1000ms"
    assert env["INFLUXD_REPORTING_DISABLED"] == "true"


def test_healthcheck_is_curl_on_health(
    host: testinfra.host.Host, influxdb: NestedContainer
) -> None:
    influxdb.assert_health_check(f"{URL}/health")
    assert json.loads(host.check_output(f"curl -fsS {URL}/health"))["status"] == "pass"


@pytest.mark.usefixtures("nested_docker_exec")
def test_healthcheck_turns_healthy(influxdb: NestedContainer) -> None:
    influxdb.wait_healthy()


def test_api_is_published_on_localhost_only(influxdb: NestedContainer) -> None:
    influxdb.assert_published_on(8086, "127.0.0.1")


def test_secret_files_are_root_only(host: testinfra.host.Host) -> None:
    for name in (
        "influxdb-admin-password",
        "influxdb-operator-token",
        "influxdb-write-token",
        "influxdb-grafana-token",
        "influxdb-cost-token",
    ):
        file = host.file(f"{CREDENTIALS}/{name}")
        assert (file.user, file.group, file.mode) == ("root", "root", 0o600), name
        assert len(file.content_string.strip()) >= 16, name


def test_onboarding_made_one_token_of_each_kind(host: testinfra.host.Host) -> None:
    auths = json.loads(
        host.check_output(curl("GET", "/api/v2/authorizations", "influxdb-operator-token", "-f"))
    )
    descriptions = [a["description"] for a in auths["authorizations"]]
    assert descriptions.count("homewatt collector: write homewatt") == 1
    assert descriptions.count("homewatt grafana: read homewatt and homewatt_longterm") == 1
    assert descriptions.count("homewatt cost: read homewatt, write homewatt_longterm") == 1


def test_write_token_writes_the_raw_bucket_and_reads_nothing(host: testinfra.host.Host) -> None:
    write = "influxdb-write-token"
    line = "electricity,device=verify power_w=230.5"
    assert (
        status(host, "POST", "/api/v2/write?org=homewatt&bucket=homewatt&precision=s", write, line)
        == 204
    )
    assert status(
        host, "POST", "/api/v2/write?org=homewatt&bucket=homewatt_longterm", write, line
    ) in (401, 403, 404)
    code, body = query(host, write, "SELECT power_w FROM electricity")
    assert "230.5" not in body, "the write-only token read data back"
    assert code in (401, 403) or '"error"' in body


def test_grafana_token_reads_both_buckets_and_cannot_write(host: testinfra.host.Host) -> None:
    grafana = "influxdb-grafana-token"
    deadline = time.monotonic() + 30
    while "230.5" not in query(host, grafana, "SELECT power_w FROM electricity")[1]:
        assert time.monotonic() < deadline, "the read-only token does not read the raw bucket"
        time.sleep(1)
    code, body = query(host, grafana, "SELECT power_w_mean FROM electricity", rp="longterm")
    assert code == 200 and '"error"' not in body, body
    line = "electricity,device=main power_w=1"
    assert status(host, "POST", "/api/v2/write?org=homewatt&bucket=homewatt", grafana, line) in (
        401,
        403,
    )


def test_cost_token_reads_raw_writes_longterm_over_v1_and_nothing_else(
    host: testinfra.host.Host,
) -> None:
    """What `homewatt-collector cost --write` does with it: InfluxQL on the raw bucket over the
    v1 /query, line protocol into rp longterm over the v1 /write; anything else is refused."""
    cost = "influxdb-cost-token"
    deadline = time.monotonic() + 30
    while "230.5" not in query(host, cost, "SELECT power_w FROM electricity")[1]:
        assert time.monotonic() < deadline, "the cost token does not read the raw bucket"
        time.sleep(1)
    line = "energy_cost,site=home,period=bill energy=1.5,cost=0.75"
    assert status(host, "POST", "/write?db=homewatt&rp=longterm&precision=s", cost, line) == 204
    assert status(host, "POST", "/write?db=homewatt&precision=s", cost, line) == 403
    raw = "/api/v2/write?org=homewatt&bucket=homewatt&precision=s"
    assert status(host, "POST", raw, cost, "electricity,device=x power_w=1") in (401, 403, 404)


def test_data_survives_a_recreated_container(
    host: testinfra.host.Host, influxdb: NestedContainer
) -> None:
    mounts = {m["Destination"]: m for m in influxdb.inspect()["Mounts"]}
    assert mounts["/var/lib/influxdb2"]["Source"] == "/var/lib/homewatt/influxdb/data"
    assert mounts["/etc/influxdb2"]["Source"] == "/var/lib/homewatt/influxdb/config"
    operator = "influxdb-operator-token"
    image = influxdb.inspect()["Config"]["Image"]
    run_args = host.check_output(
        "docker inspect -f '{{range .Config.Env}}-e {{.}} {{end}}' " + CONTAINER
    )
    host.check_output(f"docker rm -f {CONTAINER}")
    host.check_output(
        f"docker run -d --name {CONTAINER} --network homewatt -p 127.0.0.1:8086:8086 {run_args}"
        " -v /var/lib/homewatt/influxdb/data:/var/lib/influxdb2"
        f" -v /var/lib/homewatt/influxdb/config:/etc/influxdb2 {image}"
    )
    deadline = time.monotonic() + 60
    while status(host, "GET", "/api/v2/buckets?name=homewatt_longterm", operator) != 200:
        assert time.monotonic() < deadline, "the recreated container lost its buckets or token"
        time.sleep(1)
    assert "230.5" in query(host, "influxdb-grafana-token", "SELECT power_w FROM electricity")[1]


@pytest.mark.parametrize("setting", ["setup"])
def test_setup_is_no_longer_allowed(host: testinfra.host.Host, setting: str) -> None:
    answer = json.loads(host.check_output(f"curl -fsS {URL}/api/v2/{setting}"))
    assert answer == {"allowed": False}
