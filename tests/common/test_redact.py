"""Passwords in URLs are hidden wherever a URL is shown."""

from __future__ import annotations

import pytest

from homewatt_common.redact import redact_url, redact_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host:8086/x?y=1", "http://user:***@host:8086/x?y=1"),
        ("https://u:p%40ss@h", "https://u:***@h"),
        ("http://u:p@ss@h/", "http://u:***@h/"),
        ("http://:pw@h", "http://:***@h"),
        ("http://user@host", "http://user@host"),
        ("http://host:8086", "http://host:8086"),
    ],
)
def test_a_urls_password_is_replaced_and_everything_else_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_urls(f"POST {url} failed: {url}") == f"POST {shown} failed: {shown}"
