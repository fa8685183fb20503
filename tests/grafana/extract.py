"""Every query in the generated files, as Grafana would run it: panel targets, template
variables and alert rules, each with where it comes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Found:
    where: str  # "homewatt-home / Energy today / A"
    query: str
    dashboard: dict[str, Any] | None = None
    panel: dict[str, Any] | None = None
    rule_query: dict[str, Any] | None = None  # an alert rule's data entry


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return [p for p in out if p["type"] != "row"]


def dashboard_queries(dashboards: dict[str, dict[str, Any]]) -> list[Found]:
    found = []
    for uid, dashboard in dashboards.items():
        for variable in dashboard["templating"]["list"]:
            found.append(
                Found(f"{uid} / variable {variable['name']}", variable["query"], dashboard)
            )
        for panel in panels(dashboard):
            for target in panel["targets"]:
                where = f"{uid} / {panel['title']} / {target['refId']}"
                found.append(Found(where, target["query"], dashboard, panel))
    return found


def rule_queries(rule_file: dict[str, Any], datasource_uid: str) -> list[Found]:
    found = []
    for group in rule_file["groups"]:
        for rule in group["rules"]:
            for query in rule["data"]:
                if query["datasourceUid"] == datasource_uid:
                    where = f"rule {rule['uid']} / {query['refId']}"
                    found.append(Found(where, query["model"]["query"], rule_query=query))
    return found
