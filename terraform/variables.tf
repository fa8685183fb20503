# Inputs. Every variable has a type and a description; the ones a mistake could make insecure or
# unappliable are validated here, before anything reaches Azure. README.md's tables are generated
# from this file (tools/hcl2/tfdocs.py).

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
  description = "Azure region for the resource group and the storage account, as its short name (the Name column of `az account list-locations -o table`, e.g. westeurope)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,39}$", var.location))
    error_message = "location must be a region's short name: lowercase letters and digits, e.g. westeurope or eastus2."
  }
}

variable "create_resource_group" {
  type        = bool
  description = "Create the resource group (true) or use an existing one named resource_group_name (false)."
  default     = true
}

variable "resource_group_name" {
  type        = string
  description = "Name of the resource group that holds the storage account (created unless create_resource_group is false)."
  default     = "rg-homewatt-backup"

  validation {
    condition     = can(regex("^[-\\w.()]{0,89}[-\\w()]$", var.resource_group_name))
    error_message = "resource_group_name must be 1-90 characters: letters, digits, '-', '_', '.', '(' or ')', not ending in '.'."
  }
}

variable "storage_account_name" {
  type        = string
  description = "Globally unique name of the backup storage account: 3-24 lowercase letters and digits."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 characters, lowercase letters and digits only (Azure's rule; it becomes <name>.blob.core.windows.net)."
  }
}

variable "account_replication_type" {
  type        = string
  description = "Replication of the storage account. Default GRS: the backups are the copy that must outlive the Pi, so they also survive the loss of a whole Azure region, for about twice LRS's (small) price. LRS is cheapest; ZRS/GZRS need a region with availability zones; regions without a paired region cannot use GRS (choose ZRS or LRS there). RA- variants add read access to the secondary during an outage, which a restore that can wait does not need."
  default     = "GRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.account_replication_type)
    error_message = "account_replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}

variable "sites" {
  type = map(object({
    retention         = optional(string, "lifecycle")
    immutability_days = optional(number)
    principal_id      = optional(string)
  }))
  description = "The sites that back up here, keyed by site name (the backup app's site, also its blob prefix); each gets its own private container. retention: who deletes old backups remotely, \"lifecycle\" (default: the storage account's lifecycle policy; the site's credential cannot delete at all) or \"rotation\" (the backup app; its SAS then carries the delete permission). immutability_days: optional time-based retention (container-level WORM, unlocked until you lock it in Azure), allowed only with retention = \"lifecycle\" because it makes the app's own rotation deletes fail, and at most the shortest backup_retention delete_after_days. principal_id: object ID of the site's Entra service principal or managed identity, required when auth_mode = \"entra\", unused otherwise."

  validation {
    condition     = length(var.sites) >= 1 && length(var.sites) <= 50
    error_message = "sites must name 1-50 sites (each takes two of the lifecycle policy's 100 rules)."
  }

  validation {
    condition     = alltrue([for name in keys(var.sites) : can(regex("^[a-z0-9]+(-[a-z0-9]+)*$", name))])
    error_message = "Site names must be lowercase letters and digits, in groups joined by single hyphens (e.g. home, cabin-2): they become container names and blob prefixes."
  }

  validation {
    condition     = alltrue([for name in keys(var.sites) : length(name) >= 1 && length(name) <= 40])
    error_message = "Site names must be 1-40 characters long (the container name adds container_name_prefix; Azure's limit is 63)."
  }

  validation {
    condition     = alltrue([for site in values(var.sites) : contains(["rotation", "lifecycle"], site.retention)])
    error_message = "Each site's retention must be \"rotation\" (the backup app deletes old backups) or \"lifecycle\" (the storage account's lifecycle policy does)."
  }

  validation {
    condition     = alltrue([for site in values(var.sites) : site.immutability_days == null ? true : site.retention == "lifecycle"])
    error_message = "immutability_days is allowed only with retention = \"lifecycle\": an immutability policy makes the backup app's own rotation deletes fail."
  }

  validation {
    condition     = alltrue([for site in values(var.sites) : site.immutability_days == null ? true : (site.immutability_days >= 1 && site.immutability_days <= 146000 && floor(site.immutability_days) == site.immutability_days)])
    error_message = "immutability_days must be a whole number of days from 1 to 146000 (Azure's limit), or null."
  }

  validation {
    condition     = alltrue([for site in values(var.sites) : site.immutability_days == null ? true : site.immutability_days <= min(var.backup_retention.hourly.delete_after_days, var.backup_retention.daily.delete_after_days)])
    error_message = "immutability_days must not exceed the shortest backup_retention delete_after_days: the lifecycle policy cannot delete a blob that is still immutable."
  }

  validation {
    condition     = alltrue([for site in values(var.sites) : site.principal_id == null ? true : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", site.principal_id))])
    error_message = "principal_id must be a lowercase GUID (the object ID of a service principal or managed identity), or null."
  }

  validation {
    condition     = var.auth_mode != "entra" || alltrue([for site in values(var.sites) : site.principal_id != null])
    error_message = "auth_mode = \"entra\" needs a principal_id for every site: the role assignment on the site's container is that site's only credential."
  }
}

variable "container_name_prefix" {
  type        = string
  description = "Prefix of every site's container name: the container is <prefix><site>."
  default     = "homewatt-"

  validation {
    condition     = can(regex("^[a-z0-9]+(-[a-z0-9]+)*-$", var.container_name_prefix)) && length(var.container_name_prefix) <= 22
    error_message = "container_name_prefix must be lowercase letters and digits in groups joined by single hyphens, end with '-', and be at most 22 characters."
  }
}

variable "auth_mode" {
  type        = string
  description = "How each site authenticates. \"sas\" (default): a container-scoped service SAS per site, which needs shared-key access on the account (the SAS is signed with the account key). \"entra\": shared-key access off; each site's Entra principal (sites[*].principal_id) gets a data role on its own container only, and no SAS is issued."
  default     = "sas"

  validation {
    condition     = contains(["sas", "entra"], var.auth_mode)
    error_message = "auth_mode must be \"sas\" or \"entra\"."
  }
}

variable "sas_validity_days" {
  type        = number
  description = "Lifetime of each site's SAS in days, from the apply that issued it. The account's SAS expiration policy blocks any SAS valid for longer."
  default     = 90

  validation {
    condition     = var.sas_validity_days >= 7 && var.sas_validity_days <= 365 && floor(var.sas_validity_days) == var.sas_validity_days
    error_message = "sas_validity_days must be a whole number of days from 7 to 365."
  }
}

variable "sas_renewal_days" {
  type        = number
  description = "How many days before a SAS expires a plain `terraform apply` issues its successor (so the old and the new token overlap while you roll it out)."
  default     = 30

  validation {
    condition     = var.sas_renewal_days >= 1 && var.sas_renewal_days < var.sas_validity_days && floor(var.sas_renewal_days) == var.sas_renewal_days
    error_message = "sas_renewal_days must be a whole number of days, at least 1 and less than sas_validity_days."
  }
}

variable "backup_retention" {
  type = object({
    hourly = object({
      cool_after_days   = optional(number)
      delete_after_days = number
    })
    daily = object({
      cool_after_days   = optional(number)
      delete_after_days = number
    })
  })
  description = "Lifecycle per backup kind (the backup app's blob names are <site>/<kind>/<timestamp>.<ext>): move a backup to the Cool tier after cool_after_days (null: stay Hot) and, for sites with retention = \"lifecycle\", delete it after delete_after_days. Defaults: hourly incrementals stay Hot (Cool bills at least 30 days, longer than they live) and go after 14 days; daily fulls go Cool after 30 days and are kept for 365."
  default = {
    hourly = {
      cool_after_days   = null
      delete_after_days = 14
    }
    daily = {
      cool_after_days   = 30
      delete_after_days = 365
    }
  }

  validation {
    condition     = alltrue([for kind in values(var.backup_retention) : kind.delete_after_days >= 1 && kind.delete_after_days <= 3650 && floor(kind.delete_after_days) == kind.delete_after_days])
    error_message = "delete_after_days must be a whole number of days from 1 to 3650."
  }

  validation {
    condition     = alltrue([for kind in values(var.backup_retention) : kind.cool_after_days == null ? true : (kind.cool_after_days >= 1 && kind.cool_after_days < kind.delete_after_days && floor(kind.cool_after_days) == kind.cool_after_days)])
    error_message = "cool_after_days must be null or a whole number of days, at least 1 and less than delete_after_days."
  }
}

variable "previous_version_retention_days" {
  type        = number
  description = "Days a previous blob version (what a delete or an overwrite leaves behind, since versioning is on) is kept before the lifecycle policy deletes it; then blob soft delete keeps it blob_soft_delete_retention_days longer."
  default     = 7

  validation {
    condition     = var.previous_version_retention_days >= 1 && var.previous_version_retention_days <= 365 && floor(var.previous_version_retention_days) == var.previous_version_retention_days
    error_message = "previous_version_retention_days must be a whole number of days from 1 to 365."
  }
}

variable "blob_soft_delete_retention_days" {
  type        = number
  description = "Days a deleted blob or blob version stays recoverable (blob soft delete)."
  default     = 14

  validation {
    condition     = var.blob_soft_delete_retention_days >= 1 && var.blob_soft_delete_retention_days <= 365 && floor(var.blob_soft_delete_retention_days) == var.blob_soft_delete_retention_days
    error_message = "blob_soft_delete_retention_days must be a whole number of days from 1 to 365 (Azure's range)."
  }
}

variable "container_soft_delete_retention_days" {
  type        = number
  description = "Days a deleted container stays recoverable (container soft delete)."
  default     = 30

  validation {
    condition     = var.container_soft_delete_retention_days >= 1 && var.container_soft_delete_retention_days <= 365 && floor(var.container_soft_delete_retention_days) == var.container_soft_delete_retention_days
    error_message = "container_soft_delete_retention_days must be a whole number of days from 1 to 365 (Azure's range)."
  }
}

variable "allowed_ip_ranges" {
  type        = list(string)
  description = "Public IPv4 addresses or CIDR ranges (prefix /0 to /30) allowed to reach the storage account. Empty (default): any network, since a home uplink's address usually changes. With a static address, list it here and every other network is denied."
  default     = []

  validation {
    condition     = alltrue([for cidr in var.allowed_ip_ranges : can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(/([0-9]|[12][0-9]|30))?$", cidr))])
    error_message = "allowed_ip_ranges entries must be IPv4 addresses or CIDR ranges with a prefix of /0 to /30 (Azure takes single addresses, not /31 or /32)."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Resource ID of a Log Analytics workspace to send the blob service's read, write and delete logs to (an audit trail of every access). null (default): no diagnostic logs (a workspace costs money)."
  default     = null

  validation {
    condition     = var.log_analytics_workspace_id == null ? true : can(regex("(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.OperationalInsights/workspaces/[^/]+$", var.log_analytics_workspace_id))
    error_message = "log_analytics_workspace_id must be a Log Analytics workspace resource ID (/subscriptions/.../providers/Microsoft.OperationalInsights/workspaces/NAME), or null."
  }
}

variable "delete_lock_enabled" {
  type        = bool
  description = "Put a CanNotDelete management lock on the storage account, so neither it nor a container can be deleted through Azure Resource Manager until the lock is removed (set false and apply first)."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource that takes them."
  default = {
    project   = "homewatt"
    component = "backup"
  }
}
