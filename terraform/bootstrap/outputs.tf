output "backend_config" {
  description = "The main module's azurerm backend settings (Entra ID auth, no keys)."
  value       = local.backend_config
}

output "backend_hcl" {
  description = "The same settings as the text of ../backend.hcl: `terraform output -raw backend_hcl > ../backend.hcl`."
  value       = <<-EOT
    resource_group_name  = "${local.backend_config.resource_group_name}"
    storage_account_name = "${local.backend_config.storage_account_name}"
    container_name       = "${local.backend_config.container_name}"
    key                  = "${local.backend_config.key}"
    use_azuread_auth     = true
  EOT
}

output "storage_account_id" {
  description = "Resource ID of the state storage account."
  value       = azurerm_storage_account.this.id
}
