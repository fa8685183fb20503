provider "azurerm" {
  # null: taken from ARM_SUBSCRIPTION_ID or the Azure CLI's current subscription.
  subscription_id = var.subscription_id

  resource_provider_registrations = "core"

  # Shared-key access is off on the state account: every data-plane call uses Entra ID.
  storage_use_azuread = true

  features {
    storage {
      # Managed through Azure Resource Manager only (see ../providers.tf).
      data_plane_available = false
    }
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }
}
