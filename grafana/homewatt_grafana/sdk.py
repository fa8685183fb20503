"""An InfluxQL query for grafana-foundation-sdk's panels and alert rules.

The SDK's build for Grafana 11.6 has builders for many data sources but none for InfluxDB, so this
module adds one in the SDK's own pattern: a `Dataquery` variant (the JSON Grafana's InfluxDB data
source stores for a raw InfluxQL query: `query`, `rawQuery: true`, `resultFormat`) and a builder,
registered with the SDK's runtime so that `Dashboard.from_json` loads our dashboards back into
typed models.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from homewatt_grafana.contract import Contract
from homewatt_grafana.influxql import parse

ResultFormat = Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    """Grafana's InfluxDB target in raw InfluxQL mode (what the query editor's text mode saves)."""

    def __init__(
        self,
        ref_id: str = "",
        query: str = "",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        datasource: DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        datasource = data.get("datasource")
        return cls(
            ref_id=data.get("refId", ""),
            query=data.get("query", ""),
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            datasource=DataSourceRef.from_json(datasource) if datasource else None,
        )


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder: `InfluxQL(contract, "A", 'SELECT ...')`; the text is parsed (and refused if it
    leaves the InfluxQL that InfluxDB 2 documents) before it goes into a dashboard."""

    def __init__(self, contract: Contract, ref_id: str, query: str) -> None:
        parse(_without_macros(query))
        self._internal = InfluxQLQuery(
            ref_id=ref_id,
            query=query,
            datasource=datasource_ref(contract),
        )

    def build(self) -> cogvariants.Dataquery:
        return self._internal

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        """Series name, e.g. '$tag_device $tag_channel' (Grafana's InfluxDB alias patterns)."""
        self._internal.alias = alias
        return self


def datasource_ref(contract: Contract) -> DataSourceRef:
    return DataSourceRef(type_val=contract.datasource_type, uid=contract.datasource_uid)


def _without_macros(query: str) -> str:
    """The query with Grafana's macros replaced by sample values of the right shape, so that it
    can be parsed at generation time (the tests parse the real expansion again)."""
    sample = {
        "$timeFilter": "time >= 0ms and time <= 1ms",
        "$__interval": "1s",
        "${__timezone:raw}": "UTC",
    }
    for macro, value in sample.items():
        query = query.replace(macro, value)
    for name in ("site", "device", "channel", "house"):
        query = query.replace("${" + name + ":regex}", "x")
    return query


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier="influxdb", from_json_hook=InfluxQLQuery.from_json)
)
