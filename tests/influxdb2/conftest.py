"""Fixtures for the InfluxDB 2 stand-in's own tests: an onboarded stand-in on a loopback port,
and tokens of the kinds the influxdb role creates (write-only, read-only, all-access)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.influxdb2 import InfluxDB2StandIn
from tests.support.systemd_rig import SystemdRig

ORG, BUCKET, TOKEN = "homewatt", "homewatt", "stand-in-operator-token"


@dataclass
class Api:
    """requests against the stand-in with one token."""

    url: str
    token: str

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def write(
        self, lines: str | bytes, bucket: str = BUCKET, precision: str = "s", **kw: Any
    ) -> requests.Response:
        params = {"org": ORG, "bucket": bucket, "precision": precision}
        data = lines.encode() if isinstance(lines, str) else lines
        return self("POST", "/api/v2/write", params=params, data=data, **kw)

    def flux(
        self, query: str, annotations: list[str] | None = None, **kw: Any
    ) -> requests.Response:
        dialect = {
            "annotations": ["datatype", "group", "default"] if annotations is None else annotations
        }
        return self(
            "POST",
            "/api/v2/query",
            params={"org": ORG},
            json={"query": query, "dialect": dialect},
            **kw,
        )


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[InfluxDB2StandIn]:
    server = InfluxDB2StandIn(tmp_path / "standin").start()
    try:
        server.setup(org=ORG, bucket=BUCKET, token=TOKEN)
        yield server
    finally:
        server.stop()


@pytest.fixture
def operator(standin: InfluxDB2StandIn) -> Api:
    return Api(standin.url, TOKEN)


@pytest.fixture
def token_for(standin: InfluxDB2StandIn, operator: Api) -> Callable[..., Api]:
    """`token_for(("write", "buckets", BUCKET), ...)`: a new token with those permissions
    (a bucket named, or "*" for every resource of that type in the org)."""

    def make(*grants: tuple[str, str, str], status: str = "active") -> Api:
        org_id = standin.store.all("orgs")[0]["id"]
        buckets = {b["name"]: b["id"] for b in standin.store.all("buckets")}
        permissions = []
        for action, type_, name in grants:
            resource: dict[str, str] = {"type": type_, "orgID": org_id}
            if name != "*":
                resource["id"] = buckets[name]
            permissions.append({"action": action, "resource": resource})
        body = {
            "orgID": org_id,
            "permissions": permissions,
            "status": status,
            "description": "test",
        }
        created = operator("POST", "/api/v2/authorizations", json=body)
        assert created.status_code == 201, created.text
        return Api(standin.url, created.json()["token"])

    return make


# -- the stand-in image (tests/support/influxdb2/image.py), FROM the rig's bookworm image ----


@dataclass(frozen=True)
class ImageUnderTest:
    docker: Any  # the rig's PrivateDockerd: .docker(*args, check=...)
    tag: str
    env: dict[str, str]  # DOCKER_HOST and HOMEWATT_TEST_IMAGE_BOOKWORM, as the rig exports them


@pytest.fixture(scope="session")
def standin_image(systemd_rig: SystemdRig) -> ImageUnderTest:
    """The stand-in image, built once per content hash in the systemd rig's daemon."""
    from tests.support.influxdb2.image import build_image  # noqa: PLC0415

    rig = systemd_rig
    tag = build_image(rig.daemon, rig.image("bookworm"))
    return ImageUnderTest(rig.daemon, tag, rig.env(("bookworm",)))
