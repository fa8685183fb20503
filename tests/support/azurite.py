"""Azurite (Azure Blob emulator from npm, installed by scripts/bootstrap) for tests.

Runs `azurite-blob` in memory on a free loopback port. Containers and SAS tokens are made with
Azurite's well-known development account key, which is public (it is in Microsoft's docs and
Azurite's README) and only ever valid against the emulator.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient, generate_container_sas

from tests.support.processes import ServerProcess, free_port, port_open

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO_ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Azurite:
    """`tls` (certificate and key files): HTTPS; `oauth`: also accept Entra ID bearer tokens
    (`--oauth basic`, which needs HTTPS: Azurite checks a token's issuer, audience and
    lifetime, not its signature)."""

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        *,
        tls: tuple[Path, Path] | None = None,
        oauth: bool = False,
    ) -> None:
        """Listen on `host`: loopback, or the systemd rig's bridge address for its containers."""
        if not AZURITE_BIN.exists():
            pytest.fail(f"{AZURITE_BIN} is missing: run scripts/bootstrap (the test command does)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = free_port()
        self.scheme = "https" if tls else "http"
        self.server = ServerProcess(
            "azurite-blob",
            [
                str(AZURITE_BIN),
                "--blobHost",
                host,
                "--blobPort",
                str(self.port),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
                *(["--cert", str(tls[0]), "--key", str(tls[1])] if tls else []),
                *(["--oauth", "basic"] if oauth else []),
            ],
            workdir / "azurite.log",
            cwd=workdir,
        )

    @property
    def account_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{DEV_ACCOUNT}"

    def account_url_via(self, port: int) -> str:
        """The account URL through another port (a fault proxy in front of Azurite)."""
        return f"http://127.0.0.1:{port}/{DEV_ACCOUNT}"

    def start(self) -> Azurite:
        self.server.start()
        self.server.wait_ready(lambda: port_open(self.port, self.host), timeout=60)
        return self

    def stop(self) -> None:
        self.server.stop()

    def service(self) -> BlobServiceClient:
        return BlobServiceClient(
            self.account_url, credential={"account_name": DEV_ACCOUNT, "account_key": DEV_KEY}
        )

    def new_container(self, prefix: str = "site") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.service().create_container(name)
        return name

    def container(self, name: str) -> ContainerClient:
        """An account-key client (the test's own view, not the app's)."""
        return self.service().get_container_client(name)

    def sas(
        self, container: str, permissions: str, valid_for: timedelta = timedelta(hours=2)
    ) -> str:
        """A container-scoped SAS like the one terraform outputs; negative validity: expired."""
        now = datetime.now(UTC)
        start = min(now, now + valid_for) - timedelta(minutes=5)
        return generate_container_sas(
            DEV_ACCOUNT,
            container,
            account_key=DEV_KEY,
            permission=permissions,
            expiry=now + valid_for,
            start=start,
        )
