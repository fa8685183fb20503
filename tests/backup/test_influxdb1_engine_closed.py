"""InfluxDB 1.x answers a query that reaches a shard while `influxd restore` closes and reopens
it with `engine is closed` (tsdb.ErrEngineClosed in InfluxDB 1.x's tsdb/engine.go, in the
/query JSON shape of its httpd handler); seen in this suite right after a full restore under
load. The answer below is reconstructed from that source, not recorded. Asked again a moment
later, the shard answers: the engine asks again; any other error is reported at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from homewatt_backup.config import InfluxDB1Config, Secrets
from homewatt_backup.engines.influxdb1 import InfluxDB1Engine
from homewatt_backup.errors import InfluxError

CLOSED = {"results": [{"statement_id": 0, "error": "engine is closed"}]}
ANSWER = {
    "results": [
        {
            "statement_id": 0,
            "series": [{"name": "measurements", "columns": ["name"], "values": [["electricity"]]}],
        }
    ]
}


class Answers:
    """InfluxHTTP's request(), answering from a list of /query bodies."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.bodies = list(bodies)
        self.calls = 0

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(self.bodies.pop(0)).encode()
        return response


def engine(answers: Answers) -> InfluxDB1Engine:
    config = InfluxDB1Config(engine="influxdb1", database="homewatt")
    return InfluxDB1Engine(config, Secrets(None, None, None), http=answers)  # type: ignore[arg-type]


def test_a_shard_reopening_after_a_restore_is_asked_again() -> None:
    answers = Answers(CLOSED, CLOSED, ANSWER)
    assert engine(answers).measurements("homewatt") == ["electricity"]
    assert answers.calls == 3


def test_a_shard_that_stays_closed_and_any_other_error_are_reported() -> None:
    with pytest.raises(InfluxError, match=r"^InfluxDB: list measurements: engine is closed$"):
        engine(Answers(*[CLOSED] * 10)).measurements("homewatt")
    other = {"results": [{"statement_id": 0, "error": "database not found: homewatt"}]}
    answers = Answers(other)
    with pytest.raises(InfluxError, match="database not found"):
        engine(answers).measurements("homewatt")
    assert answers.calls == 1
