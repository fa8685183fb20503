"""configmodel.no_inline_secret: a secret written in a config is refused, naming where it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homewatt_common.configmodel import ConfigModel, PathField, no_inline_secret, validate
from homewatt_common.problems import ProblemsError

REFUSED = (
    "site.yaml: endpoint: token must not be written in the config file: put the secret in a"
    " file named by token_file (mode 0600) or in a systemd credential named by"
    " token_credential (LoadCredential=)"
)


class Endpoint(ConfigModel):
    token_file: Path | None = PathField()
    token_credential: str | None = None

    _no_inline_token = no_inline_secret("token", "token_file", "token_credential")


class Site(ConfigModel):
    endpoint: Endpoint


def endpoint(data: dict[str, Any]) -> Endpoint:
    return validate(Site, {"endpoint": data}, "site.yaml").endpoint


@pytest.mark.parametrize(
    "data",
    [
        {"token": "s3cret-value"},
        {"token": "s3cret-value", "token_file": "/etc/homewatt/token"},
        {"token": "s3cret-value", "token_credential": "influxdb-token"},
    ],
)
def test_a_written_secret_is_refused_with_where_it_goes_and_without_its_value(
    data: dict[str, Any],
) -> None:
    with pytest.raises(ProblemsError) as caught:
        endpoint(data)
    assert str(caught.value) == REFUSED
    assert "s3cret-value" not in str(caught.value)


def test_a_secret_file_alone_is_accepted() -> None:
    assert endpoint({"token_file": "/etc/homewatt/token"}).token_file == Path("/etc/homewatt/token")


def test_a_systemd_credential_alone_is_accepted() -> None:
    assert endpoint({"token_credential": "influxdb-token"}).token_credential == "influxdb-token"


def test_a_file_and_a_credential_together_are_left_to_the_models_own_rule() -> None:
    """The helper refuses only the written secret; each model says whether both may be set
    (the collector's sinks and cost command: exactly one; a Shelly device: at most one)."""
    both = endpoint({"token_file": "/etc/homewatt/token", "token_credential": "influxdb-token"})
    assert (both.token_file, both.token_credential) == (
        Path("/etc/homewatt/token"),
        "influxdb-token",
    )
