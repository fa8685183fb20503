"""Grafana's provisioning files for the datasource and the dashboards, from the contract.

Formats: https://grafana.com/docs/grafana/latest/administration/provisioning/#data-sources and
#dashboards; the InfluxDB datasource's InfluxQL settings for InfluxDB 2 (database name plus an
`Authorization: Token ...` header) from
https://grafana.com/docs/grafana/latest/datasources/influxdb/configure-influxdb-data-source/.
Grafana expands `${VAR}` and `$__file{path}` in every string value of these files when it reads
them (pkg/services/provisioning/values/values.go); nothing secret is in the repository.
"""

from __future__ import annotations

from typing import Any

from homewatt_grafana.contract import Contract

FOLDER_UID = "homewatt"
FOLDER_TITLE = "homewatt"


def datasources(contract: Contract) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": contract.datasource_name,
                "uid": contract.datasource_uid,
                "type": contract.datasource_type,
                "access": "proxy",
                "url": "${" + contract.url_env + "}",
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "version": "InfluxQL",
                    "dbName": contract.database,
                    "httpMode": contract.http_method,
                    # The raw data's resolution: $__interval never goes below one second.
                    "timeInterval": "1s",
                    "httpHeaderName1": contract.token_header_name,
                },
                "secureJsonData": {"httpHeaderValue1": contract.token_header_value},
            }
        ],
    }


def dashboard_provider(contract: Contract) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "homewatt",
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": contract.dashboards_dir, "foldersFromFilesStructure": False},
            }
        ],
    }
