"""The grafana role inside its Molecule instance, with the Grafana stand-in image.

Not run against a real Grafana (no registry, no Grafana server here): the stand-in
(tests/ansible/grafana_standin) checks orchestration only: it refuses to start unless the
provisioning files, the secrets they name and the admin password file are readable by
Grafana's uid, and answers /api/health. Dashboards and alert rules are tested in tests/grafana.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import testinfra.host
from conftest import NestedContainer

CONTAINER = "homewatt-grafana"
CONFIG = "/etc/homewatt/grafana"


@pytest.fixture
def grafana(nested_container: Callable[[str], NestedContainer]) -> NestedContainer:
    return nested_container(CONTAINER)


def test_container_runs_the_pinned_image_and_restarts_unless_stopped(
    grafana: NestedContainer,
) -> None:
    grafana.assert_runs_pinned_and_restarts_unless_stopped(
        "homewatt-test/grafana-standin", memory_mb=192
    )
    assert grafana.inspect()["HostConfig"]["OomScoreAdj"] == 500


def test_no_anonymous_access_no_sign_up_no_analytics_and_the_site_time_zone(
    grafana: NestedContainer,
) -> None:
    env = grafana.env()
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_ANALYTICS_REPORTING_ENABLED"] == "false"
    assert env["GF_DATE_FORMATS_DEFAULT_TIMEZONE"] == "Europe/Berlin"
    assert env["GF_PATHS_PROVISIONING"] == f"{CONFIG}/provisioning"
    assert env["HOMEWATT_INFLUXDB_URL"] == "http://homewatt-influxdb:8086"
    password_file = "/run/secrets/homewatt/grafana-admin-password"  # noqa: S105 (a path)
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == password_file
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env


def test_repository_files_are_mounted_read_only_and_secrets_for_grafana_only(
    host: testinfra.host.Host, grafana: NestedContainer
) -> None:
    mounts = {m["Destination"]: m for m in grafana.inspect()["Mounts"]}
    assert mounts[CONFIG]["Source"] == CONFIG and not mounts[CONFIG]["RW"]
    secrets = mounts["/run/secrets/homewatt"]
    assert secrets["Source"] == f"{CONFIG}/secrets" and not secrets["RW"]
    assert mounts["/var/lib/grafana"]["RW"]
    directory = host.file(f"{CONFIG}/secrets")
    assert (directory.uid, directory.gid, directory.mode) == (472, 0, 0o500)
    for name in ("influxdb-grafana-token", "grafana-admin-password"):
        copy = host.file(f"{CONFIG}/secrets/{name}")
        assert (copy.uid, copy.gid, copy.mode) == (472, 0, 0o400), name
    original = host.file("/etc/homewatt/credentials/grafana-admin-password")
    assert (original.user, original.mode) == ("root", 0o600)
    assert host.file(f"{CONFIG}/dashboards").is_directory
    assert host.file(f"{CONFIG}/provisioning/datasources/homewatt.yaml").mode == 0o644


def test_alert_limits_and_contact_points_come_from_role_variables(
    host: testinfra.host.Host,
) -> None:
    rules = host.file(f"{CONFIG}/provisioning/alerting/homewatt-rules.yaml").content_string
    assert "5500" in rules
    contact = host.file(f"{CONFIG}/provisioning/alerting/homewatt-contact-points.yaml")
    assert (contact.uid, contact.mode) == (472, 0o400)
    text = host.check_output(f"cat {CONFIG}/provisioning/alerting/homewatt-contact-points.yaml")
    assert '"phone"' in text and "ntfy.invalid" in text and "homewatt" in text


def test_web_ui_on_localhost_only_and_healthy(
    host: testinfra.host.Host, grafana: NestedContainer
) -> None:
    grafana.assert_published_on(3000, "127.0.0.1")
    grafana.assert_health_check("http://127.0.0.1:3000/api/health")
    health = json.loads(host.check_output("curl -fsS http://127.0.0.1:3000/api/health"))
    assert health["database"] == "ok"


@pytest.mark.usefixtures("nested_docker_exec")
def test_healthcheck_turns_healthy(grafana: NestedContainer) -> None:
    grafana.wait_healthy()
