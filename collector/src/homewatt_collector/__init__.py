"""homewatt-collector: meters and devices -> durable outbox -> InfluxDB."""

__version__ = "0.1.0"
