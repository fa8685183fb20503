# The Azure side of homewatt's off-site backups: one hardened storage account, one private
# container per site, a lifecycle policy per site and backup kind, and per site exactly one
# credential scoped to that site's container (a service SAS, or an Entra role assignment).

resource "azurerm_resource_group" "this" {
  count = var.create_resource_group ? 1 : 0

  name     = var.resource_group_name
  location = var.location
  tags     = var.tags
}

data "azurerm_resource_group" "existing" {
  count = var.create_resource_group ? 0 : 1

  name = var.resource_group_name
}

# Locals that read resources live here; locals.tf holds only values derived from variables (the
# tests evaluate it with Terraform, without the provider).
locals {
  resource_group_name = var.create_resource_group ? azurerm_resource_group.this[0].name : data.azurerm_resource_group.existing[0].name
  resource_group_id   = var.create_resource_group ? azurerm_resource_group.this[0].id : data.azurerm_resource_group.existing[0].id
}

resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV2_AZURE_40:Shared-key access stays on in auth_mode "sas" (the default) because a service SAS is signed with the account key; auth_mode = "entra" turns it off. The Pi never holds the key: it gets a container-scoped SAS with an expiry, and the account's SAS expiration policy blocks longer-lived ones.
  #checkov:skip=CKV_AZURE_33:The queue service is unused (blob backups only); setting queue logging would make the provider call the queue data plane, which this configuration avoids on purpose (data_plane_available = false).
  #checkov:skip=CKV_AZURE_35:A home Pi uploads from a residential uplink whose public address changes, so the network default must be Allow; with a static address, allowed_ip_ranges switches the default to Deny. Access is by container-scoped SAS or Entra role over HTTPS (TLS 1.2+).
  #checkov:skip=CKV_AZURE_59:Public network access is how a Pi on a home network reaches the account (there is no VNet or private endpoint at home); anonymous access is off, every request is authorised, and allowed_ip_ranges can restrict the networks.
  #checkov:skip=CKV2_AZURE_33:A private endpoint needs a VNet the home Pi is not in; see CKV_AZURE_59.
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys plus infrastructure encryption (two layers of AES-256) are used; a customer-managed key would need a Key Vault with purge protection, and losing that key would lose every backup, which is the wrong trade for a home backup store.
  name                = var.storage_account_name
  resource_group_name = local.resource_group_name
  location            = var.location

  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.account_replication_type
  access_tier              = "Hot"

  # Transport and access hardening.
  https_traffic_only_enabled      = true
  min_tls_version                 = "TLS1_2"
  allow_nested_items_to_be_public = false
  public_network_access_enabled   = true
  # A conditional on purpose: checkov evaluates this form (a bare comparison it cannot), so its
  # SAS-expiration-policy check (CKV2_AZURE_41) sees the policy below.
  shared_access_key_enabled         = var.auth_mode == "sas" ? true : false
  default_to_oauth_authentication   = true
  cross_tenant_replication_enabled  = false
  allowed_copy_scope                = "AAD"
  local_user_enabled                = false
  sftp_enabled                      = false
  is_hns_enabled                    = false
  nfsv3_enabled                     = false
  infrastructure_encryption_enabled = true

  # Any SAS signed with the account key may be valid for at most this long (one day more than
  # sas_validity_days, see locals.tf); a longer one is refused, not merely logged.
  sas_policy {
    expiration_period = local.sas_expiration_period
    expiration_action = "Block"
  }

  blob_properties {
    versioning_enabled       = true
    change_feed_enabled      = false
    last_access_time_enabled = false

    delete_retention_policy {
      days                     = var.blob_soft_delete_retention_days
      permanent_delete_enabled = false
    }

    container_delete_retention_policy {
      days = var.container_soft_delete_retention_days
    }
  }

  network_rules {
    default_action = length(var.allowed_ip_ranges) > 0 ? "Deny" : "Allow"
    ip_rules       = var.allowed_ip_ranges
    bypass         = ["AzureServices"]
  }

  tags = var.tags

  lifecycle {
    # The backups live here: replacing or destroying the account must be a deliberate code change.
    prevent_destroy = true
  }
}

resource "azurerm_management_lock" "this" {
  count = var.delete_lock_enabled ? 1 : 0

  name       = "homewatt-backup-cannot-delete"
  scope      = azurerm_storage_account.this.id
  lock_level = "CanNotDelete"
  notes      = "homewatt off-site backups: remove this lock (delete_lock_enabled = false) before deleting the account or a container."
}

resource "azurerm_storage_container" "this" {
  #checkov:skip=CKV2_AZURE_21:Blob read/write/delete logging is opt-in through log_analytics_workspace_id (a Log Analytics workspace costs money a home user may not want); the diagnostic setting is created when it is set.
  for_each = local.containers

  name                  = each.value
  storage_account_id    = azurerm_storage_account.this.id # Resource Manager API, no data-plane access
  container_access_type = "private"
  metadata = {
    homewatt_site = each.key
  }
}

# Container-level WORM (time-based retention, unlocked: lock it in Azure once you are sure, it
# cannot be undone). Only lifecycle-mode sites may have one (a validation in variables.tf).
resource "azurerm_storage_container_immutability_policy" "this" {
  for_each = local.immutability_days

  storage_container_resource_manager_id = azurerm_storage_container.this[each.key].id
  immutability_period_in_days           = each.value
  locked                                = false
  protected_append_writes_enabled       = false
  protected_append_writes_all_enabled   = false
}

resource "azurerm_storage_management_policy" "this" {
  storage_account_id = azurerm_storage_account.this.id

  dynamic "rule" {
    for_each = local.lifecycle_rules

    content {
      name    = rule.key
      enabled = true

      filters {
        blob_types   = ["blockBlob"]
        prefix_match = [rule.value.prefix]
      }

      actions {
        dynamic "base_blob" {
          for_each = rule.value.cool_after_days == null && rule.value.delete_after_days == null ? [] : [rule.value]

          content {
            tier_to_cool_after_days_since_modification_greater_than = base_blob.value.cool_after_days
            delete_after_days_since_modification_greater_than       = base_blob.value.delete_after_days
          }
        }

        version {
          delete_after_days_since_creation = rule.value.version_days
        }

        snapshot {
          delete_after_days_since_creation_greater_than = rule.value.version_days
        }
      }
    }
  }
}

# --- auth_mode = "sas": one container-scoped service SAS per site -----------------------------

resource "time_rotating" "sas" {
  for_each = local.sas_permissions

  rotation_days = local.sas_rotation_days
}

data "azurerm_storage_account_blob_container_sas" "this" {
  for_each = local.sas_permissions

  connection_string = azurerm_storage_account.this.primary_connection_string
  container_name    = azurerm_storage_container.this[each.key].name
  https_only        = true

  start  = timeadd(time_rotating.sas[each.key].rfc3339, local.sas_start_offset)
  expiry = timeadd(time_rotating.sas[each.key].rfc3339, local.sas_expiry_offset)

  permissions {
    read   = strcontains(each.value, "r")
    add    = strcontains(each.value, "a")
    create = strcontains(each.value, "c")
    write  = strcontains(each.value, "w")
    delete = strcontains(each.value, "d")
    list   = strcontains(each.value, "l")
  }
}

# --- auth_mode = "entra": a data role on the site's container for the site's principal ---------

resource "azurerm_role_definition" "backup_writer" {
  count = local.entra_writer_role_needed ? 1 : 0

  name        = "homewatt backup writer (${var.storage_account_name})"
  scope       = local.resource_group_id
  description = "Read, list, create and write blobs, but never delete them: homewatt sites whose old backups the lifecycle policy removes."

  permissions {
    actions      = []
    data_actions = local.entra_writer_data_actions
  }

  assignable_scopes = [local.resource_group_id]
}

resource "azurerm_role_assignment" "site" {
  for_each = local.entra_sites

  scope                            = azurerm_storage_container.this[each.key].id
  principal_id                     = each.value.principal_id
  principal_type                   = "ServicePrincipal"
  role_definition_name             = each.value.can_delete ? "Storage Blob Data Contributor" : null
  role_definition_id               = each.value.can_delete ? null : azurerm_role_definition.backup_writer[0].role_definition_resource_id
  skip_service_principal_aad_check = true
  description                      = "homewatt site ${each.key}: backups into its own container only"
}

# --- optional audit trail -----------------------------------------------------------------------

resource "azurerm_monitor_diagnostic_setting" "blob" {
  count = var.log_analytics_workspace_id == null ? 0 : 1

  name                       = "homewatt-blob-audit"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}
