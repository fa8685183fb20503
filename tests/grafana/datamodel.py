"""What homewatt's code writes to InfluxDB, read from the code itself, and the check that a query
only names measurements, fields and tags in it (a query for data nothing writes is a defect).

- `electricity`: the tags and fields of a DemoSource sample, of the collector's Modbus and
  Shelly samples (real runs' lines), of an Emporia minute point (`schema.homewatt_sample`), and
  every field of every shipped meter template;
- `homewatt_health`: the tags and fields of the collector's health points (a real run's lines);
- `homewatt_backup`: the backup's `health_line()`;
- the long-term `electricity`: the contract's downsampling fields, with the source's tags;
- the long-term `energy_cost`: the points `homewatt-collector cost --write` makes of a bill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from homewatt_backup.models import Kind
from homewatt_backup.runner import health_line
from homewatt_collector.cost.bill import CounterSeries, Reading, Slot, compute_bill
from homewatt_collector.cost.tariff import Tariff
from homewatt_collector.cost.write import cost_lines
from homewatt_collector.sources.demo.config import DemoSourceConfig
from homewatt_collector.sources.demo.source import DemoSource
from homewatt_collector.sources.emporia import schema
from homewatt_collector.sources.emporia.ledger import ChannelState
from homewatt_collector.sources.modbus.meters import builtin_templates
from homewatt_grafana.contract import Contract
from homewatt_grafana.influxql import Statement, all_statements
from tests.grafana.circuits import emporia_channels
from tests.grafana.dataset import parse_line


@dataclass
class Measurement:
    tags: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)


Model = dict[tuple[str, str], Measurement]  # (retention policy, measurement) -> keys


def written_by_the_code(contract: Contract, collector_lines: list[str]) -> Model:
    raw, lt = contract.raw.name, contract.longterm.name
    model: Model = {}

    def add(rp: str, measurement: str, tags: set[str], fields: set[str]) -> None:
        entry = model.setdefault((rp, measurement), Measurement())
        entry.tags |= tags
        entry.fields |= fields

    demo = DemoSource(DemoSourceConfig(), site="x").read(1_700_000_000).samples[0]
    add(raw, demo.measurement, set(demo.tags), set(demo.fields))
    state = ChannelState(minute=0, total_kwh=1.0, export_kwh=1.0)
    emporia = schema.homewatt_sample("x", emporia_channels()[0], "1MIN", 60, 0.001, state)
    add(raw, emporia.measurement, set(emporia.tags), set(emporia.fields))
    for template_name in builtin_templates().names():
        template = builtin_templates().get(template_name)
        add(raw, "electricity", set(), {r.field for r in template.registers})
    for line in collector_lines:
        point = parse_line(line)
        add(raw, point.measurement, set(point.tags), set(point.fields))
    backup = parse_line(
        health_line(
            "s",
            Kind.HOURLY,
            ok=True,
            duration_s=1.0,
            size=1,
            pending=0,
            timestamp=1,
            sas_expires_in_days=1.0,  # written with Azure (README's data model)
        )
    )
    add(raw, backup.measurement, set(backup.tags), set(backup.fields))
    add(
        lt,
        contract.longterm_measurement,
        model[(raw, contract.source_measurement)].tags,
        {f.name for f in contract.fields},
    )
    tariff = Tariff.model_validate({"timezone": "Etc/UTC", "currency": "EUR", "import_price": 1})
    day = date(2026, 1, 1)
    counter = CounterSeries("m", "total", "energy_total_kwh", (Slot(0, 1, 1, 1),), Reading(0, 0))
    for line in cost_lines(compute_bill(tariff, day, day, [counter]), "s"):
        point = parse_line(line)
        add(lt, point.measurement, set(point.tags), set(point.fields))
    return model


def check(stmt: Statement, model: Model, default_rp: str) -> list[str]:
    """Problems with what `stmt` (and its subqueries) reads: unknown measurement, field or tag."""
    problems: list[str] = []
    for part in all_statements(stmt):
        if part.subqueries:
            columns = {c for sub in part.subqueries for c in sub.columns}
            group = {t for sub in part.subqueries for t in sub.tags}
            problems += [f"field {f!r} is no column of the subquery" for f in part.fields - columns]
            problems += [f"tag {t!r} is not grouped by in the subquery" for t in part.tags - group]
            continue
        if not part.sources:
            problems.append(f"{part.kind} names no measurement")
        for source in part.sources:
            if source.regex:
                problems.append(f"measurement regex {source.measurement}: name the measurement")
                continue
            key = (source.retention_policy or default_rp, source.measurement)
            known = model.get(key)
            if known is None:
                problems.append(f"{key[0]}.{key[1]}: no code writes this measurement")
                continue
            for name in sorted(part.fields - known.fields):
                problems.append(f"{key[0]}.{key[1]}: no code writes the field {name!r}")
            for name in sorted(part.tags - known.tags):
                problems.append(f"{key[0]}.{key[1]}: no code writes the tag {name!r}")
    return problems
