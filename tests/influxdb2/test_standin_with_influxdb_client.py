"""influxdb-client (InfluxData's Python client, whose generated `domain` models are InfluxDB's
OpenAPI contract in code) against the stand-in: every answer it parses must fit those models,
and its errors must surface as the client raises them for a real server. NOT a real InfluxDB 2,
which cannot run here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from influxdb_client import (
    BucketRetentionRules,
    InfluxDBClient,
    Permission,
    PermissionResource,
    Point,
)
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.dbrp_create import DBRPCreate
from influxdb_client.domain.onboarding_request import OnboardingRequest
from influxdb_client.rest import ApiException
from influxdb_client.service.dbr_ps_service import DBRPsService
from influxdb_client.service.setup_service import SetupService

from tests.influxdb2.conftest import BUCKET, ORG, TOKEN
from tests.support.influxdb2 import VERSION, InfluxDB2StandIn


def test_influxdb_client_sets_up_writes_and_reads_and_sees_403_for_a_read_token(
    tmp_path: Path,
) -> None:
    with InfluxDB2StandIn(tmp_path) as server:
        anonymous = InfluxDBClient(url=server.url, token="", org=ORG)
        assert anonymous.ping() and anonymous.version() == VERSION
        assert anonymous.ready().status == "ready"
        setup = SetupService(anonymous.api_client)
        assert setup.get_setup().allowed is True
        onboarded = setup.post_setup(
            OnboardingRequest(
                username="admin", password="long enough", org=ORG, bucket=BUCKET, token=TOKEN
            )
        )
        assert (onboarded.auth.token, onboarded.bucket.name, onboarded.org.name) == (
            TOKEN,
            BUCKET,
            ORG,
        )
        with pytest.raises(ApiException) as again:
            setup.post_setup(
                OnboardingRequest(username="x", password="long enough", org="o", bucket="b")
            )
        assert (
            again.value.status == 422
            and again.value.message == "onboarding has already been completed"
        )

        client = InfluxDBClient(url=server.url, token=TOKEN, org=ORG, enable_gzip=True)
        org = client.organizations_api().find_organizations(org=ORG)[0]
        longterm = client.buckets_api().create_bucket(
            bucket_name="longterm",
            org=org,
            retention_rules=BucketRetentionRules(type="expire", every_seconds=0),
        )
        assert client.buckets_api().find_bucket_by_name("longterm").id == longterm.id
        raw = client.buckets_api().find_bucket_by_name(BUCKET)
        write_perm = Permission(
            action="write", resource=PermissionResource(type="buckets", id=raw.id, org_id=org.id)
        )
        read_perm = Permission(
            action="read", resource=PermissionResource(type="buckets", id=raw.id, org_id=org.id)
        )
        writer = client.authorizations_api().create_authorization(
            org_id=org.id, permissions=[write_perm]
        )
        reader = client.authorizations_api().create_authorization(
            org_id=org.id, permissions=[read_perm]
        )
        assert reader.permissions[0].resource.name == BUCKET

        now = datetime.now(UTC).replace(microsecond=0)
        points = [
            Point("electricity")
            .tag("device", "meter1")
            .field("power_w", 230.5 + i)
            .time(now - timedelta(seconds=i))
            for i in range(3)
        ]
        with InfluxDBClient(
            url=server.url, token=writer.token, org=ORG, enable_gzip=True
        ) as collector:
            collector.write_api(write_options=SYNCHRONOUS).write(BUCKET, record=points)
        with InfluxDBClient(url=server.url, token=reader.token, org=ORG) as grafana:
            with pytest.raises(ApiException) as refused:
                grafana.write_api(write_options=SYNCHRONOUS).write(BUCKET, record="m f=1")
            assert refused.value.status == 403
            assert refused.value.message == "insufficient permissions for write"
            tables = grafana.query_api().query(f'from(bucket: "{BUCKET}") |> range(start: -1h)')
        values = [
            (r.get_measurement(), r.values["device"], r.get_field(), r.get_value())
            for t in tables
            for r in t.records
        ]
        assert values == [("electricity", "meter1", "power_w", v) for v in (232.5, 231.5, 230.5)]
        assert [r.get_time() for r in tables[0].records][-1] == now

        dbrps = DBRPsService(client.api_client)
        created = dbrps.post_dbrp(
            DBRPCreate(
                org_id=org.id,
                bucket_id=raw.id,
                database=BUCKET,
                retention_policy="autogen",
                default=True,
            )
        )
        assert created.virtual is False and created.default is True
        task = client.tasks_api().create_task_every(
            name="downsample",
            flux=f'from(bucket: "{BUCKET}") |> range(start: -1m)',
            every="1m",
            organization=org,
        )
        assert [t.name for t in client.tasks_api().find_tasks()] == [task.name]
        client.close()
