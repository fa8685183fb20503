# Versions: Terraform and every provider pinned exactly (Terraform's own range is the floor the
# validations need: cross-variable validation conditions arrived in 1.9).
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "= 4.57.0"
    }
    time = {
      source  = "hashicorp/time"
      version = "= 0.13.1"
    }
  }

  # The state holds every site's SAS token and the account's keys: it lives in the state storage
  # account made by bootstrap/ (versioned, Entra ID auth only), configured at init time with
  # `terraform init -backend-config=backend.hcl` (see README.md, "Remote state").
  backend "azurerm" {}
}
