# backup_azure_config and backup_sas_tokens are the contract with homewatt-backup
# (contracts/backup-azure.json): names and object keys are tested against that file.

output "backup_azure_config" {
  description = "Per site, the `azure:` section of that site's backup.yaml: account_url (primary blob endpoint, no trailing slash), container (the site's private container), retention (rotation | lifecycle) and auth (sas | service_principal, from auth_mode; with service_principal add tenant_id, client_id and the client certificate or secret of the site's principal). Not secret."
  value = {
    for site, container in azurerm_storage_container.this : site => {
      account_url = trimsuffix(azurerm_storage_account.this.primary_blob_endpoint, "/")
      container   = container.name
      retention   = var.sites[site].retention
      auth        = local.backup_auth_by_mode[var.auth_mode]
    }
  }
}

output "backup_sas_tokens" {
  description = "Per site, its container-scoped SAS token (query string without the leading '?'), for the file named by azure.sas_file (0600, root) or the systemd credential named by azure.sas_credential; never for backup.yaml. Empty in auth_mode \"entra\"."
  sensitive   = true
  value = {
    for site, sas in data.azurerm_storage_account_blob_container_sas.this : site => trimprefix(sas.sas, "?")
  }
}

output "sas_expires_at" {
  description = "Per site, when its current SAS expires (RFC 3339, UTC). Roll out a new one before then: see README.md, \"Rotating a SAS\"."
  value       = { for site, sas in data.azurerm_storage_account_blob_container_sas.this : site => sas.expiry }
}

output "sas_renew_after" {
  description = "Per site, from when a plain `terraform apply` issues the successor of its SAS (RFC 3339, UTC)."
  value       = { for site, rotation in time_rotating.sas : site => rotation.rotation_rfc3339 }
}

output "storage_account_name" {
  description = "Name of the backup storage account."
  value       = azurerm_storage_account.this.name
}

output "storage_account_id" {
  description = "Resource ID of the backup storage account."
  value       = azurerm_storage_account.this.id
}

output "resource_group_name" {
  description = "Name of the resource group that holds the storage account."
  value       = local.resource_group_name
}

output "container_ids" {
  description = "Per site, the Resource Manager ID of its container (the scope of its role assignment in auth_mode \"entra\")."
  value       = { for site, container in azurerm_storage_container.this : site => container.id }
}

output "lifecycle_rules" {
  description = "Per lifecycle rule (<site>-<kind>), the blob prefix it filters on and its days: cool_after_days, delete_after_days (null for rotation sites: the backup app deletes) and the days previous versions are kept."
  value       = local.lifecycle_rules
}
