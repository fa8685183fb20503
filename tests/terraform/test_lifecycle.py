"""Lifecycle rules, immutability and SAS timing: the derived values (locals.tf evaluated by
Terraform) and the policy that consumes them (main.tf parsed by python-hcl2)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.terraform.support import TERRAFORM_DIR, Harness, Module, inputs, unwrap

SITES = {
    "home": {},
    "cabin-2": {"retention": "rotation"},
    "vault": {"immutability_days": 7},
}


@pytest.fixture(scope="module")
def evaluated(harness: Harness) -> dict[str, Any]:
    outputs = harness.outputs(inputs(sites=SITES), "lifecycle")
    return outputs["harness_locals"]["value"]


def documented_retention() -> dict[str, tuple[int | None, int]]:
    """The retention table in terraform/README.md: kind -> (cool after, delete after)."""
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- retention-table -->(.*?)<!-- /retention-table -->", readme, re.DOTALL)
    assert table, "terraform/README.md lost its retention table markers"
    rows = {}
    for line in table[1].strip().splitlines()[2:]:
        kind, cool, delete = (cell.strip() for cell in line.strip("|").split("|"))
        rows[kind] = (None if cool == "never" else int(cool), int(delete))
    return rows


def test_the_documented_retention_is_the_default(main: Module, contract: dict[str, Any]) -> None:
    default = main.variables["backup_retention"]["default"]
    assert set(default) == set(contract["backup_kinds"])
    assert documented_retention() == {
        kind: (spec["cool_after_days"], spec["delete_after_days"]) for kind, spec in default.items()
    }


def test_one_rule_per_site_and_backup_kind(
    evaluated: dict[str, Any], contract: dict[str, Any]
) -> None:
    rules = evaluated["lifecycle_rules"]
    assert set(rules) == {f"{site}-{kind}" for site in SITES for kind in contract["backup_kinds"]}
    for rule in rules.values():
        # The container is the site's own; the prefix is the app's <site>/<kind>/ blob names.
        assert rule["prefix"] == f"homewatt-{rule['site']}/{rule['site']}/{rule['kind']}/"


def test_rules_follow_the_documented_retention(evaluated: dict[str, Any]) -> None:
    documented = documented_retention()
    for rule in evaluated["lifecycle_rules"].values():
        cool, delete = documented[rule["kind"]]
        assert rule["cool_after_days"] == cool
        retention = SITES[rule["site"]].get("retention", "lifecycle")
        # Lifecycle sites: the policy deletes. Rotation sites: the backup app does.
        assert rule["delete_after_days"] == (delete if retention == "lifecycle" else None)
        assert rule["version_days"] == 7


def test_custom_retention_reaches_the_rules(harness: Harness) -> None:
    retention = {
        "hourly": {"cool_after_days": 2, "delete_after_days": 10},
        "daily": {"delete_after_days": 100},
    }
    value = harness.outputs(
        inputs(sites={"home": {}}, backup_retention=retention, previous_version_retention_days=3),
        "custom-retention",
    )["harness_locals"]["value"]
    rules = value["lifecycle_rules"]
    days = {name: (r["cool_after_days"], r["delete_after_days"]) for name, r in rules.items()}
    assert days == {"home-hourly": (2, 10), "home-daily": (None, 100)}
    assert {rule["version_days"] for rule in rules.values()} == {3}


def test_the_policy_applies_every_rule_with_versions_and_snapshots(main: Module) -> None:
    policy = main.resources["azurerm_storage_management_policy.this"]
    assert unwrap(policy["storage_account_id"]) == "azurerm_storage_account.this.id"
    [dynamic] = policy["dynamic"]
    rule = dynamic["rule"]
    assert unwrap(rule["for_each"]) == "local.lifecycle_rules"
    [content] = rule["content"]
    assert unwrap(content["name"]) == "rule.key"
    assert content["enabled"] is True
    [filters] = content["filters"]
    assert filters["blob_types"] == ["blockBlob"]
    assert [unwrap(p) for p in filters["prefix_match"]] == ["rule.value.prefix"]
    [actions] = content["actions"]
    [base] = actions["dynamic"]
    base_blob = base["base_blob"]["content"][0]
    assert unwrap(base_blob["tier_to_cool_after_days_since_modification_greater_than"]) == (
        "base_blob.value.cool_after_days"
    )
    assert unwrap(base_blob["delete_after_days_since_modification_greater_than"]) == (
        "base_blob.value.delete_after_days"
    )
    # Old versions (left by deletes and metadata updates) and snapshots are deleted too.
    assert unwrap(actions["version"][0]["delete_after_days_since_creation"]) == (
        "rule.value.version_days"
    )
    assert unwrap(actions["snapshot"][0]["delete_after_days_since_creation_greater_than"]) == (
        "rule.value.version_days"
    )


def test_immutability_only_where_configured(evaluated: dict[str, Any]) -> None:
    assert evaluated["immutability_days"] == {"vault": 7}


def test_containers_are_per_site(evaluated: dict[str, Any]) -> None:
    assert evaluated["containers"] == {site: f"homewatt-{site}" for site in SITES}


def test_sas_lifetime_renewal_and_expiration_policy(harness: Harness) -> None:
    """A SAS lives sas_validity_days from a start back-dated 15 minutes; renewal is due
    sas_renewal_days before expiry; the account's policy allows one day more than the validity,
    so the back-dated start never trips it, but a longer SAS does."""
    value = harness.outputs(inputs(sas_validity_days=60, sas_renewal_days=20), "sas-timing")
    local = value["harness_locals"]["value"]
    assert local["sas_start_offset"] == "-15m"
    assert local["sas_expiry_offset"] == f"{60 * 24}h"
    assert local["sas_rotation_days"] == 40
    assert local["sas_expiration_period"] == "61.00:00:00"


def test_entra_mode_issues_no_sas_and_splits_roles_by_retention(harness: Harness) -> None:
    guid = "11111111-2222-3333-4444-555555555555"
    sites = {
        "home": {"principal_id": guid},
        "cabin": {"principal_id": guid.replace("1", "9"), "retention": "rotation"},
    }
    outputs = harness.outputs(inputs(auth_mode="entra", sites=sites), "entra")
    local = outputs["harness_locals"]["value"]
    assert local["sas_permissions"] == {}
    assert outputs["backup_sas_tokens"]["value"] == {}
    assert local["entra_sites"] == {
        "home": {"principal_id": guid, "can_delete": False},
        "cabin": {"principal_id": guid.replace("1", "9"), "can_delete": True},
    }
    assert local["entra_writer_role_needed"] is True
    only_rotation = harness.outputs(
        inputs(auth_mode="entra", sites={"cabin": sites["cabin"]}), "entra-rotation"
    )["harness_locals"]["value"]
    assert only_rotation["entra_writer_role_needed"] is False
