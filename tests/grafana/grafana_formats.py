"""Checks of provisioning files against the formats Grafana documents and reads (no Grafana runs
here). Each checker returns a list of problems (empty: valid), one line each.

- Alert rules: https://grafana.com/docs/grafana/latest/alerting/set-up/provision-alerting-resources/
  file-provisioning/ and the structs Grafana unmarshals them into
  (pkg/services/provisioning/alerting/rules_types.go: AlertRuleGroupV1, AlertRuleV1, QueryV1,
  and their mapToModel checks: a group name and folder, a parseable interval, each rule a uid, a
  title, a condition naming one of its queries, data, a parseable `for`, known noDataState and
  execErrState), server-side expressions as Grafana's expression queries define them
  (pkg/expr: math, reduce, resample, classic_conditions, threshold).
- Data sources and dashboard providers: https://grafana.com/docs/grafana/latest/administration/
  provisioning/ (keys of `datasources:` and `providers:`).
"""

from __future__ import annotations

import re
from typing import Any

# Prometheus model.ParseDuration, which Grafana uses for interval and `for`.
DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
UID = re.compile(r"^[a-zA-Z0-9\-_]{1,40}$")
GROUP_KEYS = {"orgId", "name", "folder", "interval", "rules"}
RULE_KEYS = {
    "uid", "title", "condition", "data", "dashboardUid", "panelId", "noDataState",
    "execErrState", "for", "keepFiringFor", "annotations", "labels", "isPaused",
    "notification_settings", "record", "missing_series_evals_to_resolve",
}  # fmt: skip
QUERY_KEYS = {"refId", "queryType", "relativeTimeRange", "datasourceUid", "model"}
NO_DATA = {"Alerting", "NoData", "OK", "KeepLast"}
EXEC_ERR = {"Alerting", "Error", "OK", "KeepLast"}
EXPRESSION_TYPES = {"math", "reduce", "resample", "classic_conditions", "threshold"}
REDUCERS = {"sum", "mean", "min", "max", "count", "last", "median"}
EVALUATORS = {
    "gt", "lt", "eq", "ne", "gte", "lte", "within_range", "outside_range",
    "within_range_included", "outside_range_included",
}  # fmt: skip
DATASOURCE_KEYS = {
    "name", "type", "access", "orgId", "uid", "url", "user", "database", "basicAuth",
    "basicAuthUser", "withCredentials", "isDefault", "jsonData", "secureJsonData", "version",
    "editable",
}  # fmt: skip
PROVIDER_KEYS = {
    "name", "orgId", "folder", "folderUid", "type", "disableDeletion", "updateIntervalSeconds",
    "allowUiUpdates", "options",
}  # fmt: skip


def _duration_ok(text: object) -> bool:
    return isinstance(text, str) and text != "" and DURATION.match(text) is not None


def alert_rule_file(data: Any, datasource_uids: set[str]) -> list[str]:
    problems: list[str] = []
    if not isinstance(data, dict) or data.get("apiVersion") != 1:
        return ["apiVersion 1 expected"]
    groups = data.get("groups")
    if not isinstance(groups, list) or not groups:
        return ["no groups"]
    uids: set[str] = set()
    for group in groups:
        problems += [f"group: unknown key {k!r}" for k in set(group) - GROUP_KEYS]
        name = group.get("name", "")
        if not isinstance(name, str) or not name.strip():
            problems.append("rule group has no name set")
        if not isinstance(group.get("folder"), str) or not group["folder"].strip():
            problems.append(f"group {name}: no folder set")
        if not _duration_ok(group.get("interval")):
            problems.append(f"group {name}: interval {group.get('interval')!r} does not parse")
        titles: set[str] = set()
        for rule in group.get("rules") or []:
            problems += _rule(rule, datasource_uids, uids, titles)
    return problems


def _rule(
    rule: dict[str, Any], datasource_uids: set[str], uids: set[str], titles: set[str]
) -> list[str]:
    title = rule.get("title")
    where = f"rule {title!r}"
    problems = [f"{where}: unknown key {k!r}" for k in set(rule) - RULE_KEYS]
    if not isinstance(title, str) or not title:
        problems.append("rule has no title set")
    elif title in titles:
        problems.append(f"{where}: title used twice in the group")
    titles.add(str(title))
    uid = rule.get("uid")
    if not isinstance(uid, str) or not UID.match(uid):
        problems.append(f"{where}: uid {uid!r} (1-40 letters, digits, - and _)")
    elif uid in uids:
        problems.append(f"{where}: uid {uid} used twice")
    uids.add(str(uid))
    if "for" in rule and rule["for"] != "0s" and not _duration_ok(rule["for"]):
        problems.append(f"{where}: for {rule['for']!r} does not parse")
    if rule.get("noDataState") not in NO_DATA:
        problems.append(f"{where}: noDataState {rule.get('noDataState')!r}")
    if rule.get("execErrState") not in EXEC_ERR:
        problems.append(f"{where}: execErrState {rule.get('execErrState')!r}")
    for key in ("annotations", "labels"):
        values = rule.get(key) or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
            problems.append(f"{where}: {key} must map strings to strings")
    data = rule.get("data")
    if not isinstance(data, list) or not data:
        return [*problems, f"{where}: no data set"]
    ref_ids: list[str] = []
    for query in data:
        problems += _query(where, query, datasource_uids, ref_ids)
        ref_ids.append(query.get("refId", ""))
    if rule.get("condition") not in ref_ids:
        problems.append(f"{where}: condition {rule.get('condition')!r} names no query")
    return problems


def _query(
    where: str, query: dict[str, Any], datasource_uids: set[str], earlier: list[str]
) -> list[str]:
    ref = query.get("refId")
    where = f"{where} query {ref!r}"
    problems = [f"{where}: unknown key {k!r}" for k in set(query) - QUERY_KEYS]
    model = query.get("model")
    if not isinstance(model, dict):
        return [*problems, f"{where}: no model"]
    if model.get("refId") != ref:
        problems.append(f"{where}: model.refId {model.get('refId')!r} differs")
    uid = query.get("datasourceUid")
    if uid == "__expr__":
        return problems + _expression(where, model, earlier)
    if uid not in datasource_uids:
        problems.append(f"{where}: datasource uid {uid!r} is not provisioned")
    relative = query.get("relativeTimeRange") or {}
    if not isinstance(relative.get("from"), int) or relative["from"] <= relative.get("to", 0):
        problems.append(f"{where}: relativeTimeRange {relative!r}")
    return problems


def _expression(where: str, model: dict[str, Any], earlier: list[str]) -> list[str]:
    problems = []
    kind = model.get("type")
    if kind not in EXPRESSION_TYPES:
        return [f"{where}: expression type {kind!r}"]
    if model.get("expression") not in earlier:
        problems.append(f"{where}: expression {model.get('expression')!r} names no query")
    if kind == "reduce":
        if model.get("reducer") not in REDUCERS:
            problems.append(f"{where}: reducer {model.get('reducer')!r}")
        mode = (model.get("settings") or {}).get("mode", "")
        if mode not in ("", "dropNN", "replaceNN"):
            problems.append(f"{where}: reduce mode {mode!r}")
    if kind == "threshold":
        for condition in model.get("conditions") or [None]:
            evaluator = (condition or {}).get("evaluator") or {}
            params = evaluator.get("params")
            if evaluator.get("type") not in EVALUATORS:
                problems.append(f"{where}: evaluator {evaluator.get('type')!r}")
            if not isinstance(params, list) or not all(
                isinstance(p, int | float) and not isinstance(p, bool) for p in params
            ):
                problems.append(f"{where}: evaluator params {params!r} are not numbers")
    return problems


def datasource_file(data: Any) -> list[str]:
    if not isinstance(data, dict) or data.get("apiVersion") != 1:
        return ["apiVersion 1 expected"]
    problems = []
    for ds in data.get("datasources") or []:
        problems += [f"datasource: unknown key {k!r}" for k in set(ds) - DATASOURCE_KEYS]
        for key in ("name", "type", "uid", "access"):
            if not isinstance(ds.get(key), str) or not ds[key]:
                problems.append(f"datasource: {key} missing")
        if ds.get("access") not in ("proxy", "direct"):
            problems.append(f"datasource: access {ds.get('access')!r}")
    return problems


def dashboard_provider_file(data: Any) -> list[str]:
    if not isinstance(data, dict) or data.get("apiVersion") != 1:
        return ["apiVersion 1 expected"]
    problems = []
    for provider in data.get("providers") or []:
        problems += [f"provider: unknown key {k!r}" for k in set(provider) - PROVIDER_KEYS]
        if provider.get("type") != "file":
            problems.append(f"provider: type {provider.get('type')!r}")
        if not isinstance((provider.get("options") or {}).get("path"), str):
            problems.append("provider: options.path missing")
    return problems
