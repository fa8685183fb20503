"""Rich renderings of the `modbus` kind's commands: a meter's values by register (`modbus read`)
and the devices a scan found (`modbus scan`)."""

from __future__ import annotations

from rich.table import Table

from homewatt_collector.cli.display import format_value, quantity_of, unit_of
from homewatt_collector.sources.modbus.meters import RegisterSpec
from homewatt_collector.sources.modbus.scan import Found


def render_meter_reading(title: str, values: dict[RegisterSpec, float]) -> Table:
    """A meter's values by register: what `modbus read` prints."""
    table = Table(title=title, title_justify="left")
    for column in ("quantity", "channel", "value", "register", "note"):
        table.add_column(column, justify="right" if column in ("value", "register") else "left")
    for spec, value in sorted(values.items(), key=lambda kv: (kv[0].channel, kv[0].field)):
        unit = spec.unit or unit_of(spec.field)
        note = "" if spec.verified else "unverified address"
        register = f"{'FC03' if spec.function == 3 else 'FC04'} {spec.address:#06x}"
        table.add_row(
            quantity_of(spec.field),
            spec.channel,
            f"{format_value(value)} {unit}".strip(),
            register,
            note,
        )
    return table


def render_scan(found: list[Found]) -> Table:
    table = Table(title="devices that answered", title_justify="left")
    for column in ("id", "serial settings", "looks like"):
        table.add_column(column)
    for item in found:
        models = (
            ", ".join(item.models)
            or "unknown model (answers, no mains voltage where known meters keep it)"
        )
        table.add_row(str(item.device_id), item.settings.describe(), models)
    return table
