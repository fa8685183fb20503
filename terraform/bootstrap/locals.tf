locals {
  # Whoever applies this module, plus any further principals, may read and write the state.
  state_principal_ids = toset(concat([data.azurerm_client_config.current.object_id], var.state_principal_ids))

  backend_config = {
    resource_group_name  = azurerm_resource_group.this.name
    storage_account_name = azurerm_storage_account.this.name
    container_name       = azurerm_storage_container.this.name
    key                  = var.state_key
    use_azuread_auth     = true
  }
}
