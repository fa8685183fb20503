"""Structural tests on the HCL parsed by python-hcl2: conventions and the secure settings."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.terraform.support import Module, unwrap

CONVENTION_FILES = [
    "terraform.tf",
    "providers.tf",
    "variables.tf",
    "locals.tf",
    "main.tf",
    "outputs.tf",
    "terraform.tfvars.example",
]
EXACT_VERSION = re.compile(r"= ?\d+\.\d+\.\d+")

# Both storage accounts (backups and state) must carry these, exactly.
HARDENED_ACCOUNT = {
    "account_kind": "StorageV2",
    "account_tier": "Standard",
    "https_traffic_only_enabled": True,
    "min_tls_version": "TLS1_2",
    "allow_nested_items_to_be_public": False,
    "infrastructure_encryption_enabled": True,
    "cross_tenant_replication_enabled": False,
    "default_to_oauth_authentication": True,
    "allowed_copy_scope": "AAD",
    "local_user_enabled": False,
    "sftp_enabled": False,
    "nfsv3_enabled": False,
    "is_hns_enabled": False,
}


def only(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(blocks) == 1, blocks
    return blocks[0]


def account(module: Module) -> dict[str, Any]:
    return module.resources["azurerm_storage_account.this"]


def required_providers(module: Module) -> dict[str, dict[str, str]]:
    providers: dict[str, dict[str, str]] = {}
    for block in module.terraform:
        for entry in block.get("required_providers", []):
            providers.update(entry)
    return providers


@pytest.fixture(params=["main", "bootstrap"])
def module(request: pytest.FixtureRequest, modules: dict[str, Module]) -> Module:
    return modules[request.param]


# --- conventions ---------------------------------------------------------------------------------


def test_the_file_layout_follows_the_house_style(module: Module) -> None:
    for name in CONVENTION_FILES:
        assert (module.path / name).is_file(), f"{module.name}: {name} is missing"
    assert module.outputs, f"{module.name}: no outputs"


def test_terraform_and_providers_are_pinned(module: Module) -> None:
    block = only(module.terraform)
    assert re.fullmatch(r">= ?1\.(9|[1-9]\d)\.\d+, < ?2\.0\.0", block["required_version"])
    providers = required_providers(module)
    assert providers["azurerm"]["source"] == "hashicorp/azurerm"
    for name, spec in providers.items():
        assert EXACT_VERSION.fullmatch(spec["version"]), f"{name} is not pinned exactly: {spec}"
    used = {key.split(".")[0].split("_")[0] for key in [*module.resources, *module.data]}
    assert used <= set(providers), f"providers used but not required: {used - set(providers)}"


def test_both_modules_pin_the_same_azurerm(modules: dict[str, Module]) -> None:
    versions = {required_providers(m)["azurerm"]["version"] for m in modules.values()}
    assert len(versions) == 1, versions


def test_the_main_module_keeps_its_state_in_the_azurerm_backend(modules: dict[str, Module]) -> None:
    backends = [b for block in modules["main"].terraform for b in block.get("backend", [])]
    assert backends == [{"azurerm": {}}], "partial config: settings come from backend.hcl"
    assert not any("backend" in block for block in modules["bootstrap"].terraform)


def test_the_primary_resource_is_named_this(module: Module) -> None:
    assert "azurerm_storage_account.this" in module.resources
    assert "azurerm_storage_container.this" in module.resources


def test_every_variable_has_a_type_and_a_description(module: Module) -> None:
    assert module.variables
    for name, spec in module.variables.items():
        assert spec.get("type"), f"variable {name} has no type"
        description = spec.get("description", "")
        assert len(description) >= 20, f"variable {name} needs a description"
        assert description.rstrip().endswith((".", ")")), f"variable {name}: {description!r}"


def test_every_output_has_a_description(module: Module) -> None:
    for name, spec in module.outputs.items():
        assert len(spec.get("description", "")) >= 20, f"output {name} needs a description"


# The SAS data source's `sas` attribute (not `time_rotating.sas`, a timestamp), keys, secrets.
SECRET_ATTRIBUTE = re.compile(
    r"(?<!time_rotating)\.sas\b|access_key|connection_string|client_secret"
)


def test_outputs_that_carry_secrets_are_sensitive(module: Module) -> None:
    for name, spec in module.outputs.items():
        if SECRET_ATTRIBUTE.search(unwrap(spec["value"])):
            assert spec.get("sensitive") is True, f"output {name} exposes a secret"
        else:
            assert spec.get("sensitive") is not True, f"output {name} is needlessly sensitive"


def test_the_sas_tokens_output_is_sensitive_and_the_config_is_not(main: Module) -> None:
    assert main.outputs["backup_sas_tokens"]["sensitive"] is True
    assert main.outputs["backup_azure_config"].get("sensitive") is not True


# --- the storage accounts ------------------------------------------------------------------------


def test_storage_accounts_are_hardened(module: Module) -> None:
    body = account(module)
    for key, expected in HARDENED_ACCOUNT.items():
        assert body.get(key) == expected, f"{module.name}: {key} = {body.get(key)!r}"
    assert only(body["lifecycle"])["prevent_destroy"] is True


def test_blob_versioning_and_soft_delete_are_on(module: Module) -> None:
    blob = only(account(module)["blob_properties"])
    assert blob["versioning_enabled"] is True
    deleted = only(blob["delete_retention_policy"])
    assert re.fullmatch(r"var\.\w+_days", unwrap(deleted["days"]))
    assert deleted["permanent_delete_enabled"] is False
    containers = only(blob["container_delete_retention_policy"])
    assert re.fullmatch(r"var\.\w+_days", unwrap(containers["days"]))
    for name, spec in module.variables.items():
        if "soft_delete" in name:
            assert 7 <= spec["default"] <= 365, f"{name} default {spec['default']}"


def test_a_sas_expiration_policy_blocks_long_lived_sas(module: Module) -> None:
    policy = only(account(module)["sas_policy"])
    assert policy["expiration_action"] == "Block"
    assert policy["expiration_period"]


def test_shared_key_is_on_only_in_sas_mode(modules: dict[str, Module]) -> None:
    main_key = account(modules["main"])["shared_access_key_enabled"]
    assert unwrap(main_key) == 'var.auth_mode == "sas" ? true : false'
    assert account(modules["bootstrap"])["shared_access_key_enabled"] is False


def test_the_network_default_denies_once_addresses_are_listed(module: Module) -> None:
    rules = only(account(module)["network_rules"])
    assert unwrap(rules["default_action"]) == 'length(var.allowed_ip_ranges) > 0 ? "Deny" : "Allow"'
    assert unwrap(rules["ip_rules"]) == "var.allowed_ip_ranges"
    assert module.variables["allowed_ip_ranges"]["default"] == []


def test_containers_are_private_and_managed_through_resource_manager(module: Module) -> None:
    container = module.resources["azurerm_storage_container.this"]
    assert container["container_access_type"] == "private"
    assert unwrap(container["storage_account_id"]) == "azurerm_storage_account.this.id"
    assert "storage_account_name" not in container


def test_the_account_is_locked_against_deletion(module: Module) -> None:
    lock = module.resources["azurerm_management_lock.this"]
    assert lock["lock_level"] == "CanNotDelete"
    assert unwrap(lock["scope"]) == "azurerm_storage_account.this.id"
    assert module.variables["delete_lock_enabled"]["default"] is True


def test_terraform_itself_never_uses_the_account_key_or_the_data_plane(module: Module) -> None:
    azurerm = module.providers["azurerm"]
    assert azurerm["storage_use_azuread"] is True
    features = only(azurerm["features"])
    assert only(features["storage"])["data_plane_available"] is False


def test_the_state_account_allows_entra_id_only(modules: dict[str, Module]) -> None:
    bootstrap = modules["bootstrap"]
    assignment = bootstrap.resources["azurerm_role_assignment.state"]
    assert assignment["role_definition_name"] == "Storage Blob Data Contributor"
    assert unwrap(assignment["scope"]) == "azurerm_storage_container.this.id"
    assert "use_azuread_auth     = true" in bootstrap.outputs["backend_hcl"]["value"]
    policy = bootstrap.resources["azurerm_storage_management_policy.this"]
    actions = only(only(policy["rule"])["actions"])
    assert unwrap(only(actions["version"])["delete_after_days_since_creation"]) == (
        "var.state_version_retention_days"
    )


# --- per-site credentials ------------------------------------------------------------------------

PERMISSION_LETTERS = {
    "read": "r",
    "add": "a",
    "create": "c",
    "write": "w",
    "delete": "d",
    "list": "l",
}


def test_each_sas_is_container_scoped_https_only_and_expires(main: Module) -> None:
    sas = main.data["azurerm_storage_account_blob_container_sas.this"]
    assert unwrap(sas["for_each"]) == "local.sas_permissions"
    assert unwrap(sas["container_name"]) == "azurerm_storage_container.this[each.key].name"
    assert sas["https_only"] is True
    assert unwrap(sas["start"]) == (
        "timeadd(time_rotating.sas[each.key].rfc3339, local.sas_start_offset)"
    )
    assert unwrap(sas["expiry"]) == (
        "timeadd(time_rotating.sas[each.key].rfc3339, local.sas_expiry_offset)"
    )
    rotation = main.resources["time_rotating.sas"]
    assert unwrap(rotation["for_each"]) == "local.sas_permissions"
    assert unwrap(rotation["rotation_days"]) == "local.sas_rotation_days"


def test_sas_permissions_come_from_the_permission_string(main: Module) -> None:
    """Each permission flag is its letter in local.sas_permissions (checked against the contract
    in test_contract.py), so the string is the single source of truth."""
    permissions = only(main.data["azurerm_storage_account_blob_container_sas.this"]["permissions"])
    assert set(permissions) == set(PERMISSION_LETTERS)
    for flag, letter in PERMISSION_LETTERS.items():
        assert unwrap(permissions[flag]) == f'strcontains(each.value, "{letter}")'


def test_entra_roles_are_scoped_to_the_sites_own_container(main: Module) -> None:
    assignment = main.resources["azurerm_role_assignment.site"]
    assert unwrap(assignment["for_each"]) == "local.entra_sites"
    assert unwrap(assignment["scope"]) == "azurerm_storage_container.this[each.key].id"
    assert unwrap(assignment["role_definition_name"]) == (
        'each.value.can_delete ? "Storage Blob Data Contributor" : null'
    )
    writer = main.resources["azurerm_role_definition.backup_writer"]
    assert only(writer["permissions"])["actions"] == []
    assert unwrap(only(writer["permissions"])["data_actions"]) == "local.entra_writer_data_actions"
    local_values = only(main.files["locals.tf"]["locals"])
    actions = [unwrap(a) for a in local_values["entra_writer_data_actions"]]
    assert actions, "the writer role grants nothing"
    assert not any("delete" in a.lower() for a in actions), actions
    assert all(
        a.startswith("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/")
        for a in actions
    )


def test_immutability_is_unlocked_and_only_where_configured(main: Module) -> None:
    policy = main.resources["azurerm_storage_container_immutability_policy.this"]
    assert unwrap(policy["for_each"]) == "local.immutability_days"
    assert policy["locked"] is False
    assert policy["protected_append_writes_enabled"] is False
    assert policy["protected_append_writes_all_enabled"] is False


def test_blob_access_logs_are_optional_and_cover_read_write_delete(main: Module) -> None:
    setting = main.resources["azurerm_monitor_diagnostic_setting.blob"]
    assert unwrap(setting["count"]) == "var.log_analytics_workspace_id == null ? 0 : 1"
    assert unwrap(setting["target_resource_id"]).endswith("/blobServices/default")
    categories = {log["category"] for log in setting["enabled_log"]}
    assert categories == {"StorageRead", "StorageWrite", "StorageDelete"}
