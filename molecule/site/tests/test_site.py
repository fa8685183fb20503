"""site.yml on both instances (bookworm, trixie), with the stand-in images (not the real
InfluxDB 2 and Grafana, which cannot run here): the stack as a whole."""

from __future__ import annotations

import json
import time

import pytest
import testinfra.host


def health(host: testinfra.host.Host, container: str) -> str:
    return host.check_output(f"docker inspect -f '{{{{.State.Health.Status}}}}' {container}")


def test_both_answer_their_health_endpoints(host: testinfra.host.Host) -> None:
    influxdb = json.loads(host.check_output("curl -fsS http://127.0.0.1:8086/health"))
    grafana = json.loads(host.check_output("curl -fsS http://127.0.0.1:3000/api/health"))
    assert (influxdb["status"], grafana["database"]) == ("pass", "ok")


@pytest.mark.usefixtures("nested_docker_exec")
def test_both_containers_turn_healthy(host: testinfra.host.Host) -> None:
    deadline = time.monotonic() + 150
    while {health(host, "homewatt-influxdb"), health(host, "homewatt-grafana")} != {"healthy"}:
        assert time.monotonic() < deadline, "a container never turned healthy"
        time.sleep(3)


def test_influxdb_on_localhost_and_grafana_where_the_inventory_says(
    host: testinfra.host.Host,
) -> None:
    assert host.socket("tcp://127.0.0.1:8086").is_listening
    assert not host.socket("tcp://0.0.0.0:8086").is_listening
    everywhere = "0.0.0.0"  # noqa: S104 (what the inventory asks for, compared)
    lan = host.ansible.get_variables().get("grafana_listen_address") == everywhere
    assert host.socket("tcp://0.0.0.0:3000").is_listening == lan
    assert host.socket("tcp://127.0.0.1:3000").is_listening or lan


def test_grafana_reaches_influxdb_on_the_stack_network(host: testinfra.host.Host) -> None:
    """Grafana's container is on the stack network, where InfluxDB answers by its name (asked
    from a new container of Grafana's image on that network: no `docker exec`, see conftest)."""
    grafana = json.loads(host.check_output("docker inspect homewatt-grafana"))[0]
    assert "homewatt" in grafana["NetworkSettings"]["Networks"]
    answer = host.check_output(
        "docker run --rm --network homewatt --entrypoint curl %s"
        " -fsS http://homewatt-influxdb:8086/health",
        grafana["Config"]["Image"],
    )
    assert json.loads(answer)["status"] == "pass"


def test_grafana_holds_influxdbs_current_read_token(host: testinfra.host.Host) -> None:
    same = host.run(
        "cmp -s /etc/homewatt/credentials/influxdb-grafana-token "
        "/etc/homewatt/grafana/secrets/influxdb-grafana-token"
    )
    assert same.rc == 0


def test_no_secret_file_is_world_readable(host: testinfra.host.Host) -> None:
    found = host.check_output(
        "find /etc/homewatt /var/lib/homewatt -maxdepth 3 -type f -perm /o=r "
        "\\( -path '*credentials*' -o -path '*secrets*' \\) -print"
    )
    assert found == ""
    for name in host.check_output("ls /etc/homewatt/credentials").split():
        assert host.file(f"/etc/homewatt/credentials/{name}").mode == 0o600, name
