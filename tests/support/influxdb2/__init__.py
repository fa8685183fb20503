"""InfluxDB 2 stand-in (NOT InfluxDB): see README section in this docstring (to be written)."""

from .server import COMMIT, VERSION, InfluxDB2StandIn, Recorded, Reply

__all__ = ["COMMIT", "VERSION", "InfluxDB2StandIn", "Recorded", "Reply"]
