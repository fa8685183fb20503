"""influxd's configuration names and value formats, so the stand-in refuses what influxd refuses.

Reconstructed from influxdb v2.7.12 cmd/influxd/launcher/cmd.go (InfluxdOpts.BindCliOpts: each
option is the flag `--name` and the environment variable INFLUXD_NAME, upper case with `-` as
`_`; value types from InfluxdOpts, tsdb/config.go, storage/config.go and the retention,
precreator and coordinator configs), toml/toml.go (a Size is go-humanize ParseBytes text, a
Duration Go's time.ParseDuration text), and the influx CLI's duration parser
(influx-cli v2.7.5 pkg/duration: ns us µs ms s m h d w, for DOCKER_INFLUXDB_INIT_RETENTION).
influxd ignores INFLUXD_ variables it does not know; the stand-in does too but names them.
"""

from __future__ import annotations

import re

# flag -> kind: bool | int | duration | size | string | level | map
OPTIONS: dict[str, str] = {
    "log-level": "level",
    "flux-log-enabled": "bool",
    "tracing-type": "string",
    "bolt-path": "string",
    "sqlite-path": "string",
    "assets-path": "string",
    "store": "string",
    "e2e-testing": "bool",
    "testing-always-allow-setup": "bool",
    "engine-path": "string",
    "secret-store": "string",
    "reporting-disabled": "bool",
    "pid-file": "string",
    "overwrite-pid-file": "bool",
    "session-length": "int",
    "session-renew-disabled": "bool",
    "vault-addr": "string",
    "vault-client-timeout": "duration",
    "vault-max-retries": "int",
    "vault-cacert": "string",
    "vault-capath": "string",
    "vault-client-cert": "string",
    "vault-client-key": "string",
    "vault-skip-verify": "bool",
    "vault-tls-server-name": "string",
    "vault-token": "string",
    "http-bind-address": "string",
    "http-read-header-timeout": "duration",
    "http-read-timeout": "duration",
    "http-write-timeout": "duration",
    "http-idle-timeout": "duration",
    "tls-cert": "string",
    "tls-key": "string",
    "tls-min-version": "string",
    "tls-strict-ciphers": "bool",
    "no-tasks": "bool",
    "query-concurrency": "int",
    "query-initial-memory-bytes": "int",
    "query-memory-bytes": "int",
    "query-max-memory-bytes": "int",
    "query-queue-size": "int",
    "feature-flags": "map",
    "instance-id": "string",
    "storage-write-timeout": "duration",
    "storage-wal-fsync-delay": "duration",
    "storage-wal-max-concurrent-writes": "int",
    "storage-wal-max-write-delay": "duration",
    "storage-wal-flush-on-shutdown": "bool",
    "storage-validate-keys": "bool",
    "storage-no-validate-field-size": "bool",
    "storage-cache-max-memory-size": "size",
    "storage-cache-snapshot-memory-size": "size",
    "storage-cache-snapshot-write-cold-duration": "duration",
    "storage-compact-full-write-cold-duration": "duration",
    "storage-compact-throughput-burst": "size",
    "storage-max-concurrent-compactions": "int",
    "storage-max-index-log-file-size": "size",
    "storage-series-id-set-cache-size": "int",
    "storage-series-file-max-concurrent-snapshot-compactions": "int",
    "storage-tsm-use-madv-willneed": "bool",
    "storage-retention-check-interval": "duration",
    "storage-shard-precreator-check-interval": "duration",
    "storage-shard-precreator-advance-period": "duration",
    "influxql-max-select-point": "int",
    "influxql-max-select-series": "int",
    "influxql-max-select-buckets": "int",
    "nats-port": "int",
    "nats-max-payload-bytes": "int",
    "pprof-disabled": "bool",
    "metrics-disabled": "bool",
    "ui-disabled": "bool",
    "hardening-enabled": "bool",
    "template-file-urls-disabled": "bool",
    "strong-passwords": "bool",
}

_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0")
_GO_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
# go-humanize bytesSizeTable (ParseBytes lower-cases the unit)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "ki": 2**10,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mi": 2**20,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gi": 2**30,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "ti": 2**40,
    "tib": 2**40,
    "p": 10**15,
    "pb": 10**15,
    "pi": 2**50,
    "pib": 2**50,
    "e": 10**18,
    "eb": 10**18,
    "ei": 2**60,
    "eib": 2**60,
}
_INFLUX_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
    "w": 7 * 86400 * 10**9,
}


def env_name(flag: str) -> str:
    return "INFLUXD_" + flag.upper().replace("-", "_")


def go_duration_ns(text: str) -> int:
    """time.ParseDuration."""
    if not _GO_DURATION.fullmatch(text):
        raise ValueError(f'time: invalid duration "{text}"')
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for number, unit in re.findall(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text):
        total += float(number) * _GO_UNITS[unit]
    return sign * int(total)


def size_bytes(text: str) -> int:
    """go-humanize ParseBytes: a number, optional spaces, an optional unit."""
    match = re.fullmatch(r"([0-9.,]+)\s*([A-Za-z]*)", text.strip())
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"unhandled size name: {text!r}" if match else f"invalid size {text!r}")
    return int(float(match.group(1).replace(",", "")) * _SIZE_UNITS[match.group(2).lower()])


def check(flag: str, value: str) -> None:
    """Raise ValueError when influxd would refuse this value."""
    kind = OPTIONS[flag]
    if kind == "bool" and value not in (
        "1",
        "t",
        "T",
        "TRUE",
        "true",
        "True",
        "0",
        "f",
        "F",
        "FALSE",
        "false",
        "False",
    ):
        raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
    if kind == "int" and not re.fullmatch(r"[-+]?\d+", value):
        raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    if kind == "duration":
        go_duration_ns(value)
    if kind == "size":
        size_bytes(value)
    if kind == "level" and value not in (
        "debug",
        "info",
        "warn",
        "error",
        "dpanic",
        "panic",
        "fatal",
    ):
        raise ValueError(f'unrecognized level: "{value}"')


def influx_duration_ns(text: str) -> int:
    """The influx CLI's RawDurationToTimeDuration (e.g. 30d, 1w, 720h, 0 = infinite)."""
    if text in ("", "0"):
        return 0
    parts = re.findall(r"(\d+)(ns|us|µs|ms|s|m|h|d|w)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'failed to parse "{text}": invalid duration')
    return sum(int(n) * _INFLUX_UNITS[u] for n, u in parts)
