"""Writing measurement `energy_cost`: one point per local day, (device, channel) and period,
and one bill point per day, through homewatt_common's line-protocol encoder and the v1 `/write`.

- Tags: `site`, `device`, `channel`, `period` (a tariff period, `export`, or `bill` for the
  day's bill, which has no device and channel). Fields: `energy` (kWh, float) and `cost`
  (the tariff's currency, float; negative for export).
- Timestamp: the local midnight that starts the day (unix seconds), so a re-run for the same day
  writes the same series and timestamps and InfluxDB overwrites the points (idempotent), and a
  past range can be recomputed. Every period of the tariff is written for every series, zeros
  included, so a recomputation replaces every point an earlier run wrote with that tariff.
- Only the channels and devices that make the bill carry costs that add up: the `bill` point of
  a day is their sum plus the standing charge (sum `cost` WHERE period = 'bill' for a bill).
"""

from __future__ import annotations

from homewatt_collector.cost.bill import BILL, Bill, day_start
from homewatt_collector.cost.v1api import V1Client
from homewatt_common.lineprotocol import encode_line

MEASUREMENT = "energy_cost"


def cost_lines(bill: Bill, site: str) -> list[str]:
    """The energy_cost points of `bill` as line protocol (second precision)."""
    lines = []
    for line in bill.lines:
        lines.append(
            encode_line(
                MEASUREMENT,
                {
                    "site": site,
                    "device": line.device,
                    "channel": line.channel,
                    "period": line.period,
                },
                {"energy": float(line.energy_kwh), "cost": float(line.cost)},
                day_start(line.day, bill.tariff),
            )
        )
    for day in bill.day_bills:
        lines.append(
            encode_line(
                MEASUREMENT,
                {"site": site, "period": BILL},
                {"energy": float(day.energy_kwh), "cost": float(day.cost)},
                day_start(day.day, bill.tariff),
            )
        )
    return lines


def write_bill(client: V1Client, bill: Bill, site: str, retention_policy: str = "") -> int:
    """Write `bill`'s points; the number written."""
    lines = cost_lines(bill, site)
    for first in range(0, len(lines), 5000):
        client.write(lines[first : first + 5000], retention_policy)
    return len(lines)
