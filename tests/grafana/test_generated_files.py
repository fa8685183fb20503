"""The files under grafana/ are what the code generates, follow the house rules (style.md's
Grafana section), load into grafana-foundation-sdk's models, and match Grafana's provisioning
formats and the contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from homewatt_grafana import alerts, render
from homewatt_grafana.contract import Contract
from tests.grafana import grafana_formats
from tests.grafana.conftest import GRAFANA_DIR
from tests.grafana.extract import panels

REPO = GRAFANA_DIR.parent
UNITS = {"watt", "kwatth", "volt", "amp", "hertz", "ms", "s", "decbytes", "short", "none",
         "dateTimeFromNow"}  # fmt: skip


def yaml_file(name: str) -> Any:
    return yaml.safe_load((GRAFANA_DIR / name).read_text())


def test_committed_files_are_what_the_code_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA_DIR / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_generated_file_is_left_over(generated: dict[str, str]) -> None:
    on_disk = {
        str(p.relative_to(GRAFANA_DIR))
        for folder in ("dashboards", "provisioning", "alerting")
        for p in (GRAFANA_DIR / folder).rglob("*")
        if p.is_file()
    }
    assert on_disk == set(generated)


def test_dashboards_are_shareable_by_uid(
    dashboards: dict[str, dict[str, Any]], contract: Contract
) -> None:
    assert set(dashboards) == {
        "homewatt-home",
        "homewatt-energy",
        "homewatt-health",
        "homewatt-circuits",
    }
    for uid, dashboard in dashboards.items():
        assert dashboard["id"] is None, uid
        assert "__inputs" not in dashboard, uid
        assert 8 <= len(uid) <= 40, uid
        assert dashboard["timezone"] == contract.dashboard_timezone
        assert dashboard["weekStart"] == "monday"
        refs = _datasource_refs(dashboard)
        assert refs and all(r == {"type": "influxdb", "uid": contract.datasource_uid} for r in refs)


def _datasource_refs(node: Any) -> list[Any]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            else:
                found += _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _datasource_refs(item)
    return found


def test_every_panel_has_a_title_a_description_a_unit_and_thresholds(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for uid, dashboard in dashboards.items():
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), uid
        for panel in panels(dashboard):
            where = f"{uid}: {panel.get('title')!r}"
            assert panel.get("title"), where
            assert len(panel.get("description", "")) > 40, where
            defaults = panel["fieldConfig"]["defaults"]
            assert defaults.get("unit") in UNITS, where
            steps = defaults["thresholds"]["steps"]
            assert steps[0]["value"] is None and steps[0]["color"], where
            values = [s["value"] for s in steps[1:]]
            assert values == sorted(values), where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["rawQuery"] is True and target["query"], where


def test_dashboards_load_into_the_sdk_models(dashboards: dict[str, dict[str, Any]]) -> None:
    for uid, data in dashboards.items():
        model = Dashboard.from_json(data)
        again = json.loads(json.dumps(model, cls=JSONEncoder))
        again["id"] = None
        assert again == data, f"{uid} does not survive Dashboard.from_json/to_json"


def test_schema_version_is_the_one_the_readme_names_as_minimum(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    readme = (GRAFANA_DIR / "README.md").read_text()
    versions = {d["schemaVersion"] for d in dashboards.values()}
    assert versions == {41}
    assert "schemaVersion 41" in readme


def test_datasource_follows_the_contracts(contract: Contract) -> None:
    data = yaml_file("provisioning/datasources/homewatt.yaml")
    assert grafana_formats.datasource_file(data) == []
    (ds,) = data["datasources"]
    secrets = json.loads((REPO / "contracts" / "secrets.json").read_text())
    token = secrets["secrets"]["influxdb-grafana-token"]
    (key,) = token["config_keys"]
    assert key["app"] == "grafana"
    assert key["key"] == "datasource secureJsonData.httpHeaderValue1"
    assert ds["secureJsonData"]["httpHeaderValue1"] == key["value"]
    assert contract.token_container_path in key["value"]
    assert ds["uid"] == contract.datasource_uid and ds["type"] == "influxdb"
    assert ds["url"] == "${" + contract.url_env + "}"
    assert ds["editable"] is False
    assert ds["jsonData"] == {
        "version": "InfluxQL",
        "dbName": contract.database,
        "httpMode": contract.http_method,
        "timeInterval": "1s",
        "httpHeaderName1": "Authorization",
    }


def test_dashboard_provider_forbids_ui_changes_and_finds_the_dashboards(
    contract: Contract,
) -> None:
    data = yaml_file("provisioning/dashboards/homewatt.yaml")
    assert grafana_formats.dashboard_provider_file(data) == []
    (provider,) = data["providers"]
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is True
    assert provider["options"]["path"] == contract.dashboards_dir
    contract_files = json.loads((REPO / "contracts" / "influxdb-grafana.json").read_text())
    layout = contract_files["grafana_files"]
    assert contract.dashboards_dir == layout["container_dir"] + "/dashboards"
    assert layout["provisioning_env"].endswith(layout["container_dir"] + "/provisioning")


def test_alert_rules_match_grafanas_provisioning_format(contract: Contract) -> None:
    data = yaml_file(render.RULES)
    assert grafana_formats.alert_rule_file(data, {contract.datasource_uid}) == []
    rules = data["groups"][0]["rules"]
    assert len(rules) == len(alerts.specs())
    for rule in rules:
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"] and annotations["runbook"]
        assert "${" not in json.dumps(rule), "Grafana would expand ${...} from its environment"


def test_the_format_checker_catches_a_broken_rule(contract: Contract) -> None:
    data = yaml_file(render.RULES)
    rule = data["groups"][0]["rules"][0]
    rule["condition"] = "Z"
    rule["for"] = "5 minutes"
    rule["data"][2]["model"]["conditions"][0]["evaluator"]["params"] = ["{{ limit }}"]
    problems = grafana_formats.alert_rule_file(data, {contract.datasource_uid})
    assert any("condition 'Z'" in p for p in problems)
    assert any("for '5 minutes'" in p for p in problems)
    assert any("are not numbers" in p for p in problems)


def test_the_role_template_renders_to_the_rule_file_with_the_default_limits() -> None:
    template = (GRAFANA_DIR / render.RULES_TEMPLATE).read_text()
    limits = yaml_file(render.LIMITS)
    assert set(limits) == set(alerts.LIMITS)
    rendered = jinja2.Template(template, keep_trailing_newline=True).render(
        {name: spec["default"] for name, spec in limits.items()}
    )
    assert rendered == (GRAFANA_DIR / render.RULES).read_text()
    changed = yaml.safe_load(
        jinja2.Template(template).render(
            {name: spec["default"] * 2 for name, spec in limits.items()}
        )
    )
    thresholds = [
        rule["data"][2]["model"]["conditions"][0]["evaluator"]["params"][0]
        for rule in changed["groups"][0]["rules"]
    ]
    assert 14000 in thresholds and 200 in thresholds and 0.1 in thresholds


def test_generated_yaml_passes_yamllint() -> None:
    targets = [str(GRAFANA_DIR / "provisioning"), str(GRAFANA_DIR / render.LIMITS)]
    result = subprocess.run(
        [str(Path(sys.executable).with_name("yamllint")), "--strict", *targets],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["README.md"])
def test_readme_describes_every_panel_and_rule(
    name: str, dashboards: dict[str, dict[str, Any]]
) -> None:
    readme = (GRAFANA_DIR / name).read_text()
    for dashboard in dashboards.values():
        assert dashboard["uid"] in readme
        for panel in panels(dashboard):
            assert f"**{panel['title']}**" in readme, panel["title"]
    for spec in alerts.specs():
        assert f"**{spec.title}**" in readme, spec.title
    for limit in alerts.LIMITS:
        assert limit in readme, limit
