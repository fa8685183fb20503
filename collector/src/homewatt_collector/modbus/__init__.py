"""Modbus RTU: request planning and decoding (pure), the serial bus, and scanning a line."""
