provider "azurerm" {
  # null: taken from ARM_SUBSCRIPTION_ID or the Azure CLI's current subscription.
  subscription_id = var.subscription_id

  # Register only the core resource providers (Microsoft.Storage among them), not ~70 of them.
  resource_provider_registrations = "core"

  # Any data-plane call the provider makes uses Entra ID, never the account key.
  storage_use_azuread = true

  features {
    storage {
      # Everything here is managed through Azure Resource Manager (containers by
      # storage_account_id, no queue or static website settings): the provider never needs to
      # reach the blob endpoint, so an operator needs no data-plane role and network rules
      # cannot lock Terraform out.
      data_plane_available = false
    }
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }
}

provider "time" {}
