"""Passwords in URLs (`https://user:password@host/`) never reach a log line, an error or a
report: `redact_url` for a URL, `redact_urls` for any text that may quote one (a library's
error message)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
# scheme://user:password@ (userinfo with a password); the password runs to the last @ before
# the path (an unencoded @ in a password stays hidden)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s]*@")


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***; the user name is kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_urls(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))


def redact_urls(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
