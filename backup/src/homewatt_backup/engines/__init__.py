"""The database engines behind one protocol (protocol.DatabaseEngine): InfluxDB 1.x
(influxdb1.py) and InfluxDB 2.x (influxdb2.py), sharing an HTTP client (http.py); InfluxDB 2's
annotated CSV is read by annotated_csv.py."""

from __future__ import annotations

from homewatt_backup.config import InfluxDB1Config, InfluxDB2Config, Secrets
from homewatt_backup.engines.influxdb1 import InfluxDB1Engine
from homewatt_backup.engines.influxdb2 import InfluxDB2Engine
from homewatt_backup.engines.protocol import DatabaseEngine

__all__ = ["DatabaseEngine", "make_engine"]


def make_engine(
    config: InfluxDB1Config | InfluxDB2Config,
    secrets: Secrets,
    chunk_hours: float = 1,
    attempts: int = 3,
) -> DatabaseEngine:
    """The engine for the config's `influxdb:` section; `attempts` per HTTP request on a
    connection failure or 5xx (5 s to connect each time)."""
    if isinstance(config, InfluxDB2Config):
        return InfluxDB2Engine(config, secrets, chunk_hours, attempts=attempts)
    return InfluxDB1Engine(config, secrets, chunk_hours, attempts=attempts)
