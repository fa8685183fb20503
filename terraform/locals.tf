# Derived values. Everything here depends on variables only (no resource attributes), so the tests
# can evaluate this file with Terraform itself, without any provider.

locals {
  # The backup app's contract (contracts/backup-azure.json): blob names are
  # <site>/<kind>/<UTC timestamp>.<ext>, retention is "rotation" or "lifecycle", and the SAS
  # permissions per retention mode are these strings (r read, c create, w write, d delete, l list).
  backup_kinds = ["hourly", "daily"]
  sas_permissions_by_retention = {
    rotation  = "rcwdl"
    lifecycle = "rcwl"
  }

  # auth_mode -> the backup app's azure.auth (contracts/backup-azure.json auth_modes)
  backup_auth_by_mode = {
    sas   = "sas"
    entra = "service_principal"
  }

  containers = { for site in keys(var.sites) : site => "${var.container_name_prefix}${site}" }

  # Sites that get a SAS (all of them in "sas" mode, none in "entra" mode), with its permissions.
  sas_permissions = {
    for site, cfg in var.sites : site => local.sas_permissions_by_retention[cfg.retention]
    if var.auth_mode == "sas"
  }

  # A SAS is valid sas_validity_days from its issue; time_rotating marks it for renewal
  # sas_renewal_days before that, so an apply in that window issues the successor while the old
  # token still works. The start is back-dated 15 minutes against clock skew, and the account's
  # SAS expiration policy allows one day more than the validity, so the back-dating never trips it.
  sas_rotation_days     = var.sas_validity_days - var.sas_renewal_days
  sas_start_offset      = "-15m"
  sas_expiry_offset     = "${var.sas_validity_days * 24}h"
  sas_expiration_period = format("%d.00:00:00", var.sas_validity_days + 1)

  # "entra" mode: each site's principal gets a data role on its own container only. Rotation sites
  # get the built-in Storage Blob Data Contributor; lifecycle sites a custom role without the
  # delete data action, so the credential matches the SAS permissions of that mode.
  entra_sites = {
    for site, cfg in var.sites : site => {
      principal_id = cfg.principal_id
      can_delete   = cfg.retention == "rotation"
    }
    if var.auth_mode == "entra"
  }
  entra_writer_role_needed = anytrue([for site in values(local.entra_sites) : !site.can_delete])
  entra_writer_data_actions = [
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
  ]

  # One lifecycle rule per site and backup kind, filtered to that site's container and kind prefix.
  # Lifecycle sites: Cool after cool_after_days, deleted after delete_after_days. Rotation sites:
  # the same tiering, but the backup app deletes. For both, previous versions (what a delete or an
  # overwrite leaves, since versioning is on) and snapshots go previous_version_retention_days later.
  lifecycle_rules = merge([
    for site, cfg in var.sites : {
      for kind in local.backup_kinds : "${site}-${kind}" => {
        site              = site
        kind              = kind
        prefix            = "${local.containers[site]}/${site}/${kind}/"
        cool_after_days   = var.backup_retention[kind].cool_after_days
        delete_after_days = cfg.retention == "lifecycle" ? var.backup_retention[kind].delete_after_days : null
        version_days      = var.previous_version_retention_days
      }
    }
  ]...)

  immutability_days = { for site, cfg in var.sites : site => cfg.immutability_days if cfg.immutability_days != null }
}
