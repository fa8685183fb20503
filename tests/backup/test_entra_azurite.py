"""azure.auth: service_principal: the backup signs in with Entra ID through azure-identity
(client certificate or client secret) and reaches Azurite in its OAuth mode (`--oauth basic`,
HTTPS with a certificate this test makes, trusted through REQUESTS_CA_BUNDLE).

Entra ID itself is not reached here (no cloud): the sign-in host is tests/support/entra.py, a
local token endpoint whose answers are reconstructed from the Microsoft identity platform docs
(each named there); azure-identity is pointed at it with `azure.authority_host`. Azurite checks
the token's issuer, audience and lifetime, not its signature, and no role: a missing data role
on the container is not provable here."""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from homewatt_backup.config import AzureConfig, Secrets
from homewatt_backup.errors import StoreAuthError, StoreError
from homewatt_backup.store import AzureBlobStore, azure_credential
from tests.backup.conftest import DB, make_site, sample_lines, write_secret
from tests.backup.test_store_azurite import NAME, archive_file
from tests.support.azurite import Azurite
from tests.support.entra import STORAGE_AUDIENCE, App, KeyPair, TokenEndpoint, self_signed
from tests.support.influxdb1 import InfluxDB1
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

TENANT = str(uuid.uuid4())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, Path]:
    pair = self_signed("homewatt-test-local-tls", server=True)
    directory = tmp_path_factory.mktemp("tls")
    cert, _ = pair.write(directory, "server")
    return pair, cert


@pytest.fixture(scope="module")
def trusted(tls: tuple[KeyPair, Path]) -> Iterator[None]:
    """requests (azure-core's transport, for storage and azure-identity) trusts the test CA."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(tls[1]))
        yield


@pytest.fixture(scope="module")
def oauth_azurite(
    tmp_path_factory: pytest.TempPathFactory, tls: tuple[KeyPair, Path], trusted: None
) -> Iterator[Azurite]:
    workdir = tmp_path_factory.mktemp("azurite-oauth")
    server = Azurite(workdir, tls=tls[0].write(workdir, "azurite"), oauth=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def entra(
    tmp_path_factory: pytest.TempPathFactory, tls: tuple[KeyPair, Path], trusted: None
) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint(tls[0], tmp_path_factory.mktemp("entra"), TENANT).start()
    yield endpoint
    endpoint.stop()


def azure_section(server: Azurite, entra: TokenEndpoint, **keys: Any) -> AzureConfig:
    return AzureConfig.model_validate(
        {
            "account_url": server.account_url,
            "container": server.new_container(),
            "retention": "rotation",
            "auth": "service_principal",
            "tenant_id": TENANT,
            "authority_host": entra.authority_host,
            **keys,
        }
    )


def round_trip(tmp_path: Path, store: AzureBlobStore) -> None:
    path, md5 = archive_file(tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    store.upload(NAME, path, {"sha256": sha}, md5)
    [listed] = store.list("home/")
    assert (listed.id.name, listed.sha256) == (NAME, sha)
    copy = tmp_path / "copy.tar"
    store.download(NAME, copy)
    assert copy.read_bytes() == path.read_bytes()
    store.delete(NAME)
    assert store.list("home/") == []


def test_a_service_principal_with_a_client_certificate_backs_up_through_azurite_oauth(
    tmp_path: Path, oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    client = str(uuid.uuid4())
    pair = self_signed("homewatt-site-home")
    entra.apps[client] = App(client, certificate=pair.certificate)
    azure = azure_section(
        oauth_azurite,
        entra,
        client_id=client,
        client_certificate_credential="azure-client-certificate",
    )
    secrets = Secrets(None, None, None, client_certificate=pair.bundle.decode())
    credential = azure_credential(azure, secrets, interactive=True)
    assert credential is not None and not isinstance(credential, str)
    before = len(entra.requests)
    round_trip(
        tmp_path,
        AzureBlobStore.interactive(
            azure.account_url, azure.container, credential, azure.credential_source, auth=azure.auth
        ),
    )
    asked = entra.requests[before:]
    assert ("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration", ()) in asked
    posts = [keys for method, _, keys in asked if method == "POST"]
    assert len(posts) == 1, "one token for the whole round trip (cached until it expires)"
    assert "client_assertion" in posts[0] and "client_secret" not in posts[0]
    token = entra.issued[-1]
    assert token["aud"] == STORAGE_AUDIENCE and token["appid"] == client
    assert token["appidacr"] == "2", "signed in by certificate"


def test_a_service_principal_with_a_client_secret_backs_up_through_azurite_oauth(
    tmp_path: Path, oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    client = str(uuid.uuid4())
    entra.apps[client] = App(client, secret="Q8a~local.test-secret_" + uuid.uuid4().hex)
    azure = azure_section(
        oauth_azurite, entra, client_id=client, client_secret_credential="azure-client-secret"
    )
    credential = azure_credential(
        azure, Secrets(None, None, None, client_secret=entra.apps[client].secret)
    )
    assert credential is not None and not isinstance(credential, str)
    round_trip(
        tmp_path,
        AzureBlobStore(
            azure.account_url,
            azure.container,
            credential,
            azure.credential_source,
            auth=azure.auth,
            retries=0,
            retry_backoff=0,
        ),
    )
    assert entra.issued[-1]["appidacr"] == "1"


def test_a_wrong_client_secret_is_one_line_naming_the_principal_the_tenant_and_entras_reason(
    tmp_path: Path, oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    client = str(uuid.uuid4())
    entra.apps[client] = App(client, secret="the-right-one")
    azure = azure_section(
        oauth_azurite, entra, client_id=client, client_secret_file=str(tmp_path / "s")
    )
    wrong = "the-wrong-one-" + uuid.uuid4().hex
    credential = azure_credential(azure, Secrets(None, None, None, client_secret=wrong))
    assert credential is not None and not isinstance(credential, str)
    store = AzureBlobStore.interactive(
        azure.account_url, azure.container, credential, azure.credential_source, auth=azure.auth
    )
    with pytest.raises(StoreAuthError) as info:
        store.list("home/")
    message = str(info.value)
    assert "\n" not in message and wrong not in message
    assert f"Entra ID at {entra.authority_host}/{TENANT} refused" in message
    assert f"the service principal {client} of tenant {TENANT}" in message
    assert "AADSTS7000215" in message and "azure.client_secret_file" in message


def test_a_certificate_the_app_does_not_know_is_refused_by_its_signature(
    tmp_path: Path, oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    client = str(uuid.uuid4())
    entra.apps[client] = App(client, certificate=self_signed("registered").certificate)
    azure = azure_section(oauth_azurite, entra, client_id=client, client_certificate_credential="c")
    other = self_signed("someone-else").bundle.decode()
    credential = azure_credential(azure, Secrets(None, None, None, client_certificate=other))
    assert credential is not None and not isinstance(credential, str)
    with pytest.raises(StoreAuthError, match="AADSTS700027"):
        AzureBlobStore.interactive(
            azure.account_url,
            azure.container,
            credential,
            azure.credential_source,
            auth="service_principal",
        ).list("home/")


def test_a_certificate_file_that_does_not_load_names_its_source_not_its_content(
    oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    azure = azure_section(
        oauth_azurite, entra, client_id=str(uuid.uuid4()), client_certificate_credential="c"
    )
    broken = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    with pytest.raises(StoreAuthError) as info:
        azure_credential(azure, Secrets(None, None, None, client_certificate=broken))
    assert "the client certificate of the service principal" in str(info.value)
    assert "not base64" not in str(info.value)


def test_an_unreachable_sign_in_host_is_reported_in_seconds_naming_it(
    oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    azure = AzureConfig.model_validate(
        {
            **azure_section(
                oauth_azurite, entra, client_id=str(uuid.uuid4()), client_secret_credential="s"
            ).model_dump(mode="json"),
            "authority_host": f"https://127.0.0.1:{free_port()}",
        }
    )
    credential = azure_credential(azure, Secrets(None, None, None, client_secret="x"))
    assert credential is not None and not isinstance(credential, str)
    with pytest.raises(StoreError) as info:
        AzureBlobStore.interactive(
            azure.account_url,
            azure.container,
            credential,
            azure.credential_source,
            auth="service_principal",
        ).list("home/")
    assert azure.authority_host in str(info.value)


def test_azurite_in_oauth_mode_refuses_a_request_without_a_valid_token(
    oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    """The mode is real: the same container read with a token for another audience fails."""
    client = str(uuid.uuid4())
    entra.apps[client] = App(client, secret="s3cret")
    other = entra.access_token(entra.apps[client], "https://vault.azure.net/.default", False)

    class Fixed:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            return AccessToken(other, 2**31)

    container = oauth_azurite.new_container()
    with pytest.raises(StoreError, match="Entra ID token"):
        AzureBlobStore.interactive(
            oauth_azurite.account_url,
            container,
            Fixed(),
            "a token for Key Vault",
            auth="service_principal",
        ).list("home/")


def test_run_list_verify_and_restore_sign_in_as_the_service_principal_end_to_end(
    tmp_path: Path, influxdb1: InfluxDB1, oauth_azurite: Azurite, entra: TokenEndpoint
) -> None:
    """The CLI as the timer and a person use it, with `auth: service_principal` and the
    certificate as a credential file: a daily backup is uploaded and verified, `list` and
    `verify` see it, check-config names the principal, and the database comes back."""
    start = int(time.time()) - 3600
    influxdb1.write(DB, sample_lines(start, 60, step=30))
    before = influxdb1.points(DB, "/electricity|homewatt_health/")
    site = make_site(tmp_path / "site", influxdb1)
    client, pair = str(uuid.uuid4()), self_signed("homewatt-site-home")
    entra.apps[client] = App(client, certificate=pair.certificate)
    site.container = oauth_azurite.new_container()
    site.config["azure"] = {
        "account_url": oauth_azurite.account_url,
        "container": site.container,
        "retention": "rotation",
        "auth": "service_principal",
        "tenant_id": TENANT,
        "client_id": client,
        "client_certificate_credential": "azure-client-certificate",
        "authority_host": entra.authority_host,
    }
    write_secret(site.credentials / "azure-client-certificate", pair.bundle.decode())
    site.save()

    checked = site.cli("check-config")
    assert checked.exit_code == 0, checked.output
    assert f"signed in as the service principal {client} of tenant {TENANT}" in checked.stdout

    result = site.cli("run", "--kind", "daily")
    assert result.exit_code == 0, result.output
    [name] = [b.name for b in oauth_azurite.container(site.container).list_blobs()]
    assert name.startswith("home/daily/")
    listing = site.cli("list")
    assert listing.exit_code == 0, listing.output
    assert name in listing.stdout and "verified" in listing.stdout
    verified = site.cli("verify", name)
    assert verified.exit_code == 0, verified.output

    influxdb1.drop_database(DB)
    shutil.rmtree(site.state_dir / "archives")  # only the blob is left
    restored = site.cli("restore", name)
    assert restored.exit_code == 0, restored.output
    assert influxdb1.points(DB, "/electricity|homewatt_health/") == before
    assert {t["appid"] for t in entra.issued} >= {client}
