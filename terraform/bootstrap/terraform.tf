# The remote-state bootstrap: a separate root module with local state (it must exist before any
# remote state can), applied once. Same pins as the main module.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "= 4.57.0"
    }
  }
}
