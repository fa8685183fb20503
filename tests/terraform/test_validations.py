"""The variable validations, tested two ways.

1. From the parsed HCL (always): each condition's regex, range or list of allowed values is
   extracted and checked against Azure's rules written here independently (hypothesis
   generates the strings), and every validation is accounted for.
2. By Terraform itself (where a binary is installed): tables of good and bad inputs are planned
   against variables.tf, and each bad input must fail with exactly its validation's message.
"""

from __future__ import annotations

import ipaddress
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.terraform.support import Harness, Module, inputs, unwrap

# --- extraction -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Validation:
    module: str
    variable: str
    index: int
    condition: str
    error_message: str

    @property
    def key(self) -> str:
        return f"{self.module}.{self.variable}[{self.index}]"


def validations(modules: dict[str, Module]) -> list[Validation]:
    return [
        Validation(name, variable, index, unwrap(rule["condition"]), rule["error_message"])
        for name, module in modules.items()
        for variable, spec in module.variables.items()
        for index, rule in enumerate(spec.get("validation", []))
    ]


def hcl_unescape(literal: str) -> str:
    """The value of an HCL quoted string's body (the escapes the conditions use)."""
    return re.sub(r"\\([\\\"nt])", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), literal)


REGEX_CALL = re.compile(r'regex\("((?:[^"\\]|\\.)*)",')


def regexes(condition: str) -> list[str]:
    return [hcl_unescape(body) for body in REGEX_CALL.findall(condition)]


def bounds(condition: str, subject: str) -> tuple[str | None, str | None]:
    """(lower, upper) bound of `subject` in the condition: '>= 1' / '<= 365' / '< var.x'."""
    subject = re.escape(subject)
    lower = re.search(rf"{subject} >= ([\w.]+)", condition)
    upper = re.search(rf"{subject} (<=? [\w.]+)", condition)
    return (lower[1] if lower else None, upper[1] if upper else None)


def allowed_values(condition: str) -> set[str]:
    match = re.search(r"contains\(\[([^\]]*)\],", condition)
    assert match, condition
    return set(re.findall(r'"([^"]*)"', match[1]))


def compile_terraform_regex(pattern: str) -> re.Pattern[str]:
    """Terraform's regex() is RE2 with search semantics; for the anchored patterns used here
    that is Python's fullmatch with ASCII classes (RE2's \\w is ASCII)."""
    return re.compile(pattern, re.ASCII)


# --- Azure's rules, written independently of the HCL --------------------------------------------

LOWER_DIGITS = set(string.ascii_lowercase + string.digits)


def storage_account_name_ok(s: str) -> bool:
    return 3 <= len(s) <= 24 and set(s) <= LOWER_DIGITS


def location_ok(s: str) -> bool:
    return 3 <= len(s) <= 40 and s[0].islower() and s[0].isascii() and set(s) <= LOWER_DIGITS


def resource_group_name_ok(s: str) -> bool:
    allowed = set(string.ascii_letters + string.digits + "-_.()")
    return 1 <= len(s) <= 90 and set(s) <= allowed and not s.endswith(".")


def guid_ok(s: str) -> bool:
    try:
        return str(uuid.UUID(s)) == s
    except ValueError:
        return False


def hyphenated_ok(s: str) -> bool:
    """Container-name characters: lowercase letters, digits, single inner hyphens."""
    return (
        bool(s)
        and set(s) <= LOWER_DIGITS | {"-"}
        and not s.startswith("-")
        and not s.endswith("-")
        and "--" not in s
    )


def prefix_ok(s: str) -> bool:
    return s.endswith("-") and hyphenated_ok(s[:-1])


def ip_rule_ok(s: str) -> bool:
    address, slash, prefix = s.partition("/")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    if not slash:
        return True
    return (
        prefix.isdigit() and prefix.isascii() and str(int(prefix)) == prefix and int(prefix) <= 30
    )


def state_key_ok(s: str) -> bool:
    stem = s.removesuffix(".tfstate")
    allowed = set(string.ascii_letters + string.digits + "._/-")
    return (
        s.endswith(".tfstate")
        and 1 <= len(stem) <= 255
        and set(stem) <= allowed
        and stem[0].isascii()
        and stem[0].isalnum()
    )


def workspace_id_ok(s: str) -> bool:
    parts = s.split("/")
    fixed = {
        1: "subscriptions",
        3: "resourcegroups",
        5: "providers",
        6: "microsoft.operationalinsights",
        7: "workspaces",
    }
    return (
        len(parts) == 9
        and parts[0] == ""
        and all(parts[i].lower() == word for i, word in fixed.items())
        and all(parts[i] for i in (2, 4, 8))
    )


# (variable, regex index within its validations' regexes) -> (Azure's rule, alphabet to fuzz)
HEX = "0123456789abcdefABCDEF-g"
ORACLES: dict[str, tuple[Callable[[str], bool], str]] = {
    "subscription_id": (guid_ok, HEX),
    "location": (location_ok, "abcxyz019AZ -_"),
    "resource_group_name": (resource_group_name_ok, "aZ09-_.()/ é"),
    "storage_account_name": (storage_account_name_ok, "az09AZ-_."),
    "sites": (hyphenated_ok, "az09-_A."),
    "sites.principal_id": (guid_ok, HEX),
    "container_name_prefix": (prefix_ok, "az09-_A"),
    "container_name": (hyphenated_ok, "az09-_A"),
    "allowed_ip_ranges": (ip_rule_ok, "0123456789./"),
    "state_key": (state_key_ok, "aZ09._/-tfse "),
    "state_principal_ids": (guid_ok, HEX),
    "log_analytics_workspace_id": (workspace_id_ok, "/abMicrosft.OpeainlIghsw"),
}


def oracle_for(validation: Validation) -> str:
    if validation.variable == "sites" and "principal_id" in validation.condition:
        return "sites.principal_id"
    return validation.variable


# Documented ranges: (module, variable, subject in the condition) -> (lower, upper).
RANGES = {
    ("main", "sites", "length(var.sites)"): ("1", "<= 50"),
    ("main", "sites", "length(name)"): ("1", "<= 40"),
    ("main", "sites", "site.immutability_days"): ("1", "<= 146000"),
    ("main", "container_name_prefix", "length(var.container_name_prefix)"): (None, "<= 22"),
    ("main", "sas_validity_days", "var.sas_validity_days"): ("7", "<= 365"),
    ("main", "sas_renewal_days", "var.sas_renewal_days"): ("1", "< var.sas_validity_days"),
    ("main", "backup_retention", "kind.delete_after_days"): ("1", "<= 3650"),
    ("main", "backup_retention", "kind.cool_after_days"): ("1", "< kind.delete_after_days"),
    ("main", "previous_version_retention_days", "var.previous_version_retention_days"): (
        "1",
        "<= 365",
    ),
    ("main", "blob_soft_delete_retention_days", "var.blob_soft_delete_retention_days"): (
        "1",
        "<= 365",
    ),
    ("main", "container_soft_delete_retention_days", "var.container_soft_delete_retention_days"): (
        "1",
        "<= 365",
    ),
    ("bootstrap", "container_name", "length(var.container_name)"): ("3", "<= 63"),
    ("bootstrap", "state_version_retention_days", "var.state_version_retention_days"): (
        "1",
        "<= 3650",
    ),
    ("bootstrap", "soft_delete_retention_days", "var.soft_delete_retention_days"): ("1", "<= 365"),
}

ENUMS = {
    "account_replication_type": {"LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"},
    "auth_mode": {"sas", "entra"},
    "sites": None,  # the contract's retention values (test_contract.py checks them too)
}

# Validations whose logic spans variables or null guards: only Terraform can evaluate them; the
# bad-input tables below must trip each one (test_every_validation_is_tripped_by_terraform).
CROSS_VARIABLE = {
    "main.sites[4]",  # immutability only with lifecycle retention
    "main.sites[6]",  # immutability <= shortest delete_after_days
    "main.sites[8]",  # auth_mode entra needs principal_id everywhere
}


def ranged(subject: str, condition: str) -> bool:
    """True when `subject` is compared (>=, <, <=) in the condition, not merely mentioned."""
    return re.search(rf"{re.escape(subject)} (>=|<=?) ", condition) is not None


def classify(validation: Validation, contract: dict[str, Any]) -> str:
    """Which extraction check covers this validation (asserting along the way)."""
    if validation.key in CROSS_VARIABLE:
        return "cross-variable"
    found = regexes(validation.condition)
    subjects = [
        s
        for (m, v, s) in RANGES
        if (m, v) == (validation.module, validation.variable) and ranged(s, validation.condition)
    ]
    if found:
        for pattern in found:
            body = pattern.removeprefix("(?i)")
            assert body.startswith("^") and body.endswith("$"), (
                f"{validation.key}: {pattern!r} is not anchored (Terraform's regex() searches)"
            )
        return "regex"
    if subjects:
        for subject in subjects:
            expected = RANGES[(validation.module, validation.variable, subject)]
            assert bounds(validation.condition, subject) == expected, validation.key
            if expected[0] is not None:  # a count of days must be whole
                assert (
                    f"floor({subject}) == {subject}" in validation.condition
                    or subject.startswith("length(")
                ), f"{validation.key}: no whole-number check"
        return "range"
    if "contains([" in validation.condition:
        expected = ENUMS[validation.variable] or set(contract["retention_values"])
        assert allowed_values(validation.condition) == expected, validation.key
        return "enum"
    raise AssertionError(f"{validation.key} is not covered here: {validation.condition}")


def test_every_validation_is_accounted_for(
    modules: dict[str, Module], contract: dict[str, Any]
) -> None:
    kinds = {v.key: classify(v, contract) for v in validations(modules)}
    assert {k for k, kind in kinds.items() if kind == "cross-variable"} == CROSS_VARIABLE
    assert len(kinds) >= 30, kinds


def test_every_regex_has_an_independent_rule(modules: dict[str, Module]) -> None:
    with_regex = {oracle_for(v) for v in validations(modules) if regexes(v.condition)}
    assert with_regex == set(ORACLES)


@pytest.fixture(scope="module")
def regex_validations(modules: dict[str, Module]) -> list[tuple[re.Pattern[str], Validation]]:
    return [
        (compile_terraform_regex(pattern), validation)
        for validation in validations(modules)
        for pattern in regexes(validation.condition)
    ]


# derandomize: the same 300 cases every run, so its cost is fixed (random draws once took
# over 300 s on a loaded CI host)
@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_regexes_agree_with_azures_rules(
    regex_validations: list[tuple[re.Pattern[str], Validation]], data: st.DataObject
) -> None:
    """Random strings over each rule's tricky alphabet, plus strings built to match: the
    extracted regex accepts exactly what Azure's rule (written above) accepts."""
    for pattern, validation in regex_validations:
        rule, alphabet = ORACLES[oracle_for(validation)]
        fuzzed = data.draw(st.text(alphabet=alphabet, max_size=100), label=validation.key)
        matching = data.draw(st.from_regex(pattern, fullmatch=True), label=f"{validation.key}+")
        for candidate in (fuzzed, matching):
            assert bool(pattern.fullmatch(candidate)) == rule(candidate), (
                f"{validation.key}: {candidate!r} regex={bool(pattern.fullmatch(candidate))}"
            )


REGEX_TABLE = {
    "storage_account_name": (
        ["abc", "homewattbackup1234", "a" * 24],
        ["ab", "a" * 25, "Homewatt", "home-watt", "home_watt", "", "abc\n"],
    ),
    "sites": (
        ["home", "cabin-2", "a", "x1-y2-z3"],
        ["Home", "-home", "home-", "ho--me", "ho_me", "", "home/x"],
    ),
    "location": (["westeurope", "eastus2"], ["West Europe", "2east", "we", "west-europe"]),
    "resource_group_name": (["rg-homewatt-backup", "rg.(x)_1", "r"], ["rg.", "", "rg/x", "x" * 91]),
    "allowed_ip_ranges": (
        ["203.0.113.7", "198.51.100.0/24", "0.0.0.0/0"],
        ["203.0.113.7/32", "256.1.1.1", "1.2.3", "01.2.3.4", "::1", "1.2.3.4/"],
    ),
    "container_name_prefix": (["homewatt-", "hw-b-"], ["homewatt", "-x-", "a--", "Home-"]),
}


@pytest.mark.parametrize("variable", sorted(REGEX_TABLE))
def test_regex_tables(
    variable: str, regex_validations: list[tuple[re.Pattern[str], Validation]]
) -> None:
    good, bad = REGEX_TABLE[variable]
    [pattern] = [
        p for p, v in regex_validations if v.module == "main" and oracle_for(v) == variable
    ]
    assert [s for s in good if not pattern.fullmatch(s)] == []
    assert [s for s in bad if pattern.fullmatch(s)] == []


def test_range_bounds_accept_and_reject_the_edges(modules: dict[str, Module]) -> None:
    """A predicate built from each extracted numeric range: the edges in, one past them out,
    fractions out."""
    for (module, variable, subject), (lower, upper) in RANGES.items():
        if lower is None or not upper.startswith("<= "):
            continue
        lo, hi = int(lower), int(upper.removeprefix("<= "))
        condition = next(
            v.condition
            for v in validations(modules)
            if (v.module, v.variable) == (module, variable) and ranged(subject, v.condition)
        )
        whole = f"floor({subject})" in condition or subject.startswith("length(")

        def accepts(x: float, lo: int = lo, hi: int = hi, whole: bool = whole) -> bool:
            return lo <= x <= hi and (not whole or x == int(x))

        assert all(accepts(x) for x in (lo, hi, (lo + hi) // 2)), (module, variable)
        assert not any(accepts(x) for x in (lo - 1, hi + 1)), (module, variable)
        if not subject.startswith("length("):
            assert not accepts(lo + 0.5), f"{module}.{variable}: fractions of a day accepted"


# --- Terraform evaluates the real conditions ------------------------------------------------------

GUID = "11111111-2222-3333-4444-555555555555"
GOOD_MAIN = {
    "minimal": inputs(),
    "rotation and lifecycle sites": inputs(
        sites={"home": {}, "cabin-2": {"retention": "rotation"}}
    ),
    "immutability within the shortest retention": inputs(
        sites={"vault": {"immutability_days": 14}}
    ),
    "entra mode": inputs(auth_mode="entra", sites={"home": {"principal_id": GUID}}),
    "fifty sites": inputs(sites={f"site{i}": {} for i in range(50)}),
    "longest site name": inputs(sites={"a" * 40: {}}),
    "shortest and longest SAS": inputs(sas_validity_days=7, sas_renewal_days=6),
    "longest SAS": inputs(sas_validity_days=365, sas_renewal_days=1),
    "retention edges": inputs(
        backup_retention={
            "hourly": {"delete_after_days": 1},
            "daily": {"cool_after_days": 3649, "delete_after_days": 3650},
        }
    ),
    "static address": inputs(allowed_ip_ranges=["203.0.113.7", "198.51.100.0/24"]),
    "existing resource group": inputs(create_resource_group=False, resource_group_name="rg(x)_1.a"),
    "soft delete edges": inputs(
        blob_soft_delete_retention_days=365,
        container_soft_delete_retention_days=1,
        previous_version_retention_days=1,
    ),
    "log analytics": inputs(
        log_analytics_workspace_id=(
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"
        )
    ),
    "subscription": inputs(subscription_id=GUID),
    "LRS": inputs(account_replication_type="LRS"),
}

# (inputs, the one error message expected, as a fragment of its error_message)
BAD_MAIN = {
    "account name with capitals": (
        inputs(storage_account_name="HomeWatt"),
        "storage_account_name must be 3-24",
    ),
    "account name too long": (
        inputs(storage_account_name="a" * 25),
        "storage_account_name must be 3-24",
    ),
    "unknown replication": (
        inputs(account_replication_type="PREMIUM_LRS"),
        "account_replication_type must be one of",
    ),
    "location display name": (inputs(location="West Europe"), "location must be"),
    "resource group ending in a dot": (inputs(resource_group_name="rg."), "resource_group_name"),
    "no sites": (inputs(sites={}), "sites must name 1-50"),
    "51 sites": (inputs(sites={f"s{i}": {} for i in range(51)}), "sites must name 1-50"),
    "site name with capitals": (inputs(sites={"Home": {}}), "Site names must be lowercase"),
    "site name with double hyphen": (inputs(sites={"a--b": {}}), "Site names must be lowercase"),
    "site name too long": (inputs(sites={"a" * 41: {}}), "Site names must be 1-40"),
    "unknown retention": (
        inputs(sites={"home": {"retention": "forever"}}),
        'retention must be "rotation"',
    ),
    "immutability with rotation": (
        inputs(sites={"home": {"retention": "rotation", "immutability_days": 7}}),
        "immutability_days is allowed only with retention",
    ),
    "immutability longer than retention": (
        inputs(sites={"home": {"immutability_days": 15}}),
        "must not exceed the shortest",
    ),
    "immutability of half a day": (
        inputs(sites={"home": {"immutability_days": 0.5}}),
        "immutability_days must be a whole number",
    ),
    "principal id not a guid": (
        inputs(sites={"home": {"principal_id": "home-pi"}}),
        "principal_id must be a lowercase GUID",
    ),
    "entra without principal": (inputs(auth_mode="entra"), "needs a principal_id for every site"),
    "unknown auth mode": (inputs(auth_mode="key"), "auth_mode must be"),
    "SAS for two years": (inputs(sas_validity_days=730), "sas_validity_days must be"),
    "SAS for a few days": (
        inputs(sas_validity_days=6, sas_renewal_days=1),
        "sas_validity_days must be",
    ),
    "renewal not before expiry": (
        inputs(sas_validity_days=30, sas_renewal_days=30),
        "sas_renewal_days must be",
    ),
    "renewal of zero days": (inputs(sas_renewal_days=0), "sas_renewal_days must be"),
    "delete after zero days": (
        inputs(
            backup_retention={
                "hourly": {"delete_after_days": 0},
                "daily": {"delete_after_days": 365},
            }
        ),
        "delete_after_days must be a whole number",
    ),
    "cool after delete": (
        inputs(
            backup_retention={
                "hourly": {"delete_after_days": 14},
                "daily": {"cool_after_days": 365, "delete_after_days": 365},
            }
        ),
        "cool_after_days must be null",
    ),
    "versions kept a year and a day": (
        inputs(previous_version_retention_days=366),
        "previous_version_retention_days must be",
    ),
    "no blob soft delete": (
        inputs(blob_soft_delete_retention_days=0),
        "blob_soft_delete_retention_days must be",
    ),
    "container soft delete too long": (
        inputs(container_soft_delete_retention_days=366),
        "container_soft_delete_retention_days must be",
    ),
    "a /32 range": (inputs(allowed_ip_ranges=["203.0.113.7/32"]), "allowed_ip_ranges entries"),
    "an IPv6 address": (inputs(allowed_ip_ranges=["2001:db8::1"]), "allowed_ip_ranges entries"),
    "prefix without hyphen": (
        inputs(container_name_prefix="homewatt"),
        "container_name_prefix must be",
    ),
    "prefix too long": (
        inputs(container_name_prefix="a" * 22 + "-"),
        "container_name_prefix must be",
    ),
    "subscription in capitals": (
        inputs(subscription_id="ABCDEF01-2222-3333-4444-555555555555"),
        "subscription_id must be a lowercase GUID",
    ),
    "workspace id of another resource": (
        inputs(log_analytics_workspace_id="/subscriptions/x"),
        "log_analytics_workspace_id must be",
    ),
}

BOOTSTRAP_BASE = {"location": "westeurope", "storage_account_name": "homewatttfstate1"}
GOOD_BOOTSTRAP = {
    "minimal": BOOTSTRAP_BASE,
    "ci principal, nested key": {
        **BOOTSTRAP_BASE,
        "state_principal_ids": [GUID],
        "state_key": "sites/homewatt-backup.tfstate",
    },
}
BAD_BOOTSTRAP = {
    "account name": (
        {**BOOTSTRAP_BASE, "storage_account_name": "tf-state"},
        "storage_account_name must be 3-24",
    ),
    "container name": ({**BOOTSTRAP_BASE, "container_name": "tf"}, "container_name must be 3-63"),
    "state key": ({**BOOTSTRAP_BASE, "state_key": "state.json"}, "state_key must be"),
    "principal": ({**BOOTSTRAP_BASE, "state_principal_ids": ["ci"]}, "state_principal_ids entries"),
    "versions": (
        {**BOOTSTRAP_BASE, "state_version_retention_days": 0},
        "state_version_retention_days must be",
    ),
    "soft delete": (
        {**BOOTSTRAP_BASE, "soft_delete_retention_days": 400},
        "soft_delete_retention_days must be",
    ),
    "replication": (
        {**BOOTSTRAP_BASE, "account_replication_type": "grs"},
        "account_replication_type must be one of",
    ),
    "location": ({**BOOTSTRAP_BASE, "location": "EU"}, "location must be"),
    "resource group": ({**BOOTSTRAP_BASE, "resource_group_name": ""}, "resource_group_name"),
    "subscription": ({**BOOTSTRAP_BASE, "subscription_id": "none"}, "subscription_id must be"),
    "addresses": (
        {**BOOTSTRAP_BASE, "allowed_ip_ranges": ["10.0.0.0/31"]},
        "allowed_ip_ranges entries",
    ),
}


def slug(name: str) -> str:
    return re.sub(r"\W+", "-", name).strip("-")


@pytest.mark.parametrize("case", sorted(GOOD_MAIN))
def test_terraform_accepts_good_inputs(harness: Harness, case: str) -> None:
    assert harness.errors(GOOD_MAIN[case], slug(f"good-{case}")) == []


@pytest.mark.parametrize("case", sorted(BAD_MAIN))
def test_terraform_rejects_bad_inputs_with_the_right_message(harness: Harness, case: str) -> None:
    variables, expected = BAD_MAIN[case]
    errors = harness.errors(variables, slug(f"bad-{case}"))
    assert len(errors) == 1 and expected in errors[0], errors


def test_the_example_tfvars_are_valid(
    harness: Harness, bootstrap_harness: Harness, modules: dict[str, Module]
) -> None:
    assert harness.errors(modules["main"].path / "terraform.tfvars.example", "example") == []
    example = modules["bootstrap"].path / "terraform.tfvars.example"
    assert bootstrap_harness.errors(example, "example") == []


@pytest.mark.parametrize("case", sorted(GOOD_BOOTSTRAP))
def test_terraform_accepts_good_bootstrap_inputs(bootstrap_harness: Harness, case: str) -> None:
    assert bootstrap_harness.errors(GOOD_BOOTSTRAP[case], slug(f"good-{case}")) == []


@pytest.mark.parametrize("case", sorted(BAD_BOOTSTRAP))
def test_terraform_rejects_bad_bootstrap_inputs(bootstrap_harness: Harness, case: str) -> None:
    variables, expected = BAD_BOOTSTRAP[case]
    errors = bootstrap_harness.errors(variables, slug(f"bad-{case}"))
    assert len(errors) == 1 and expected in errors[0], errors


def test_every_validation_is_tripped_by_terraform(modules: dict[str, Module]) -> None:
    """Each validation's message is what some bad input above gets: none is left untested."""
    expected = [fragment for _, fragment in [*BAD_MAIN.values(), *BAD_BOOTSTRAP.values()]]
    for validation in validations(modules):
        message = " ".join(validation.error_message.split())
        assert any(fragment in message for fragment in expected), (
            f"no bad input trips {validation.key}: {message}"
        )
