"""`influxd` of the stand-in image: `python3 -m influxdb2 [run] [--flag[=value] ...]`.

- `run` (the default): serve on http-bind-address (default :8086) with the state in the
  directory of bolt-path (default /var/lib/influxdb2/influxd.bolt, the real image's default
  config). Options come from flags, INFLUXD_* variables and the file INFLUXD_CONFIG_PATH
  names (flat `key: value` YAML, `key = value` TOML or a JSON object), in that precedence;
  values are checked the way influxd parses them, and a bad one stops the start (exit 1).
- `standin-init`: the setup the real image's entrypoint does on a first start with
  DOCKER_INFLUXDB_INIT_MODE=setup (influxdata-docker influxdb/2.7/entrypoint.sh: the required
  DOCKER_INFLUXDB_INIT_USERNAME, _PASSWORD, _ORG, _BUCKET, optional _RETENTION and
  _ADMIN_TOKEN; the influx CLI config written to INFLUX_CONFIGS_PATH with mode 0600 under
  DOCKER_INFLUXDB_INIT_CLI_CONFIG_NAME). The real entrypoint does it through a temporary influxd
  on INFLUXD_INIT_PORT and `influx setup`; the stand-in does it directly. Mode `upgrade` (from
  InfluxDB 1.x) and init scripts in /docker-entrypoint-initdb.d are refused: the stand-in has
  no influx CLI and no 1.x data to upgrade.
- `version`: names the stand-in and the version it answers as.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from . import config
from .errors import APIError
from .handlers_tenant import onboard
from .server import COMMIT, VERSION, InfluxDB2StandIn
from .store import STATE_FILE, Store

DEFAULTS = {
    "bolt-path": "/var/lib/influxdb2/influxd.bolt",
    "engine-path": "/var/lib/influxdb2/engine",
    "http-bind-address": ":8086",
    "log-level": "info",
    "storage-retention-check-interval": "30m",
}
REQUIRED_INIT_VARS = (
    "DOCKER_INFLUXDB_INIT_USERNAME",
    "DOCKER_INFLUXDB_INIT_PASSWORD",
    "DOCKER_INFLUXDB_INIT_ORG",
    "DOCKER_INFLUXDB_INIT_BUCKET",
)


def log(level: str, msg: str, **attrs: object) -> None:
    """influxd's logfmt-like lines on stderr."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    extra = "".join(f" {k}={v}" for k, v in attrs.items())
    print(
        f'ts={stamp} lvl={level} msg="{msg}" service=influxdb-standin{extra}',
        file=sys.stderr,
        flush=True,
    )


class StartError(Exception):
    pass


def _config_file(path: str) -> dict[str, str]:
    text = Path(path).read_text()
    if path.endswith(".json"):
        return {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in json.loads(text).items()
        }
    values = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        sep = ":" if path.endswith((".yml", ".yaml")) else "="
        if sep not in line:
            raise StartError(
                f"{path}: cannot read {line!r} (the stand-in reads flat key{sep} value files)"
            )
        key, value = (part.strip() for part in line.split(sep, 1))
        values[key] = value.strip("\"'")
    return values


def options(argv: list[str], env: dict[str, str]) -> dict[str, str]:  # noqa: PLR0912 (flag forms)
    """Flags over INFLUXD_* over the config file over the image's defaults, each checked."""
    values = dict(DEFAULTS)
    config_path = env.get("INFLUXD_CONFIG_PATH", "")
    if config_path and Path(config_path).is_file():
        for key, value in _config_file(config_path).items():
            if key not in config.OPTIONS:
                raise StartError(f"{config_path}: unknown option {key!r}")
            values[key] = value
    for name, value in env.items():
        if not name.startswith("INFLUXD_") or name in (
            "INFLUXD_CONFIG_PATH",
            "INFLUXD_INIT_PORT",
            "INFLUXD_INIT_PING_ATTEMPTS",
        ):
            continue
        flag = name[len("INFLUXD_") :].lower().replace("_", "-")
        if flag in config.OPTIONS:
            values[flag] = value
        else:
            log("warn", "unknown setting ignored (influxd ignores it too)", variable=name)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise StartError(f'unknown command "{arg}" for "influxd"')
        flag, has_value, value = arg[2:].partition("=")
        if flag not in config.OPTIONS:
            raise StartError(f"unknown flag: --{flag}")
        if not has_value:
            if config.OPTIONS[flag] == "bool":
                value = "true"
            else:
                i += 1
                if i >= len(argv):
                    raise StartError(f"flag needs an argument: --{flag}")
                value = argv[i]
        values[flag] = value
        i += 1
    for flag, value in values.items():
        try:
            config.check(flag, value)
        except ValueError as exc:
            raise StartError(
                f'invalid value "{value}" for {config.env_name(flag)} (--{flag}): {exc}'
            ) from None
    return values


def _bind(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "0.0.0.0", int(port)  # noqa: S104 (":8086" listens on all addresses, as influxd)


def init_from_environment(values: dict[str, str], env: dict[str, str]) -> None:
    """The entrypoint's setup on a first start (see the module docstring)."""
    mode = env.get("DOCKER_INFLUXDB_INIT_MODE", "")
    state_dir = Path(values["bolt-path"]).parent
    if (state_dir / STATE_FILE).exists():
        log(
            "info",
            "found existing stand-in state, skipping setup wrapper",
            path=state_dir / STATE_FILE,
        )
        return
    if not mode:
        log(
            "warn",
            "state not found, but DOCKER_INFLUXDB_INIT_MODE not specified, skipping setup wrapper",
        )
        return
    if mode not in ("setup", "upgrade"):
        raise StartError(
            "found invalid DOCKER_INFLUXDB_INIT_MODE, valid values are 'setup' and 'upgrade' "
            f"(got {mode!r})"
        )
    if mode == "upgrade":
        raise StartError(
            "DOCKER_INFLUXDB_INIT_MODE=upgrade: the stand-in cannot upgrade InfluxDB 1.x data"
        )
    missing = [name for name in REQUIRED_INIT_VARS if not env.get(name)]
    for name in missing:
        log("error", "missing parameter, cannot init InfluxDB", parameter=name)
    if missing:
        raise StartError("missing parameters, cannot init InfluxDB: " + ", ".join(missing))
    scripts = Path("/docker-entrypoint-initdb.d")
    if scripts.is_dir() and any(
        p.suffix == ".sh" and os.access(p, os.X_OK) for p in scripts.iterdir()
    ):
        raise StartError(
            "init scripts in /docker-entrypoint-initdb.d cannot run: the stand-in has no influx CLI"
        )
    try:
        retention_ns = config.influx_duration_ns(env.get("DOCKER_INFLUXDB_INIT_RETENTION", ""))
    except ValueError as exc:
        raise StartError(f"Error: {exc}") from None
    if retention_ns % 1_000_000_000:
        raise StartError(
            f"retention policy {env['DOCKER_INFLUXDB_INIT_RETENTION']!r} is too precise, "
            "must be divisible by 1s"
        )
    store = Store(state_dir)
    try:
        result = onboard(
            store,
            username=env["DOCKER_INFLUXDB_INIT_USERNAME"],
            password=env["DOCKER_INFLUXDB_INIT_PASSWORD"],
            org=env["DOCKER_INFLUXDB_INIT_ORG"],
            bucket=env["DOCKER_INFLUXDB_INIT_BUCKET"],
            retention_s=retention_ns // 1_000_000_000,
            token=env.get("DOCKER_INFLUXDB_INIT_ADMIN_TOKEN", ""),
        )
    except APIError as exc:
        store.close()
        for leftover in state_dir.glob(STATE_FILE + "*"):
            leftover.unlink()  # cleanup_influxd: no half-initialised state on retry
        raise StartError(f"Error: failed to setup instance: {exc.message}") from None
    store.close()
    _write_cli_config(values, env, result["auth"]["token"], env["DOCKER_INFLUXDB_INIT_ORG"])
    log(
        "info",
        "initialization complete",
        org=env["DOCKER_INFLUXDB_INIT_ORG"],
        bucket=env["DOCKER_INFLUXDB_INIT_BUCKET"],
    )


def _write_cli_config(values: dict[str, str], env: dict[str, str], token: str, org: str) -> None:
    """What `influx setup` leaves in INFLUX_CONFIGS_PATH (influx-cli config/local.go: TOML,
    mode 0600), with the URL the entrypoint rewrites to the final port."""
    path = Path(env.get("INFLUX_CONFIGS_PATH", "/etc/influxdb2/influx-configs"))
    name = env.get("DOCKER_INFLUXDB_INIT_CLI_CONFIG_NAME", "default")
    scheme = "https" if values.get("tls-cert") and values.get("tls-key") else "http"
    port = values["http-bind-address"].rpartition(":")[2]
    text = (
        f'[{name}]\n  url = "{scheme}://localhost:{port}"\n  token = "{token}"\n'
        f'  org = "{org}"\n  active = true\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _name_process(name: bytes) -> None:
    """prctl(PR_SET_NAME): `ps` and /proc/<pid>/comm show influxd, as for the real server."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def serve(values: dict[str, str]) -> int:
    _name_process(b"influxd")
    if values.get("tls-cert") or values.get("tls-key"):
        raise StartError("TLS (tls-cert, tls-key) is not supported by the stand-in")
    host, port = _bind(values["http-bind-address"])
    state_dir = Path(values["bolt-path"]).parent
    Path(values["engine-path"]).mkdir(parents=True, exist_ok=True)
    server = InfluxDB2StandIn(state_dir, host=host, port=port, record=False)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log("info", "Received signal, shutting down", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    log("info", "Listening", transport="http", addr=values["http-bind-address"], port=server.port)
    interval = config.go_duration_ns(values["storage-retention-check-interval"]) / 1e9
    while not stop.wait(timeout=max(interval, 1.0)):
        dropped = server.store.enforce_retention()
        if dropped:
            log("info", "Deleted shard groups past retention", shards=dropped)
    server.stop()
    log("info", "Stopped")
    return 0


def main(argv: list[str]) -> int:
    args = list(argv)
    if args[:1] == ["version"]:
        print(f"InfluxDB stand-in (homewatt tests) answering as {VERSION} (git: {COMMIT})")
        return 0
    command = "run"
    if args[:1] in (["run"], ["standin-init"]):
        command = args.pop(0)
    if args[:1] in (["-h"], ["--help"]):
        print(
            "influxd stand-in: run [--flag=value ...] | standin-init | version; flags: "
            + ", ".join(sorted(config.OPTIONS))
        )
        return 0
    try:
        values = options(args, dict(os.environ))
        if command == "standin-init":
            init_from_environment(values, dict(os.environ))
            return 0
        return serve(values)
    except (StartError, OSError) as exc:
        log("error", str(exc))
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
