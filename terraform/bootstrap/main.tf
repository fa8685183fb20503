# Storage for the main module's Terraform state. The state holds every site's SAS token and the
# backup account's keys, so this account is stricter than the backup one: Entra ID only (no shared
# key, so no SAS and no account key work at all), versioned, soft-deleted, locked against deletion.

data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "this" {
  name     = var.resource_group_name
  location = var.location
  tags     = var.tags
}

resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV_AZURE_33:The queue service is unused (state blobs only); queue logging would make the provider call the queue data plane, which this configuration avoids (data_plane_available = false).
  #checkov:skip=CKV_AZURE_35:The operator applies from a laptop or home network whose address changes, so the network default is Allow unless allowed_ip_ranges names the networks; authorisation is by Entra ID only (shared key off).
  #checkov:skip=CKV_AZURE_59:Public network access is how an operator without a VNet reaches the state; anonymous and shared-key access are off, so every request needs an Entra ID role on the container.
  #checkov:skip=CKV2_AZURE_33:A private endpoint needs a VNet the operator is not in; see CKV_AZURE_59.
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys plus infrastructure encryption (two layers of AES-256); a customer-managed key would need a Key Vault whose loss would lose the state.
  name                = var.storage_account_name
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location

  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.account_replication_type
  access_tier              = "Hot"

  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  allow_nested_items_to_be_public   = false
  public_network_access_enabled     = true
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  cross_tenant_replication_enabled  = false
  allowed_copy_scope                = "AAD"
  local_user_enabled                = false
  sftp_enabled                      = false
  is_hns_enabled                    = false
  nfsv3_enabled                     = false
  infrastructure_encryption_enabled = true

  # No SAS can be used while shared key is off; the policy is a second fence should it be enabled.
  sas_policy {
    expiration_period = "1.00:00:00"
    expiration_action = "Block"
  }

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days                     = var.soft_delete_retention_days
      permanent_delete_enabled = false
    }

    container_delete_retention_policy {
      days = var.soft_delete_retention_days
    }
  }

  network_rules {
    default_action = length(var.allowed_ip_ranges) > 0 ? "Deny" : "Allow"
    ip_rules       = var.allowed_ip_ranges
    bypass         = ["AzureServices"]
  }

  tags = var.tags

  lifecycle {
    prevent_destroy = true
  }
}

resource "azurerm_management_lock" "this" {
  count = var.delete_lock_enabled ? 1 : 0

  name       = "homewatt-tfstate-cannot-delete"
  scope      = azurerm_storage_account.this.id
  lock_level = "CanNotDelete"
  notes      = "Terraform state of homewatt's backup storage."
}

resource "azurerm_storage_container" "this" {
  #checkov:skip=CKV2_AZURE_21:Blob request logging needs a Log Analytics workspace (a cost); every access needs an Entra ID role on this container, which the Azure activity log records when granted.
  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_role_assignment" "state" {
  for_each = local.state_principal_ids

  scope                = azurerm_storage_container.this.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = each.value
  description          = "Read and write homewatt's Terraform state"
}

# Every apply writes a new state version; old versions (with old SAS tokens) go after a while.
resource "azurerm_storage_management_policy" "this" {
  storage_account_id = azurerm_storage_account.this.id

  rule {
    name    = "state-versions"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${azurerm_storage_container.this.name}/"]
    }

    actions {
      version {
        delete_after_days_since_creation = var.state_version_retention_days
      }
    }
  }
}
