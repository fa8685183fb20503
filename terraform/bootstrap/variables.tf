variable "subscription_id" {
  type        = string
  description = "Azure subscription ID to deploy into. null: ARM_SUBSCRIPTION_ID or the Azure CLI's current subscription."
  default     = null

  validation {
    condition     = var.subscription_id == null ? true : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id must be a lowercase GUID such as 00000000-0000-0000-0000-000000000000, or null."
  }
}

variable "location" {
  type        = string
  description = "Azure region of the state storage account, as its short name (e.g. westeurope)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,39}$", var.location))
    error_message = "location must be a region's short name: lowercase letters and digits, e.g. westeurope or eastus2."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Name of the resource group created for the state storage account."
  default     = "rg-homewatt-tfstate"

  validation {
    condition     = can(regex("^[-\\w.()]{0,89}[-\\w()]$", var.resource_group_name))
    error_message = "resource_group_name must be 1-90 characters: letters, digits, '-', '_', '.', '(' or ')', not ending in '.'."
  }
}

variable "storage_account_name" {
  type        = string
  description = "Globally unique name of the state storage account: 3-24 lowercase letters and digits."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 characters, lowercase letters and digits only."
  }
}

variable "account_replication_type" {
  type        = string
  description = "Replication of the state storage account (GRS by default, as for the backups: the state is what lets you manage them)."
  default     = "GRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.account_replication_type)
    error_message = "account_replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}

variable "container_name" {
  type        = string
  description = "Name of the private container that holds the state files."
  default     = "tfstate"

  validation {
    condition     = can(regex("^[a-z0-9]+(-[a-z0-9]+)*$", var.container_name)) && length(var.container_name) >= 3 && length(var.container_name) <= 63
    error_message = "container_name must be 3-63 lowercase letters and digits, in groups joined by single hyphens."
  }
}

variable "state_key" {
  type        = string
  description = "Blob name of the main module's state inside the container (the backend's key)."
  default     = "homewatt-backup.tfstate"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}\\.tfstate$", var.state_key))
    error_message = "state_key must be a blob name ending in .tfstate: letters, digits, '.', '_', '-' and '/'."
  }
}

variable "state_principal_ids" {
  type        = list(string)
  description = "Object IDs of further principals (e.g. a CI service principal) that run the main module and so need read/write on the state container. The identity applying this module always gets it."
  default     = []

  validation {
    condition     = alltrue([for id in var.state_principal_ids : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", id))])
    error_message = "state_principal_ids entries must be lowercase GUIDs (object IDs)."
  }
}

variable "state_version_retention_days" {
  type        = number
  description = "Days a previous version of a state file is kept (every apply writes a new one; old ones still hold old SAS tokens)."
  default     = 90

  validation {
    condition     = var.state_version_retention_days >= 1 && var.state_version_retention_days <= 3650 && floor(var.state_version_retention_days) == var.state_version_retention_days
    error_message = "state_version_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "soft_delete_retention_days" {
  type        = number
  description = "Days a deleted state blob, blob version or container stays recoverable."
  default     = 30

  validation {
    condition     = var.soft_delete_retention_days >= 1 && var.soft_delete_retention_days <= 365 && floor(var.soft_delete_retention_days) == var.soft_delete_retention_days
    error_message = "soft_delete_retention_days must be a whole number of days from 1 to 365 (Azure's range)."
  }
}

variable "allowed_ip_ranges" {
  type        = list(string)
  description = "Public IPv4 addresses or CIDR ranges (/0 to /30) allowed to reach the state account. Empty (default): any network (authorisation is by Entra ID only)."
  default     = []

  validation {
    condition     = alltrue([for cidr in var.allowed_ip_ranges : can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(/([0-9]|[12][0-9]|30))?$", cidr))])
    error_message = "allowed_ip_ranges entries must be IPv4 addresses or CIDR ranges with a prefix of /0 to /30."
  }
}

variable "delete_lock_enabled" {
  type        = bool
  description = "Put a CanNotDelete management lock on the state storage account."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource that takes them."
  default = {
    project   = "homewatt"
    component = "tfstate"
  }
}
