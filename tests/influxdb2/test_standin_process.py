"""The stand-in as the image runs it (`influxd standin-init`, then `influxd`), as a process on
this machine: DOCKER_INFLUXDB_INIT_* setup once, INFLUXD_* settings checked the way influxd
parses them, a clean stop. The image itself is tested in test_standin_image.py. NOT a real
InfluxDB 2, which cannot run here."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import requests

from tests.influxdb2.conftest import BUCKET, ORG, Api
from tests.support.processes import ServerProcess, free_port, http_ok

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "process-operator-token"


def environment(root: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "INFLUXD_BOLT_PATH": str(root / "data" / "influxd.bolt"),
        "INFLUXD_ENGINE_PATH": str(root / "data" / "engine"),
        "INFLUXD_HTTP_BIND_ADDRESS": f"127.0.0.1:{port}",
        "INFLUX_CONFIGS_PATH": str(root / "etc" / "influx-configs"),
        "DOCKER_INFLUXDB_INIT_MODE": "setup",
        "DOCKER_INFLUXDB_INIT_USERNAME": "admin",
        "DOCKER_INFLUXDB_INIT_PASSWORD": "a long password",
        "DOCKER_INFLUXDB_INIT_ORG": ORG,
        "DOCKER_INFLUXDB_INIT_BUCKET": BUCKET,
        "DOCKER_INFLUXDB_INIT_RETENTION": "30d",
        "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": ADMIN_TOKEN,
        "DOCKER_INFLUXDB_INIT_CLI_CONFIG_NAME": "default",
        **extra,
    }


def influxd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.support.influxdb2", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start(root: Path, env: dict[str, str], port: int) -> ServerProcess:
    server = ServerProcess(
        "influxd stand-in",
        [sys.executable, "-m", "tests.support.influxdb2", "run"],
        root / "influxd.log",
        env=env,
        cwd=REPO,
    ).start()
    server.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 30)
    return server


def test_first_start_sets_up_from_the_init_variables_and_leaves_a_0600_cli_config(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = environment(tmp_path, port)
    init = influxd("standin-init", env=env)
    assert init.returncode == 0, init.stderr
    config = tmp_path / "etc" / "influx-configs"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert config.read_text() == (
        f'[default]\n  url = "http://localhost:{port}"\n  token = "{ADMIN_TOKEN}"\n'
        f'  org = "{ORG}"\n  active = true\n'
    )
    state = tmp_path / "data" / "standin.sqlite"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    server = start(tmp_path, env, port)
    try:
        api = Api(f"http://127.0.0.1:{port}", ADMIN_TOKEN)
        [bucket] = api("GET", "/api/v2/buckets", params={"name": BUCKET}).json()["buckets"]
        assert bucket["retentionRules"][0]["everySeconds"] == 30 * 86400
        assert api("GET", "/api/v2/backup/metadata").status_code == 200  # an operator token
    finally:
        assert server.stop() == 0  # SIGTERM: a clean stop, exit status 0


def test_a_second_start_keeps_the_state_and_does_not_set_up_again(tmp_path: Path) -> None:
    port = free_port()
    assert influxd("standin-init", env=environment(tmp_path, port)).returncode == 0
    again = influxd(
        "standin-init", env=environment(tmp_path, port, DOCKER_INFLUXDB_INIT_ADMIN_TOKEN="other")
    )
    assert again.returncode == 0 and "skipping setup wrapper" in again.stderr
    server = start(tmp_path, environment(tmp_path, port), port)
    try:
        url = f"http://127.0.0.1:{port}"
        assert (
            requests.get(
                f"{url}/api/v2/buckets", headers={"Authorization": "Token other"}, timeout=5
            ).status_code
            == 401
        )
        assert Api(url, ADMIN_TOKEN)("GET", "/api/v2/buckets").status_code == 200
    finally:
        server.signal(signal.SIGTERM)
        server.stop()


def test_a_setting_influxd_would_refuse_stops_the_start_with_one_clear_line(tmp_path: Path) -> None:
    env = environment(tmp_path, free_port(), INFLUXD_STORAGE_WAL_FSYNC_DELAY="1 second")
    refused = influxd("run", env=env)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        'Error: invalid value "1 second" for INFLUXD_STORAGE_WAL_FSYNC_DELAY '
        '(--storage-wal-fsync-delay): time: invalid duration "1 second"'
    )
    fine = environment(
        tmp_path,
        free_port(),
        INFLUXD_STORAGE_CACHE_MAX_MEMORY_SIZE="128MiB",
        INFLUXD_STORAGE_WAL_FSYNC_DELAY="500ms",
        INFLUXD_STORAGE_MAX_CONCURRENT_COMPACTIONS="1",
        INFLUXD_QUERY_MEMORY_BYTES="33554432",
        INFLUXD_REPORTING_DISABLED="true",
    )
    assert influxd("standin-init", env=fine).returncode == 0


def test_missing_init_variables_refuse_the_setup_and_leave_no_state(tmp_path: Path) -> None:
    env = environment(tmp_path, free_port())
    del env["DOCKER_INFLUXDB_INIT_PASSWORD"]
    refused = influxd("standin-init", env=env)
    assert refused.returncode == 1
    assert (
        'msg="missing parameter, cannot init InfluxDB" service=influxdb-standin '
        "parameter=DOCKER_INFLUXDB_INIT_PASSWORD" in refused.stderr
    )
    assert not (tmp_path / "data" / "standin.sqlite").exists()
    upgrade = influxd(
        "standin-init", env=environment(tmp_path, free_port(), DOCKER_INFLUXDB_INIT_MODE="upgrade")
    )
    assert upgrade.returncode == 1 and "cannot upgrade InfluxDB 1.x data" in upgrade.stderr
