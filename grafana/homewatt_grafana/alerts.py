"""Alert rules (Grafana unified alerting), written as a file-provisioning rule group.

Each rule is one InfluxQL query (refId A, over a relative time range), a reduce expression (B:
one number per series) and a threshold expression (C, the condition). The rules are built with
grafana-foundation-sdk's typed alerting builders and written in the file format Grafana reads
from provisioning/alerting/ (https://grafana.com/docs/grafana/latest/alerting/set-up/
provision-alerting-resources/file-provisioning/): a group with orgId, name, folder, interval and
rules, each rule with uid, title, condition, data, noDataState, execErrState, for, annotations
and labels.

The limits are role variables: `rule_group(contract, PLACEHOLDERS)` writes a marker per limit,
which `render.py` turns into a Jinja2 variable for the grafana role
(alerting/homewatt-rules.yaml.j2) and into the default value for
provisioning/alerting/homewatt-rules.yaml (the template rendered with the defaults, byte for
byte). Reduce, threshold and no-data evaluation happen inside Grafana
only; the tests run every rule's query against InfluxDB and check its numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as alerting_models
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from homewatt_grafana.contract import Contract
from homewatt_grafana.sdk import InfluxQL

FOLDER = "homewatt"
GROUP = "homewatt"
INTERVAL = "1m"
EXPRESSION = DataSourceRef(type_val="__expr__", uid="__expr__")


@dataclass(frozen=True)
class Limit:
    """A threshold the grafana role can set: `variable` in its defaults, `default` here."""

    variable: str
    default: float
    unit: str
    description: str


LIMITS = {
    limit.variable: limit
    for limit in (
        Limit(
            "grafana_alert_power_limit_w",
            7000,
            "W",
            "Mean power over 5 minutes above which 'Power above the limit' fires (e.g. the "
            "main fuse: 32 A x 230 V = 7360 W on one phase).",
        ),
        Limit(
            "grafana_alert_mains_voltage_min_v",
            100,
            "V",
            "A phase whose highest voltage in 2 minutes stays below this has lost its supply.",
        ),
        Limit(
            "grafana_alert_read_error_ratio",
            0.05,
            "errors per cycle",
            "Failed reads of one meter per cycle over 10 minutes above which 'Meter read "
            "errors' fires (1: every read fails).",
        ),
        Limit(
            "grafana_alert_outbox_growth_samples",
            600,
            "samples",
            "Growth of the outbox backlog within 15 minutes above which 'Outbox backlog "
            "growing' fires (a 1 s single-phase meter adds about 2 samples a second).",
        ),
        Limit(
            "grafana_alert_sas_expiry_days",
            14,
            "days",
            "Days before the Azure SAS's expiry (its se=) from which 'Backup SAS expiring' "
            "fires; after the expiry uploads fail.",
        ),
    )
}
PLACEHOLDERS: Mapping[str, float | str] = {name: f"@@{name}@@" for name in LIMITS}

Reducer = Literal["last", "mean", "max", "min", "sum"]
Comparison = Literal["gt", "lt"]
NoData = Literal["Alerting", "NoData", "OK"]


@dataclass(frozen=True)
class RuleSpec:
    uid: str
    title: str
    query: str
    range_s: int
    comparison: Comparison
    threshold: str | float  # a number, or the name of a limit in LIMITS
    severity: Literal["critical", "warning"]
    summary: str
    description: str
    runbook: str
    pending: str = "0s"
    no_data: NoData = "OK"
    reducer: Reducer = "last"


def specs() -> list[RuleSpec]:
    return [
        RuleSpec(
            uid="homewatt-mains-voltage-lost",
            title="Mains voltage lost",
            query='SELECT max("voltage_v") FROM "electricity" WHERE $timeFilter '
            'GROUP BY "site", "device", "channel"',
            range_s=120,
            comparison="lt",
            threshold="grafana_alert_mains_voltage_min_v",
            severity="critical",
            pending="1m",
            summary="No mains voltage on {{ $labels.device }} {{ $labels.channel }} at "
            "{{ $labels.site }}",
            description="The highest voltage measured in the last 2 minutes was "
            "{{ humanize $values.B.Value }} V, below @@grafana_alert_mains_voltage_min_v@@ V: "
            "the phase (or the whole supply) is off.",
            runbook="Check the main fuse and the residual-current breaker, then the grid "
            "operator's outage map; if other phases are fine, the meter's phase input.",
        ),
        RuleSpec(
            uid="homewatt-meter-silent",
            title="No data from a meter",
            query='SELECT moving_average(count("power_w"), 3) FROM "electricity" '
            "WHERE \"channel\" = 'total' AND \"source\" != 'emporia' AND $timeFilter "
            'GROUP BY time(1m), "site", "device" fill(0)',
            range_s=86400,
            comparison="lt",
            threshold=0.01,  # no reading at all in the window
            severity="critical",
            no_data="Alerting",
            summary="No data from meter {{ $labels.device }} at {{ $labels.site }} for 2 minutes",
            description="The meter wrote no reading for at least two whole minutes (samples per "
            "minute, averaged over the last three minutes: {{ humanize $values.B.Value }}). "
            "With no data from any meter in 24 h the rule reports NoData as alerting.",
            runbook="homewatt-collector outbox and journalctl -u homewatt-collector@<unit>: a "
            "timeout means wiring, termination or power of the meter; 'serial port is not there' "
            "the RS485 adapter; nothing at all the Pi or the collector.",
        ),
        RuleSpec(
            uid="homewatt-plug-silent",
            title="No data from a plug or circuit",
            query='SELECT moving_average(count("power_w"), 10) FROM "electricity" '
            'WHERE "source" =~ /^(shelly|emporia)$/ AND $timeFilter '
            'GROUP BY time(1m), "site", "source", "device" fill(0)',
            range_s=86400,
            comparison="lt",
            threshold=0.01,  # no reading at all in the window
            severity="warning",
            summary="No data from {{ $labels.source }} device {{ $labels.device }} at "
            "{{ $labels.site }} for 10 minutes",
            description="The Shelly device or the Emporia device (a Vue, a smart plug) wrote no "
            "reading of any channel for at least ten whole minutes (samples per minute, averaged "
            "over the last ten minutes: {{ humanize $values.B.Value }}). Emporia's data comes a "
            "minute or two late and is backfilled after an outage; every device of an Emporia "
            "account falls silent together when the account's login or the cloud fails.",
            runbook="journalctl -u homewatt-collector@<unit> names the device and the error; "
            "the Health dashboard's Backed off and Timeouts per meter show whether it is being "
            "retried. Shelly: is the plug powered and on the WiFi (curl http://<host>/shelly)? "
            "Emporia: does the Emporia app show data, and is the login (password file) right?",
        ),
        RuleSpec(
            uid="homewatt-source-stale",
            title="Collector instance silent",
            query='SELECT moving_average(count("cycle_lateness_ms"), 5) FROM "homewatt_health" '
            'WHERE $timeFilter GROUP BY time(1m), "site", "unit", "source" fill(0)',
            range_s=86400,
            comparison="lt",
            threshold=0.01,  # no point at all in the window
            severity="critical",
            no_data="Alerting",
            summary="No data from collector {{ $labels.unit }} ({{ $labels.source }}) at "
            "{{ $labels.site }} for 4 minutes",
            description="The collector instance wrote no health point (one per cycle) for at "
            "least four whole minutes: it is stopped, or its outbox cannot reach InfluxDB.",
            runbook="systemctl status homewatt-collector@<unit>; homewatt-collector outbox -c "
            "<config> shows the backlog; journalctl -u homewatt-collector@<unit> the cause.",
        ),
        RuleSpec(
            uid="homewatt-read-errors",
            title="Meter read errors",
            query='SELECT sum("read_errors") / count("read_errors") AS "errors_per_cycle" '
            'FROM "homewatt_device_health" WHERE $timeFilter GROUP BY "site", "device"',
            range_s=600,
            comparison="gt",
            threshold="grafana_alert_read_error_ratio",
            severity="warning",
            pending="5m",
            summary="Read errors on meter {{ $labels.device }} at {{ $labels.site }}",
            description="{{ humanize $values.B.Value }} failed reads per cycle of this meter "
            "over the last 10 minutes (limit @@grafana_alert_read_error_ratio@@; 1 means every "
            "read fails).",
            runbook="journalctl -u homewatt-collector@<unit> names the meter and the error "
            "(timeout, CRC, exception code); the Health dashboard's Timeouts per meter tells a "
            "silent meter from a noisy line; run homewatt-collector modbus scan on the line.",
        ),
        RuleSpec(
            uid="homewatt-outbox-growing",
            title="Outbox backlog growing",
            query='SELECT last("outbox_backlog") - first("outbox_backlog") AS "growth" '
            'FROM "homewatt_health" WHERE $timeFilter GROUP BY "site", "unit"',
            range_s=900,
            comparison="gt",
            threshold="grafana_alert_outbox_growth_samples",
            severity="warning",
            summary="Samples piling up in the outbox of {{ $labels.unit }} at {{ $labels.site }}",
            description="The backlog grew by {{ humanize $values.B.Value }} samples in 15 "
            "minutes (limit @@grafana_alert_outbox_growth_samples@@): InfluxDB is not taking "
            "them. Nothing is lost until the outbox is full.",
            runbook="Is InfluxDB up (docker ps; curl 127.0.0.1:8086/health)? Is the write "
            "token valid (HTTP 401 in journalctl -u homewatt-collector@<unit>)?",
        ),
        RuleSpec(
            uid="homewatt-outbox-dropping",
            title="Outbox full, samples dropped",
            query='SELECT sum("outbox_dropped") FROM "homewatt_health" WHERE $timeFilter '
            'GROUP BY "site", "unit"',
            range_s=600,
            comparison="gt",
            threshold=0,
            severity="critical",
            summary="Collector {{ $labels.unit }} at {{ $labels.site }} is losing samples",
            description="The outbox reached its size bound and dropped "
            "{{ humanize $values.B.Value }} of its oldest samples in the last 10 minutes.",
            runbook="Bring InfluxDB back first; raise outbox.max_size_mb in the instance's "
            "config if outages last longer than the outbox holds.",
        ),
        RuleSpec(
            uid="homewatt-power-limit",
            title="Power above the limit",
            query='SELECT mean("power_w") FROM "electricity" '
            'WHERE "channel" = \'total\' AND $timeFilter GROUP BY "site", "device"',
            range_s=300,
            comparison="gt",
            threshold="grafana_alert_power_limit_w",
            severity="warning",
            summary="{{ $labels.device }} at {{ $labels.site }} draws "
            "{{ humanize $values.B.Value }} W",
            description="Mean power over the last 5 minutes is above "
            "@@grafana_alert_power_limit_w@@ W.",
            runbook="Switch off a large load (oven, heater, car charger) before the main fuse "
            "trips; the Home dashboard's live power shows which load started.",
        ),
        RuleSpec(
            uid="homewatt-backup-failed",
            title="Backup failed",
            query='SELECT last("ok") FROM "homewatt_backup" WHERE $timeFilter GROUP BY "site"',
            range_s=10800,
            comparison="lt",
            threshold=1,
            severity="critical",
            summary="The last backup of {{ $labels.site }} failed",
            description="The newest homewatt_backup point of the last 3 hours says ok=0.",
            runbook="journalctl -u homewatt-backup -n 50 gives the cause; fix it and run "
            "sudo systemctl start homewatt-backup.service; homewatt-backup list shows the state.",
        ),
        RuleSpec(
            uid="homewatt-backup-overdue",
            title="No backup for 2 hours",
            query='SELECT moving_average(count("ok"), 13) FROM "homewatt_backup" '
            'WHERE $timeFilter GROUP BY time(10m), "site" fill(0)',
            range_s=172800,
            comparison="lt",
            threshold=0.01,  # no backup point at all in the window
            severity="critical",
            no_data="Alerting",
            summary="No backup of {{ $labels.site }} for more than 2 hours",
            description="No backup run reported in the last 2 hours (each run, good or bad, "
            "writes a homewatt_backup point). With no point at all in 48 h the rule reports "
            "NoData as alerting.",
            runbook="systemctl list-timers homewatt-backup.timer; systemctl status "
            "homewatt-backup.service; a wrong clock delays backups (timedatectl).",
        ),
        RuleSpec(
            uid="homewatt-backup-sas-expiring",
            title="Backup SAS expiring",
            query='SELECT last("sas_expires_in_days") FROM "homewatt_backup" WHERE $timeFilter '
            'GROUP BY "site"',
            range_s=172800,
            comparison="lt",
            threshold="grafana_alert_sas_expiry_days",
            severity="warning",
            summary="The Azure SAS of {{ $labels.site }}'s backups expires in "
            "{{ humanize $values.B.Value }} days",
            description="The newest homewatt_backup point of the last 48 hours says the SAS "
            "(the backup's Azure credential) expires in {{ humanize $values.B.Value }} days, "
            "less than @@grafana_alert_sas_expiry_days@@ (negative: expired). After its expiry "
            "every upload fails and backups stay on the Pi only. Sites without Azure write no "
            "such field and never fire.",
            runbook="terraform apply (in the last 30 days of a SAS it issues the next one), "
            "then write the site's SAS from `terraform output -json backup_sas_tokens` to the "
            "Pi's azure-sas credential file (README: Azure storage); sudo homewatt-backup "
            "check-config shows the new expiry.",
        ),
    ]


def _threshold(spec: RuleSpec, limits: Mapping[str, float | str]) -> float | str:
    if isinstance(spec.threshold, str):
        return limits[spec.threshold]
    return spec.threshold


def _text(text: str, limits: Mapping[str, float | str]) -> str:
    for name, value in limits.items():
        text = text.replace(f"@@{name}@@", str(value))
    return text


def _rule(contract: Contract, spec: RuleSpec, limits: Mapping[str, float | str]) -> alerting.Rule:
    query = (
        alerting.Query("A")
        .datasource_uid(contract.datasource_uid)
        .relative_time_range(alerting_models.RelativeTimeRange(from_val=spec.range_s, to=0))
        .model(InfluxQL(contract, "A", spec.query))
    )
    reduce = (
        alerting.Query("B")
        .datasource_uid("__expr__")
        .model(
            expr.TypeReduce()
            .ref_id("B")
            .datasource(EXPRESSION)
            .expression("A")
            .reducer(spec.reducer)
            .settings(expr.ExprTypeReduceSettings().mode("dropNN"))
        )
    )
    threshold = (
        alerting.Query("C")
        .datasource_uid("__expr__")
        .model(
            expr.TypeThreshold()
            .ref_id("C")
            .datasource(EXPRESSION)
            .expression("B")
            .conditions(
                [
                    expr.ExprTypeThresholdConditions().evaluator(
                        expr.ExprTypeThresholdConditionsEvaluator()
                        .type(spec.comparison)
                        .params([_threshold(spec, limits)])  # type: ignore[list-item]
                    )
                ]
            )
        )
    )
    return (
        alerting.Rule(spec.title)
        .uid(spec.uid)
        .condition("C")
        .queries([query, reduce, threshold])
        .no_data_state(spec.no_data)
        .exec_err_state("Error")
        .for_val(spec.pending)
        .labels({"severity": spec.severity, "homewatt": "true"})
        .annotations(
            {
                "summary": _text(spec.summary, limits),
                "description": _text(spec.description, limits),
                "runbook": spec.runbook,
            }
        )
        .is_paused(False)
    )


def rule_group(contract: Contract, limits: Mapping[str, float | str]) -> dict[str, Any]:
    """The provisioning file's content: one rule group in the 'homewatt' folder."""
    rules = []
    for spec in specs():
        api_json = json.loads(json.dumps(_rule(contract, spec, limits).build(), cls=JSONEncoder))
        # The SDK models the HTTP provisioning API; the file format keeps the rule's own fields
        # and takes the folder, the group and the org from the group around the rules.
        for key in ("folderUID", "orgID", "ruleGroup"):
            api_json.pop(key, None)
        rules.append(api_json)
    return {
        "apiVersion": 1,
        "groups": [
            {"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": INTERVAL, "rules": rules}
        ],
    }
