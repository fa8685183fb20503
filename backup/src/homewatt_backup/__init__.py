"""homewatt-backup: InfluxDB backups to Azure Blob Storage, and restore."""

__version__ = "0.1.0"
