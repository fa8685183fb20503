"""The Azure adapter against Azurite: upload, list, verify, never overwrite, SAS faults, and a
connection cut mid-upload through the fault proxy."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import ContentSettings

from homewatt_backup.errors import (
    BlobExistsError,
    StoreAuthError,
    StoreError,
    UploadInterruptedError,
)
from homewatt_backup.store import AzureBlobStore, inspect_sas
from tests.support.azurite import Azurite
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

NAME = "home/daily/20261123T030000Z.tar"
SOURCE = "the file /etc/homewatt/credentials/azure-sas (azure.sas_file)"


def archive_file(tmp_path: Path, size: int = 300_000) -> tuple[Path, str]:
    path = tmp_path / "a.tar"
    path.write_bytes(hashlib.sha256(b"seed").digest() * (size // 32))
    md5 = base64.b64encode(hashlib.md5(path.read_bytes(), usedforsecurity=False).digest())
    return path, md5.decode()


def store(url: str, container: str, sas: str, retries: int = 0) -> AzureBlobStore:
    return AzureBlobStore(url, container, sas, SOURCE, retries=retries, retry_backoff=0)


def test_upload_list_download_round_trip_keeps_content_and_metadata(
    tmp_path: Path, azurite: Azurite
) -> None:
    container = azurite.new_container()
    blob_store = store(azurite.account_url, container, azurite.sas(container, "rcwl"))
    path, md5 = archive_file(tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    blob_store.upload(NAME, path, {"sha256": sha, "kind": "daily"}, md5)
    [listed] = blob_store.list("home/")
    assert listed.id.name == NAME and listed.size == path.stat().st_size
    assert listed.sha256 == sha and not listed.is_verified({})
    assert listed.is_verified({NAME: sha}) and not listed.is_verified({NAME: "0" * 64})
    properties = azurite.container(container).get_blob_client(NAME).get_blob_properties()
    assert base64.b64encode(bytes(properties.content_settings.content_md5)).decode() == md5
    copy = tmp_path / "copy.tar"
    blob_store.download(NAME, copy)
    assert copy.read_bytes() == path.read_bytes()


def test_an_existing_blob_is_never_overwritten(tmp_path: Path, azurite: Azurite) -> None:
    container = azurite.new_container()
    blob_store = store(azurite.account_url, container, azurite.sas(container, "rcwl"))
    path, md5 = archive_file(tmp_path)
    blob_store.upload(NAME, path, {"sha256": "a"}, md5)
    other = tmp_path / "other.tar"
    other.write_bytes(b"different")
    other_md5 = base64.b64encode(hashlib.md5(b"different", usedforsecurity=False).digest())
    with pytest.raises(BlobExistsError, match="never overwritten"):
        blob_store.upload(NAME, other, {"sha256": "b"}, other_md5.decode())
    copy = tmp_path / "copy.tar"
    blob_store.download(NAME, copy)
    assert copy.read_bytes() == path.read_bytes()


def test_a_sas_without_write_permission_is_a_clear_error_and_nothing_is_uploaded(
    tmp_path: Path, azurite: Azurite
) -> None:
    container = azurite.new_container()
    sas = azurite.sas(container, "rl")
    path, md5 = archive_file(tmp_path)
    with pytest.raises(StoreAuthError) as caught:
        store(azurite.account_url, container, sas).upload(NAME, path, {}, md5)
    message = str(caught.value)
    assert message.startswith(
        f"upload {NAME}: the SAS lacks the permission for this (AuthorizationPermissionMismatch)"
    )
    assert SOURCE in message
    assert sas.split("sig=")[1][:10] not in message
    assert list(azurite.container(container).list_blobs()) == []


def test_a_sas_without_delete_permission_cannot_rotate(tmp_path: Path, azurite: Azurite) -> None:
    container = azurite.new_container()
    path, md5 = archive_file(tmp_path)
    lifecycle_store = store(azurite.account_url, container, azurite.sas(container, "rcwl"))
    lifecycle_store.upload(NAME, path, {}, md5)
    with pytest.raises(StoreAuthError, match="AuthorizationPermissionMismatch"):
        lifecycle_store.delete(NAME)
    assert [b.name for b in azurite.container(container).list_blobs()] == [NAME]


def test_an_expired_sas_is_refused_by_the_service_with_one_clear_error(
    tmp_path: Path, azurite: Azurite
) -> None:
    container = azurite.new_container()
    expired = azurite.sas(container, "rcwdl", timedelta(hours=-1))
    path, md5 = archive_file(tmp_path)
    with pytest.raises(StoreAuthError) as caught:
        store(azurite.account_url, container, expired).upload(NAME, path, {}, md5)
    assert str(caught.value).startswith(f"upload {NAME}: Azure refused the SAS (")
    assert "expired, revoked or wrong" in str(caught.value)
    with pytest.raises(StoreAuthError, match="Azure refused the SAS"):
        store(azurite.account_url, container, expired).list("home/")


def test_the_sas_is_checked_before_use_for_expiry_and_the_retention_modes_permissions(
    azurite: Azurite,
) -> None:
    container = azurite.new_container()
    now = datetime.now(UTC)
    info = inspect_sas(azurite.sas(container, "rcwdl"), "rotation", now, SOURCE)
    assert info.permissions == "rcwdl" and info.expiry is not None and info.expiry > now
    with pytest.raises(
        StoreAuthError,
        match=r"lacks permission\(s\) 'd': retention rotation "
        r"needs 'rcwdl'",
    ):
        inspect_sas(azurite.sas(container, "rcwl"), "rotation", now, SOURCE)
    with pytest.raises(StoreAuthError, match=r"expired at .* UTC: put a fresh one there"):
        inspect_sas(azurite.sas(container, "rcwl", timedelta(hours=-1)), "lifecycle", now, SOURCE)
    with pytest.raises(StoreAuthError, match="no signature"):
        inspect_sas("sp=rcwl", "lifecycle", now, SOURCE)


def test_a_missing_container_is_named(tmp_path: Path, azurite: Azurite) -> None:
    sas = azurite.sas("nothere", "rcwl")
    with pytest.raises(StoreError, match="ContainerNotFound"):
        store(azurite.account_url, "nothere", sas).list("home/")


def test_a_connection_cut_mid_upload_is_one_clear_error_and_leaves_no_blob(
    tmp_path: Path, azurite: Azurite, azurite_proxy: FaultProxy
) -> None:
    container = azurite.new_container()
    blob_store = store(
        azurite.account_url_via(azurite_proxy.port),
        container,
        azurite.sas(container, "rcwl"),
        retries=0,
    )
    path, md5 = archive_file(tmp_path)
    azurite_proxy.cut_next_request_after(64 * 1024)
    with pytest.raises(UploadInterruptedError) as caught:
        blob_store.upload(NAME, path, {}, md5)
    assert "broke mid-transfer" in str(caught.value) and "next run retries" in str(caught.value)
    assert azurite_proxy.stats.faulted == 1
    assert list(azurite.container(container).list_blobs()) == []


def test_with_retries_a_connection_cut_mid_upload_is_survived_intact(
    tmp_path: Path, azurite: Azurite, azurite_proxy: FaultProxy
) -> None:
    container = azurite.new_container()
    blob_store = store(
        azurite.account_url_via(azurite_proxy.port),
        container,
        azurite.sas(container, "rcwl"),
        retries=3,
    )
    path, md5 = archive_file(tmp_path)
    azurite_proxy.cut_next_request_after(64 * 1024)
    blob_store.upload(NAME, path, {}, md5)
    assert azurite_proxy.stats.faulted == 1
    copy = tmp_path / "copy.tar"
    blob_store.download(NAME, copy)
    assert copy.read_bytes() == path.read_bytes()


def test_unreachable_azure_is_one_clear_error(
    tmp_path: Path, azurite: Azurite, azurite_proxy: FaultProxy
) -> None:
    container = azurite.new_container()
    blob_store = store(
        azurite.account_url_via(azurite_proxy.port), container, azurite.sas(container, "rcwl")
    )
    azurite_proxy.down()
    with pytest.raises(StoreError, match=r"^list home/ .*|unreachable"):
        blob_store.list("home/")


def test_a_download_that_differs_from_its_content_md5_is_refused_and_leaves_no_file(
    tmp_path: Path, azurite: Azurite
) -> None:
    container = azurite.new_container()
    blob_store = store(azurite.account_url, container, azurite.sas(container, "rcwl"))
    path, _ = archive_file(tmp_path, size=1000)
    wrong_md5 = base64.b64encode(hashlib.md5(b"x", usedforsecurity=False).digest()).decode()
    # damage the stored checksum (as a bit flip in storage would look to the reader)
    blob_store.upload(
        NAME,
        path,
        {},
        base64.b64encode(hashlib.md5(path.read_bytes(), usedforsecurity=False).digest()).decode(),
    )
    azurite.container(container).get_blob_client(NAME).set_http_headers(
        ContentSettings(content_md5=bytearray(base64.b64decode(wrong_md5)))
    )
    copy = tmp_path / "copy.tar"
    with pytest.raises(StoreError, match="differs from its stored checksum"):
        blob_store.download(NAME, copy)
    assert not copy.exists()
    assert list(tmp_path.glob(".copy.tar*")) == []
