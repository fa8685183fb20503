"""Health: is the collector keeping time, reading its meters and delivering; are backups made."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import timeseries

from homewatt_grafana import queries as q
from homewatt_grafana.contract import Contract
from homewatt_grafana.dashboards import base, device_variable, site_variable
from homewatt_grafana.panels import (
    BYTES,
    COUNT,
    MS,
    SECONDS,
    TIME_AGO,
    Step,
    lay_out,
    series_panel,
    stat_panel,
)
from homewatt_grafana.sdk import InfluxQL

UID = "homewatt-health"

UNIT = (q.SITE,)
BY_UNIT = ("site", "unit")
ALIAS = "$tag_site $tag_unit"
METER = (q.SITE, q.DEVICE)
BY_METER = ("site", "device")
METER_ALIAS = "$tag_site $tag_device"
ANY_IS_BAD = (Step("green"), Step("red", 1))


def build(contract: Contract) -> dashboard_builders.Dashboard:
    def health_series(
        title: str,
        description: str,
        selection: tuple[str, str],
        unit: str,
        *,
        steps: tuple[Step, ...],
        fill: str = "null",
        bars: bool = False,
    ) -> timeseries.Panel:
        aggregate, field = selection
        query = q.series(aggregate, field, q.HEALTH, UNIT, BY_UNIT, fill=fill)
        return series_panel(
            contract,
            title,
            description,
            unit,
            [InfluxQL(contract, "A", query).alias(ALIAS)],
            steps=steps,
            bars=bars,
            decimals=0 if unit == COUNT else 1,
            min_interval="1s",
        )

    def meter_series(title: str, description: str, field: str) -> timeseries.Panel:
        query = q.series("sum", field, q.DEVICE_HEALTH, METER, BY_METER, fill="0")
        return series_panel(
            contract,
            title,
            description,
            COUNT,
            [InfluxQL(contract, "A", query).alias(METER_ALIAS)],
            steps=ANY_IS_BAD,
            bars=True,
            decimals=0,
            min_interval="1s",
        )

    lateness = health_series(
        "Loop lateness",
        "How late each cycle of a collector instance started (worst per interval). The 1 s loop "
        "aims for under 20 ms; hundreds of ms mean the Pi is overloaded.",
        ("max", "cycle_lateness_ms"),
        MS,
        steps=(Step("green"), Step("orange", 20), Step("red", 100)),
    )
    bus_time = health_series(
        "Bus time per cycle",
        "Time spent reading the meters in a cycle (mean per interval); a silent meter adds one "
        "timeout to every cycle.",
        ("mean", "read_duration_ms"),
        MS,
        steps=(Step("green"), Step("orange", 500), Step("red", 900)),
    )
    read_errors = health_series(
        "Read errors",
        "Failed meter reads per interval (timeouts, CRC errors, exception answers, impossible "
        "values), per collector instance.",
        ("sum", "read_errors"),
        COUNT,
        steps=ANY_IS_BAD,
        fill="0",
        bars=True,
    )
    skipped = health_series(
        "Skipped slots",
        "1 s slots a collector missed because a cycle overran (per interval); each one is a "
        "missing second of data.",
        ("sum", "skipped_slots"),
        COUNT,
        steps=ANY_IS_BAD,
        fill="0",
        bars=True,
    )
    backlog = health_series(
        "Outbox backlog",
        "Samples waiting on disk for the database (largest per interval, all sinks). It grows "
        "while InfluxDB is unreachable and drains when it is back; nothing is lost meanwhile.",
        ("max", "outbox_backlog"),
        COUNT,
        steps=(Step("green"), Step("orange", 600), Step("red", 36000)),
    )
    dropped = health_series(
        "Dropped from a full outbox",
        "Samples the outbox dropped because it reached its size bound (oldest first): data "
        "lost. Should stay 0.",
        ("sum", "outbox_dropped"),
        COUNT,
        steps=ANY_IS_BAD,
        fill="0",
        bars=True,
    )
    sink_errors = health_series(
        "Sink errors",
        "Failed writes to a database per interval (connection refused, timeouts, HTTP errors); "
        "the samples stay in the outbox and are retried.",
        ("sum", "sink_errors"),
        COUNT,
        steps=ANY_IS_BAD,
        fill="0",
        bars=True,
    )
    salvaged = health_series(
        "Salvaged from a damaged outbox",
        "Samples read back from an outbox file that was damaged (a power cut, a failing SD "
        "card) and moved aside at start: they are delivered after all. Not 0 means the Pi's "
        "storage had a problem; look at the journal.",
        ("sum", "outbox_salvaged"),
        COUNT,
        steps=(Step("green"), Step("orange", 1)),
        fill="0",
        bars=True,
    )
    rejected = health_series(
        "Rejected by the database",
        "Points InfluxDB dropped from a write it otherwise took (a 422 partial write: older "
        "than the bucket's retention, or a field type conflict): lost for the database.",
        ("sum", "sink_rejected"),
        COUNT,
        steps=ANY_IS_BAD,
        fill="0",
        bars=True,
    )
    restarts = health_series(
        "Worker restarts",
        "Unexpected exceptions a worker of the collector (the source loop, a sink's "
        "forwarder) survived and went on after: a bug to report, with the journal's line.",
        ("sum", "worker_restarts"),
        COUNT,
        steps=ANY_IS_BAD,
        fill="0",
        bars=True,
    )
    meter_errors = meter_series(
        "Read errors per meter",
        "Failed or rejected reads of each meter per interval (timeouts, CRC errors, exception "
        "answers, impossible values, implausible counters); of a Shelly device, its failed "
        "polls; of an Emporia device, its account's failed polls.",
        "read_errors",
    )
    meter_timeouts = meter_series(
        "Timeouts per meter",
        "Requests each meter left unanswered per interval: a meter that is off, unwired or "
        "at another address times out every cycle; a Shelly plug that is unplugged or off the "
        "WiFi at each retry.",
        "timeouts",
    )
    backed_off = series_panel(
        contract,
        "Backed off",
        "1 while a device is backed off, 0 while it is read on schedule (highest per "
        "interval). A Modbus meter silent in 3 cycles in a row is only probed every 30 s; a "
        "Shelly device whose poll failed is retried after 1, 2, 4... up to 60 s; an Emporia "
        "account whose poll failed after growing pauses (every device of the account).",
        COUNT,
        [
            InfluxQL(
                contract, "A", q.series("max", "backoff", q.DEVICE_HEALTH, METER, BY_METER)
            ).alias(METER_ALIAS)
        ],
        steps=ANY_IS_BAD,
        decimals=0,
        min_interval="1s",
    )
    last_ok = stat_panel(
        contract,
        "Since the last good read",
        "Seconds since each meter last answered with good values, at the collector's latest "
        "cycle (last five minutes); 0 when it answered then. A meter that never answered "
        "since the collector started has no value: see Timeouts per meter.",
        SECONDS,
        [
            InfluxQL(
                contract, "A", q.latest("last_ok_age_s", q.DEVICE_HEALTH, METER, BY_METER)
            ).alias(METER_ALIAS)
        ],
        steps=(Step("green"), Step("orange", 5), Step("red", 60)),
        decimals=0,
        time_from="5m",
    )
    errors_in_range = stat_panel(
        contract,
        "Read errors in range",
        "Failed meter reads in the dashboard's time range, per collector instance.",
        COUNT,
        [
            InfluxQL(
                contract,
                "A",
                f'SELECT sum("read_errors") FROM {q.HEALTH} WHERE {q.where(*UNIT, "$timeFilter")} '
                f"GROUP BY {q.tags(*BY_UNIT)}",
            ).alias(ALIAS)
        ],
        steps=ANY_IS_BAD,
        decimals=0,
    )
    backlog_now = stat_panel(
        contract,
        "Backlog now",
        "Samples waiting in each instance's outbox at its latest cycle (last five minutes).",
        COUNT,
        [InfluxQL(contract, "A", q.latest("outbox_backlog", q.HEALTH, UNIT, BY_UNIT)).alias(ALIAS)],
        steps=(Step("green"), Step("orange", 600), Step("red", 36000)),
        decimals=0,
        time_from="5m",
    )

    backup_filter = (q.SITE, '"ok" = 1')
    last_backup = InfluxQL(
        contract,
        "A",
        f'SELECT last("bytes") AS "bytes" FROM {q.BACKUP} '
        f'WHERE {q.where(*backup_filter, "$timeFilter")} GROUP BY "site"',
    ).alias("$tag_site")
    backup_age = stat_panel(
        contract,
        "Last successful backup",
        "When the newest backup that succeeded finished, per site (last seven days). Backups "
        "run hourly: more than two hours ago means they are failing or not running.",
        TIME_AGO,
        [last_backup],
        steps=(Step("green"),),
        time_from="7d",
        fields="/^Time$/",
    )
    backup_size = stat_panel(
        contract,
        "Size of the last successful backup",
        "Archive size of that backup (an hourly backup is small, the daily full one large).",
        BYTES,
        [last_backup],
        steps=(Step("green"),),
        decimals=1,
        time_from="7d",
    )
    failed = stat_panel(
        contract,
        "Failed backups in range",
        "Backup runs that failed in the dashboard's time range (each run writes ok=1 or ok=0).",
        COUNT,
        [
            InfluxQL(
                contract,
                "A",
                f'SELECT count("ok") - sum("ok") AS "failed" FROM {q.BACKUP} '
                f'WHERE {q.where(q.SITE, "$timeFilter")} GROUP BY "site"',
            ).alias("$tag_site")
        ],
        steps=ANY_IS_BAD,
        decimals=0,
    )
    pending = stat_panel(
        contract,
        "Uploads waiting",
        "Backups made but not yet uploaded to Azure (retried at every run), at the latest run.",
        COUNT,
        [
            InfluxQL(
                contract, "A", q.latest("pending_uploads", q.BACKUP, (q.SITE,), ("site",))
            ).alias("$tag_site")
        ],
        steps=(Step("green"), Step("orange", 1), Step("red", 3)),
        decimals=0,
        time_from="7d",
    )
    durations = series_panel(
        contract,
        "Backup duration",
        "How long each backup run took, by kind (hourly incremental, daily full).",
        SECONDS,
        [
            InfluxQL(
                contract,
                "A",
                q.series("max", "duration_s", q.BACKUP, (q.SITE,), ("site", "kind")),
            ).alias("$tag_site $tag_kind")
        ],
        steps=(Step("green"), Step("orange", 600), Step("red", 1800)),
        bars=True,
        decimals=1,
    )

    board = base(
        contract,
        UID,
        "homewatt: health",
        "Is each collector keeping time, reading its meters and delivering to InfluxDB, and are "
        "the backups being made and uploaded.",
        "now-6h",
    )
    board = board.with_variable(site_variable(contract))
    board = board.with_variable(device_variable(contract, "homewatt_device_health"))
    return lay_out(
        board,
        [
            (
                "Collector",
                [
                    (errors_in_range, 12, 4),
                    (backlog_now, 12, 4),
                    (lateness, 12, 8),
                    (bus_time, 12, 8),
                    (read_errors, 8, 8),
                    (skipped, 8, 8),
                    (restarts, 8, 8),
                ],
            ),
            (
                "Meters, plugs and cloud accounts",
                [
                    (last_ok, 24, 4),
                    (meter_errors, 8, 8),
                    (meter_timeouts, 8, 8),
                    (backed_off, 8, 8),
                ],
            ),
            (
                "Delivery",
                [
                    (backlog, 12, 8),
                    (sink_errors, 12, 8),
                    (dropped, 8, 8),
                    (salvaged, 8, 8),
                    (rejected, 8, 8),
                ],
            ),
            (
                "Backups",
                [
                    (backup_age, 6, 5),
                    (backup_size, 6, 5),
                    (failed, 6, 5),
                    (pending, 6, 5),
                    (durations, 24, 7),
                ],
            ),
        ],
    )
