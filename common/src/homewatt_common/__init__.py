"""What both homewatt apps do, done once: config files, error lines, secrets, the clock check."""

__version__ = "0.1.0"
