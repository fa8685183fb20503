"""Remote storage: a BlobStore protocol and its Azure Blob Storage adapter
(azure-storage-blob), reached with a container-scoped SAS or, with `azure.auth:
service_principal`, an Entra ID token for the site's service principal (azure-identity's
client-credentials flow with a client certificate or secret: `azure_credential`; a Raspberry
Pi has no managed identity). Checksums: MD5 of every request body is sent and checked by the service
(validate_content), the whole archive's MD5 is stored as Content-MD5 and its SHA-256 (and the
manifest summary) as blob metadata; every download is checked against them.

A blob is written exactly once, by its create-only upload: nothing here changes a blob
afterwards (no Set Blob Metadata or Properties), so uploads work on a container with a
time-based immutability policy and leave a single version where versioning is on. Whether a
blob was verified is kept locally (ledger.py)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from azure.core import exceptions as azure_exc
from azure.core.credentials import AccessToken, TokenCredential
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.storage.blob import BlobClient, ContainerClient, ContentSettings, ExponentialRetry

from homewatt_backup.config import DEFAULT_AUTHORITY_HOST, AzureConfig, Secrets
from homewatt_backup.errors import StoreAuthError, StoreError, from_azure, from_oserror
from homewatt_backup.models import BackupId, RemoteBackup
from homewatt_common.secretfile import parse_sas

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
BLOCK_SIZE = 4 * 1024 * 1024

# contracts/backup-azure.json: sas_permissions per retention mode
SAS_PERMISSIONS = {"rotation": "rcwdl", "lifecycle": "rcwl"}


def _no_progress(_: int) -> None:
    return None


class BlobStore(Protocol):
    """What the backup, verify and restore flows need of a remote store."""

    def list(self, prefix: str) -> list[RemoteBackup]: ...

    def upload(
        self,
        name: str,
        path: Path,
        metadata: dict[str, str],
        md5_b64: str,
        progress: Progress = _no_progress,
    ) -> None:
        """Create the blob; never overwrites (BlobExistsError when the name is taken)."""
        ...

    def download(self, name: str, dest: Path, progress: Progress = _no_progress) -> None:
        """Write the blob to `dest` (atomically: nothing at `dest` after a failure)."""
        ...

    def metadata(self, name: str) -> dict[str, str] | None: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class SasInfo:
    permissions: str
    expiry: datetime | None
    resource: str | None


def inspect_sas(sas: str, retention: str, now: datetime, source: str) -> SasInfo:
    """Check a SAS before use: its parameters must parse (homewatt_common.secretfile), and it
    must carry the permissions the retention mode needs and not have expired. Raises
    StoreAuthError with the fix."""
    try:
        parsed = parse_sas(sas.removeprefix("?"))
    except ValueError as exc:
        raise StoreAuthError(
            f"the SAS in {source} is not a valid SAS: {exc}; put the one"
            " `terraform output -json backup_sas_tokens` gives there"
        ) from None
    permissions, expiry, resource = parsed.permissions, parsed.expiry, parsed.resource
    needed = SAS_PERMISSIONS[retention]
    missing = "".join(p for p in needed if p not in permissions)
    if missing:
        raise StoreAuthError(
            f"the SAS in {source} lacks permission(s) {missing!r}: retention "
            f"{retention} needs {needed!r}, the SAS grants {permissions!r}"
        )
    if expiry is not None and expiry <= now:
        raise StoreAuthError(
            f"the SAS in {source} expired at {expiry:%Y-%m-%d %H:%M} UTC: "
            "put a fresh one there (terraform output backup_sas_tokens)"
        )
    if retention == "lifecycle" and "d" in permissions:
        log.warning("the SAS grants delete but retention is lifecycle: a SAS without 'd' is enough")
    return SasInfo(permissions, expiry, resource)


class _EntraToken:
    """A TokenCredential whose failures name the principal and the sign-in host in one line
    (StoreAuthError: the storage pipeline passes it through, no retries on a refusal)."""

    def __init__(self, inner: TokenCredential, azure: AzureConfig) -> None:
        self.inner = inner
        self.where = f"{azure.authority_host}/{azure.tenant_id}"
        self.source = azure.credential_source

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: object,
    ) -> AccessToken:
        try:
            return self.inner.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
        except azure_exc.ClientAuthenticationError as exc:
            raise StoreAuthError(
                f"Entra ID at {self.where} refused {self.source}: {' '.join(str(exc).split())}"
            ) from None
        except azure_exc.AzureError as exc:
            raise StoreError(
                f"Entra ID at {self.where} is unreachable for {self.source}:"
                f" {' '.join(str(exc).split())}"
            ) from None


def azure_credential(
    azure: AzureConfig, secrets: Secrets, *, interactive: bool = True
) -> str | TokenCredential | None:
    """What the storage client signs in with: the SAS (auth: sas), or a token credential for
    the service principal (auth: service_principal), asking `azure.authority_host`; None when
    the secret was not read. `interactive`: 5 s to connect and one retry, as for the store.
    StoreAuthError (naming the file, never its content) for a certificate that does not load."""
    if azure.auth == "sas":
        return secrets.sas
    assert azure.tenant_id is not None and azure.client_id is not None  # config validated
    timeouts: dict[str, int] = {"connection_timeout": 5, "retry_total": 1} if interactive else {}
    # another sign-in host is trusted as configured: MSAL would otherwise ask
    # login.microsoftonline.com whether it knows that host (instance discovery)
    options: dict[str, Any] = {
        "authority": azure.authority_host,
        "disable_instance_discovery": azure.authority_host != DEFAULT_AUTHORITY_HOST,
        **timeouts,
    }
    inner: TokenCredential
    if secrets.client_certificate is not None:
        try:
            inner = CertificateCredential(
                azure.tenant_id,
                azure.client_id,
                certificate_data=secrets.client_certificate.encode("ascii"),
                **options,
            )
        except ValueError as exc:
            raise StoreAuthError(
                f"the client certificate of {azure.credential_source} does not load: {exc}"
            ) from None
    elif secrets.client_secret is not None:
        inner = ClientSecretCredential(
            azure.tenant_id,
            azure.client_id,
            secrets.client_secret,
            **options,
        )
    else:
        return None
    return _EntraToken(inner, azure)


class AzureBlobStore:
    """One site's container, reached with a container-scoped SAS or an Entra ID token
    credential (`azure_credential`). The defaults suit the
    timer's `run` (patient: 3 retries, ~15 s, 45 s, 135 s apart); `interactive()` suits a
    person waiting (`list`, `verify`, `restore`): an unreachable account within ~12 s."""

    def __init__(
        self,
        account_url: str,
        container: str,
        credential: str | TokenCredential,
        sas_source: str,
        *,
        auth: str = "sas",
        retries: int = 3,
        connection_timeout: float = 20,
        read_timeout: float = 120,
        retry_backoff: float = 15,
    ) -> None:
        self.account_url = account_url
        self.container = container
        self.sas_source = sas_source
        self.auth = auth
        # the storage SDK's own policy: waits ~retry_backoff s, then 3x longer, with jitter
        policy = ExponentialRetry(
            initial_backoff=int(retry_backoff),
            increment_base=3,
            retry_total=retries,
            random_jitter_range=min(3, int(retry_backoff)),
        )
        self.client = ContainerClient(
            account_url,
            container,
            credential=credential,
            retry_policy=policy,
            connection_timeout=connection_timeout,
            read_timeout=read_timeout,
            max_single_put_size=BLOCK_SIZE,
            max_block_size=BLOCK_SIZE,
            max_single_get_size=BLOCK_SIZE,
            max_chunk_get_size=BLOCK_SIZE,
        )

    @classmethod
    def interactive(
        cls,
        account_url: str,
        container: str,
        credential: str | TokenCredential,
        sas_source: str,
        *,
        auth: str = "sas",
    ) -> AzureBlobStore:
        """5 s to connect, at most 1 retry after ~1 s: an error within ~12 s, not minutes."""
        return cls(
            account_url,
            container,
            credential,
            sas_source,
            auth=auth,
            retries=1,
            connection_timeout=5,
            retry_backoff=1,
        )

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except azure_exc.AzureError as exc:
            raise from_azure(exc, action, self.sas_source, self.account_url, self.auth) from None

    def _blob(self, name: str) -> BlobClient:
        return self.client.get_blob_client(name)

    def list(self, prefix: str) -> list[RemoteBackup]:
        out = []
        with self._translated(f"list {self.container}/{prefix}"):
            for blob in self.client.list_blobs(name_starts_with=prefix, include=["metadata"]):
                parsed = BackupId.parse_blob(blob.name)
                if parsed is None:
                    continue
                backup_id, revision = parsed
                out.append(
                    RemoteBackup(
                        backup_id,
                        int(blob.size),
                        blob.last_modified,
                        dict(blob.metadata or {}),
                        revision,
                    )
                )
        return sorted(out, key=lambda b: (b.id, b.revision))

    def upload(
        self,
        name: str,
        path: Path,
        metadata: dict[str, str],
        md5_b64: str,
        progress: Progress = _no_progress,
    ) -> None:
        settings = ContentSettings(
            content_type="application/x-tar", content_md5=bytearray(base64.b64decode(md5_b64))
        )
        sent = [0]

        def hook(current: int, _total: int | None) -> None:
            progress(current - sent[0])
            sent[0] = current

        try:
            handle = path.open("rb")
        except OSError as exc:
            raise from_oserror(exc, f"reading {path} for upload") from None
        with handle, self._translated(f"upload {name}"):
            self._blob(name).upload_blob(
                handle,
                blob_type="BlockBlob",
                length=path.stat().st_size,
                overwrite=False,
                validate_content=True,
                metadata=metadata,
                content_settings=settings,
                max_concurrency=1,
                progress_hook=hook,
            )

    def download(self, name: str, dest: Path, progress: Progress = _no_progress) -> None:
        temp = dest.with_name(f".{dest.name}.partial")
        received = [0]

        def hook(current: int, _total: int | None) -> None:
            progress(current - received[0])
            received[0] = current

        try:
            with self._translated(f"download {name}"):
                stream = self._blob(name).download_blob(
                    validate_content=True, max_concurrency=1, progress_hook=hook
                )
                md5 = hashlib.md5(usedforsecurity=False)
                try:
                    with temp.open("xb") as handle:
                        for chunk in stream.chunks():
                            md5.update(chunk)
                            handle.write(chunk)
                except OSError as exc:
                    raise from_oserror(exc, f"writing {temp}") from None
                stored = stream.properties.content_settings.content_md5
                if stored and bytes(stored) != md5.digest():
                    raise StoreError(
                        f"download {name}: content differs from its stored "
                        "Content-MD5: damaged in transit or in storage"
                    )
            temp.replace(dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def metadata(self, name: str) -> dict[str, str] | None:
        with self._translated(f"read properties of {name}"):
            try:
                return dict(self._blob(name).get_blob_properties().metadata or {})
            except azure_exc.ResourceNotFoundError:
                return None

    def delete(self, name: str) -> None:
        with self._translated(f"delete {name}"):
            try:
                self._blob(name).delete_blob()
            except azure_exc.ResourceNotFoundError:
                log.info("%s was already gone", name)
