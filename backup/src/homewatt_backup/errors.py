"""One base error for everything the operator must see, and the one place where library
exceptions (requests, azure-core, OSError) become those errors.

Every message is one line that says what failed and what to do; it never carries a secret
(SAS signatures are redacted wherever a library message is quoted).
"""

from __future__ import annotations

import errno
import re

import requests
from azure.core import exceptions as azure_exc

from homewatt_common.problems import ProblemsError

_SIG = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)
# an Authorization value ("Token <secret>", "token=<secret>"): the secret is 16 or more
# characters of an API token's alphabet, so prose such as "token must not be written" stays
_TOKEN = re.compile(r"(Token[\s=]+)[A-Za-z0-9_\-+/=.]{16,}", re.IGNORECASE)


def redact(text: str) -> str:
    """Text with SAS signatures and tokens removed, safe for logs and error lines."""
    return _TOKEN.sub(r"\1<redacted>", _SIG.sub(r"\1<redacted>", text))


class BackupError(Exception):
    """A failure the operator must see as one clear line (the CLI exits 1)."""


class ConfigError(BackupError, ProblemsError):
    """The configuration file or a secret it names is wrong: one problem a line, each
    `file:line: key: problem` (homewatt_common.problems)."""


class InfluxError(BackupError):
    """InfluxDB refused, failed or could not be reached (dump, restore, health point)."""


class IncompleteDumpError(InfluxError):
    """A dump does not hold everything InfluxDB reported (field values counted in its range,
    shards listed): it is not kept, and the run fails."""


class ArchiveError(BackupError):
    """A local archive could not be written or read (full disk, permissions)."""


class CorruptArchiveError(ArchiveError):
    """An archive's content does not match its checksums or its manifest."""


class StoreError(BackupError):
    """Azure Blob Storage refused or failed an operation."""


class StoreAuthError(StoreError):
    """The SAS is expired, wrong, revoked, or lacks a needed permission."""


class BlobExistsError(StoreError):
    """The blob name is taken: archives are never overwritten."""


class UploadInterruptedError(StoreError):
    """The connection broke mid-transfer; nothing partial is left remotely."""


class RestoreRefusedError(BackupError):
    """A restore would overwrite existing data and --force was not given."""


class ClockNotSyncedError(BackupError):
    """The system clock is not synchronised: the run does not start."""


class LockedError(BackupError):
    """Another run holds the state directory's lock."""


def first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return redact(line)


def from_oserror(exc: OSError, action: str) -> ArchiveError:
    """`action` says what was being done, e.g. 'writing /var/lib/.../x.tar'."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ArchiveError(
            f"no space left on device while {action}: free some space or "
            "lower the number of local copies kept (local_keep_full)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ArchiveError(f"permission denied while {action}: {exc.strerror}")
    return ArchiveError(f"{action} failed: {exc.strerror or exc}")


def from_requests(exc: requests.RequestException, what: str, url: str) -> InfluxError:
    """`what` names the operation, e.g. 'InfluxDB export'."""
    if isinstance(exc, requests.ConnectTimeout):
        return InfluxError(
            f"{what}: InfluxDB at {url} is unreachable (connect timed out): is it running,"
            " and is the url in the config right?"
        )
    if isinstance(exc, requests.ConnectionError):
        return InfluxError(
            f"{what}: InfluxDB at {url} is unreachable (connection failed): "
            "is it running, and is the url in the config right?"
        )
    if isinstance(exc, requests.Timeout):
        return InfluxError(
            f"{what}: InfluxDB at {url} accepted the connection but did not answer in time"
        )
    return InfluxError(f"{what}: request to {url} failed: {first_line(str(exc))}")


def influx_status_error(what: str, status: int, body: str) -> InfluxError:
    detail = first_line(body)[:300]
    if status == 401:
        return InfluxError(
            f"{what}: InfluxDB rejected the token (401 unauthorized): check the token credential"
        )
    if status == 403:
        return InfluxError(
            f"{what}: the token lacks the permission for this (403 forbidden): {detail}"
        )
    if status == 404:
        return InfluxError(f"{what}: not found (404): {detail}")
    return InfluxError(f"{what}: InfluxDB answered {status}: {detail}")


_SAS_REFUSED = {"AuthenticationFailed", "AuthorizationFailure"}
_SAS_LACKS = {"AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch"}


def _code(exc: azure_exc.HttpResponseError) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def from_azure(  # noqa: PLR0911 (one return per Azure failure kind reads best)
    exc: azure_exc.AzureError,
    action: str,
    sas_source: str,
    account_url: str = "",
    auth: str = "sas",
) -> StoreError:
    """Azure's exceptions become one line naming the operation, e.g. 'upload site/x.tar', and
    for a network failure the storage account's URL; the library's message is never cut.
    `sas_source`: where the credential is (config.AzureConfig.credential_source); `auth`:
    sas or service_principal (an Entra ID token: a refusal is about its role, not a SAS)."""
    at = f" at {account_url}" if account_url else ""
    if isinstance(exc, azure_exc.HttpResponseError):
        code = _code(exc)
        status = exc.status_code
        if auth == "service_principal" and (
            code in _SAS_REFUSED | _SAS_LACKS or status in (401, 403)
        ):
            return StoreAuthError(
                f"{action}: Azure refused the Entra ID token of {sas_source} ({code or status}):"
                ' it needs a data role on the container (Terraform\'s auth_mode "entra"'
                " assigns one to sites[*].principal_id), with delete for retention rotation"
            )
        if code in _SAS_REFUSED or (status == 403 and code not in _SAS_LACKS):
            return StoreAuthError(
                f"{action}: Azure refused the SAS ({code or status}): it is expired, revoked "
                f"or wrong; put a fresh container SAS into {sas_source}"
            )
        if code in _SAS_LACKS:
            return StoreAuthError(
                f"{action}: the SAS lacks the permission for this ({code}); "
                f"it needs the permissions listed in contracts/backup-azure.json for the "
                f"retention mode; put a matching SAS into {sas_source}"
            )
        if code == "ContainerNotFound":
            return StoreError(
                f"{action}: the container does not exist (ContainerNotFound): "
                "check azure.container, or create it with terraform"
            )
        if code == "BlobAlreadyExists":
            return BlobExistsError(f"{action}: the blob already exists (never overwritten)")
        if code in {"Md5Mismatch", "Crc64Mismatch"}:
            return StoreError(
                f"{action}: Azure found a checksum mismatch ({code}): "
                "the data was damaged in transit; the next run retries"
            )
        message = first_line(exc.message or str(exc))
        return StoreError(f"{action}: Azure answered {status} {code}: {message}")
    if isinstance(exc, (azure_exc.ServiceResponseError, azure_exc.IncompleteReadError)):
        return UploadInterruptedError(
            f"{action}: the connection to Azure{at} broke mid-transfer "
            f"({first_line(str(exc))}); nothing partial is kept, the next run retries"
        )
    if "MD5 mismatch" in str(exc) or "CRC mismatch" in str(exc).upper():
        return StoreError(
            f"{action}: the content differs from its stored checksum "
            f"({first_line(str(exc))}): damaged in transit or in storage"
        )
    if isinstance(exc, azure_exc.ServiceRequestError):
        return StoreError(
            f"{action}: Azure Blob Storage{at} is unreachable "
            f"({first_line(str(exc))}); the next run retries"
        )
    return StoreError(f"{action}: {first_line(str(exc))}")
