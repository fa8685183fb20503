"""The contract with homewatt-backup (contracts/backup-azure.json): what `terraform output`
gives per site is exactly what the app's `azure:` configuration takes. The backup app's tests
read the same file, so neither side can rename a key alone."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.terraform.support import CONTRACT, TERRAFORM_DIR, Harness, Module, inputs, unwrap
from tests.terraform.test_validations import (
    Validation,
    bounds,
    compile_terraform_regex,
    regexes,
    validations,
)

SITES = {"home": {}, "cabin-2": {"retention": "rotation"}}


def object_keys(expression: str) -> set[str]:
    """The attribute names of the object built per site in a `{for ... : k => {...}}`."""
    inner = re.search(r"=>\s*\{(.*)\}\s*\}$", expression, re.DOTALL)
    assert inner, expression
    return set(re.findall(r"(\w+)\s*=(?!=)", inner[1]))


def test_the_contract_outputs_exist_with_its_sensitivity(
    main: Module, contract: dict[str, Any]
) -> None:
    for name, spec in contract["terraform_outputs"].items():
        assert name in main.outputs, f"output {name} is missing"
        assert (main.outputs[name].get("sensitive") is True) == spec["sensitive"], name


def test_the_config_object_has_exactly_the_contract_keys(
    main: Module, contract: dict[str, Any]
) -> None:
    expression = unwrap(main.outputs["backup_azure_config"]["value"])
    assert object_keys(expression) == set(contract["backup_config_keys"])
    assert "azurerm_storage_container.this" in expression, "one entry per site's container"


def test_retention_values_and_sas_permissions_match(main: Module, contract: dict[str, Any]) -> None:
    local_values = main.files["locals.tf"]["locals"][0]
    assert local_values["sas_permissions_by_retention"] == contract["sas_permissions"]
    assert set(contract["sas_permissions"]) == set(contract["retention_values"])
    assert local_values["backup_kinds"] == contract["backup_kinds"]
    retention = main.variables["sites"]["type"]
    assert 'retention = optional(string, "lifecycle")' in retention
    assert "lifecycle" in contract["retention_values"]


def test_blob_names_start_with_site_and_kind(contract: dict[str, Any]) -> None:
    """The lifecycle rules filter on <container>/<site>/<kind>/ (test_lifecycle.py); a
    re-upload's revision suffix comes after the timestamp, so it is filtered the same way."""
    assert contract["blob_name_pattern"].startswith("<site>/<kind>/")
    assert contract["blob_name_pattern"].endswith("[.r<N>].<ext>")


@pytest.fixture(scope="module")
def planned(harness: Harness) -> dict[str, Any]:
    """The real output expressions, evaluated by Terraform over stand-in resource attributes."""
    return harness.outputs(inputs(sites=SITES, storage_account_name="homewattbackup1"), "contract")


def test_terraform_output_gives_each_site_its_azure_section(
    planned: dict[str, Any], contract: dict[str, Any]
) -> None:
    config = planned["backup_azure_config"]
    assert config["sensitive"] is False
    assert set(config["value"]) == set(SITES)
    for site, section in config["value"].items():
        assert set(section) == set(contract["backup_config_keys"])
        assert section["account_url"] == "https://homewattbackup1.blob.core.windows.net"
        assert section["container"] == f"homewatt-{site}"
        assert section["retention"] == SITES[site].get("retention", "lifecycle")
        assert section["retention"] in contract["retention_values"]
        assert section["auth"] == contract["auth_modes"]["sas"], "auth_mode defaults to sas"


def test_the_auth_mode_maps_to_the_apps_azure_auth_as_the_contract_says(
    main: Module, contract: dict[str, Any]
) -> None:
    local_values = main.files["locals.tf"]["locals"][0]
    assert local_values["backup_auth_by_mode"] == contract["auth_modes"]
    assert 'contains(["sas", "entra"], var.auth_mode)' in str(main.variables["auth_mode"])


def test_terraform_output_in_entra_mode_tells_each_site_to_use_its_service_principal(
    harness: Harness, contract: dict[str, Any]
) -> None:
    sites = {"home": {"principal_id": "4f1c2b7e-0d39-4a8e-9c1e-5b2a7d9e3f10"}}
    planned = harness.outputs(
        inputs(sites=sites, storage_account_name="homewattbackup1", auth_mode="entra"),
        "contract-entra",
    )
    [section] = planned["backup_azure_config"]["value"].values()
    assert section["auth"] == contract["auth_modes"]["entra"] == "service_principal"
    assert planned["backup_sas_tokens"]["value"] == {}, "no SAS in entra mode"


def test_terraform_output_gives_each_site_its_sas(
    planned: dict[str, Any], contract: dict[str, Any]
) -> None:
    tokens = planned["backup_sas_tokens"]
    assert tokens["sensitive"] is True
    assert set(tokens["value"]) == set(SITES)
    for site, token in tokens["value"].items():
        assert not token.startswith("?"), "the contract's SAS has no leading '?'"
        query = parse_qs(token)
        retention = SITES[site].get("retention", "lifecycle")
        assert query["sp"] == [contract["sas_permissions"][retention]]
        assert query["sr"] == ["c"], "container-scoped"


def test_sas_timing_outputs_cover_every_site(planned: dict[str, Any]) -> None:
    assert set(planned["sas_expires_at"]["value"]) == set(SITES)
    assert set(planned["sas_renew_after"]["value"]) == set(SITES)


def test_the_readme_flow_uses_the_contract_outputs(contract: dict[str, Any]) -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    for name in contract["terraform_outputs"]:
        assert f"terraform output -json {name}" in readme, name
    for key in ("sas_credential", "sas_file"):
        assert f"azure.{key}" in readme


# --- site names: Terraform's `sites` keys and the app's `site:` follow the contract's pattern ---

SITE_EXAMPLES = json.loads(CONTRACT.read_text(encoding="utf-8"))["site_examples"]


def site_validations(main: Module) -> list[Validation]:
    """The validations of `sites` that look at each key (`name`)."""
    found = [
        v
        for v in validations({"main": main})
        if v.variable == "sites" and "keys(var.sites)" in v.condition
    ]
    assert len(found) == 2, [v.condition for v in found]  # the characters, the length
    return found


@pytest.fixture(scope="module")
def terraform_site_ok(main: Module) -> Callable[[str], bool]:
    """Terraform's site-name rule rebuilt from the parsed HCL: its regex() and length bounds."""
    rules = site_validations(main)
    [pattern] = [compile_terraform_regex(p) for v in rules for p in regexes(v.condition)]
    [length] = [v.condition for v in rules if "length(name)" in v.condition]
    lower, upper = bounds(length, "length(name)")
    assert lower is not None and upper is not None and upper.startswith("<= "), length
    lo, hi = int(lower), int(upper.removeprefix("<= "))
    return lambda s: pattern.fullmatch(s) is not None and lo <= len(s) <= hi


def test_the_contract_site_pattern_is_one_anchored_regex_with_its_examples(
    contract: dict[str, Any],
) -> None:
    pattern = contract["site_pattern"]
    assert pattern.startswith("^") and pattern.endswith("$")
    site = re.compile(pattern)
    assert contract["site_examples"] == SITE_EXAMPLES
    assert [s for s in SITE_EXAMPLES["valid"] if not site.fullmatch(s)] == []
    assert [s for s in SITE_EXAMPLES["invalid"] if site.fullmatch(s)] == []
    # both length edges are among the examples
    assert max(map(len, SITE_EXAMPLES["valid"])) == 40 and "a" * 41 in SITE_EXAMPLES["invalid"]


def test_terraforms_parsed_site_rule_agrees_with_the_contract_on_its_examples(
    terraform_site_ok: Callable[[str], bool], contract: dict[str, Any]
) -> None:
    site = re.compile(contract["site_pattern"])
    for candidate in [*SITE_EXAMPLES["valid"], *SITE_EXAMPLES["invalid"]]:
        assert terraform_site_ok(candidate) == bool(site.fullmatch(candidate)), repr(candidate)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_terraforms_parsed_site_rule_agrees_with_the_contract_on_generated_names(
    terraform_site_ok: Callable[[str], bool], contract: dict[str, Any], data: st.DataObject
) -> None:
    site = re.compile(contract["site_pattern"])
    fuzzed = data.draw(st.text(alphabet="az09-_A.\n", max_size=45), label="fuzzed")
    built = data.draw(st.from_regex(r"[a-z0-9]+(-[a-z0-9]+)*", fullmatch=True), label="built")
    for candidate in (fuzzed, built, "a" * len(built)):
        assert terraform_site_ok(candidate) == bool(site.fullmatch(candidate)), repr(candidate)


def test_terraform_itself_accepts_the_contracts_valid_site_names(harness: Harness) -> None:
    sites = {name: {} for name in SITE_EXAMPLES["valid"]}
    assert harness.errors(inputs(sites=sites), "contract-sites") == []


@pytest.mark.parametrize("name", SITE_EXAMPLES["invalid"])
def test_terraform_itself_rejects_the_contracts_invalid_site_names(
    harness: Harness, name: str
) -> None:
    tag = "contract-bad-site-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    errors = harness.errors(inputs(sites={name: {}}), tag)
    assert errors, f"Terraform accepted the site name {name!r}"
    assert all("Site names must be" in e for e in errors), errors
