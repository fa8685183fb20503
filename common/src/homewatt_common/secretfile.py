"""Secret files: every secret either app reads (InfluxDB tokens, the Azure SAS, passwords).

`read_secret(path, kind, origin)`:
- the file must exist, be a regular file, and be readable by its owner only (mode 0600 or
  0400). A POSIX ACL may add one reader: the user reading it. That is how systemd (v254 on:
  Debian trixie's 257, not bookworm's 252) hands a `LoadCredential=` copy to a service with
  `DynamicUser=` or `User=`: 0400 root plus `user:<the service's uid>:r--`, which `stat` shows
  as 0440, the group bits being the ACL's mask (acl(5); systemd src/core/exec-credential.c
  write_credential());
- a leading UTF-8 byte order mark and trailing CR, LF, space and tab are removed (editors and
  `echo` add them), and that is logged once per file (at debug level for the one final newline
  everybody's editor writes);
- what is left must be non-empty and, by kind (contracts/secrets.json `kind`):
  token: printable ASCII without spaces (0x21-0x7E);
  sas: the characters of a URL query string; a SAS pasted as a whole container or blob URL
  (https://...?sv=...) is cut to its query string (logged once), a leading '?' dropped;
  password: UTF-8 without control characters;
  certificate: a PEM bundle (ASCII lines) holding one unencrypted private key and the
  certificate it belongs to, as an Entra ID service principal's client certificate is kept.
  Any other byte is refused with one error naming the file and the byte's offset in it.

`parse_sas(sas)` checks that a SAS's parameters parse (what check-config and every run do
before Azure is asked) and returns its permissions and expiry.

Errors are ProblemsError (problems.py), located at `origin`: the config key (or option) that
named the secret. Nothing here ever puts a secret's value into a message or a log line.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from homewatt_common.problems import Problem, ProblemsError
from homewatt_common.yamlfile import UTF8_BOM

log = logging.getLogger(__name__)

KINDS = ("token", "sas", "password", "certificate")
TRAILING_WHITESPACE = b"\r\n \t"
# RFC 3986 query characters: unreserved, percent-encoded, sub-delims, ':', '@', '/', '?'.
_QUERY_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@/?"
)
_TOKEN_BYTES = frozenset(range(0x21, 0x7F))
_PASSWORD_BYTES = frozenset(range(0x20, 0x100)) - {0x7F}
_PEM_BYTES = frozenset(range(0x20, 0x7F)) | {0x0A, 0x0D}
_logged: set[tuple[str, str]] = set()


def _log_once(path: Path, what: str, message: str, level: int = logging.INFO) -> None:
    if (str(path), what) not in _logged:
        _logged.add((str(path), what))
        log.log(level, "%s", message)


def read_secret(path: Path, kind: str, origin: Problem) -> str:
    """The secret in `path`, checked for `kind` (KINDS); ProblemsError located
    at `origin` (its `message` is ignored) naming what is wrong and how to fix it."""
    assert kind in KINDS, kind

    def problem(message: str) -> ProblemsError:
        return ProblemsError([replace(origin, message=f"{path}: {message}")])

    raw = _read_private(path, problem)
    start = len(UTF8_BOM) if raw.startswith(UTF8_BOM) else 0
    body = raw[start:].rstrip(TRAILING_WHITESPACE)
    stripped = []
    if start:
        stripped.append("a UTF-8 byte order mark")
    tail = raw[start + len(body) :]
    if tail:
        stripped.append(f"trailing {tail!r}")
    if stripped:
        # one final newline is what `echo` and every editor write: only worth a debug line
        level = logging.DEBUG if stripped == ["trailing b'\\n'"] else logging.INFO
        _log_once(path, "stripped", f"{path}: ignored {' and '.join(stripped)}", level)
    if not body:
        raise problem("is empty")
    if kind == "token":
        _check_bytes(body, start, _TOKEN_BYTES, "a token (printable ASCII, no spaces)", problem)
        return body.decode("ascii")
    if kind == "sas":
        _check_bytes(body, start, _QUERY_BYTES, "a SAS (a URL query string)", problem)
        return _sas_of(body.decode("ascii"), path, problem)
    if kind == "certificate":
        _check_bytes(body, start, _PEM_BYTES, "a PEM certificate (ASCII lines)", problem)
        return _pem_of(body.decode("ascii"), problem)
    # password: control characters are single bytes in UTF-8, never inside a longer sequence
    _check_bytes(body, start, _PASSWORD_BYTES, "a password (a control character)", problem)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise problem(
            f"byte 0x{body[exc.start]:02x} at offset {start + exc.start} is not UTF-8"
        ) from None


def _read_private(path: Path, problem: Callable[[str], ProblemsError]) -> bytes:
    """The bytes of a regular file only its owner may read."""
    denied = "permission denied (secrets are readable by root only: use sudo)"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise problem("does not exist") from None
    except PermissionError:
        raise problem(denied) from None
    except OSError as exc:
        raise problem(exc.strerror or str(exc)) from None
    if not stat.S_ISREG(info.st_mode):
        raise problem("is not a regular file")
    acl = _access_acl(path)
    if acl is None and info.st_mode & 0o077:
        raise problem(
            f"is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}):"
            f" run: sudo chmod 600 {path}"
        )
    if acl is not None:
        others = _acl_others(acl, os.geteuid())
        if others:
            raise problem(
                f"its ACL gives access to {', '.join(others)} (getfacl {path} shows it):"
                f" run: sudo setfacl --remove-all {path} && sudo chmod 600 {path}"
            )
    try:
        return path.read_bytes()
    except PermissionError:
        raise problem(denied) from None
    except OSError as exc:
        raise problem(exc.strerror or str(exc)) from None


# acl(5) in its extended attribute (linux/include/uapi/linux/posix_acl_xattr.h): a little-endian
# u32 version (2), then entries of u16 tag, u16 permissions, u32 id.
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_ENTRY = struct.Struct("<HHI")
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20,
)  # fmt: skip


def _access_acl(path: Path) -> list[tuple[int, int, int]] | None:
    """The file's access ACL entries (tag, permissions, id), or None when it has none (its
    mode bits then say it all) or its file system keeps none."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError:
        # ENODATA: no ACL; ENOTSUP: no ACLs on this file system; a refusal: the mode bits,
        # then the read itself, decide.
        return None
    if (
        len(raw) < 4
        or (len(raw) - 4) % _ACL_ENTRY.size
        or raw[:4] != _ACL_VERSION.to_bytes(4, "little")
    ):
        # Not an ACL this module can read: refused as if it gave access to anyone.
        return [(_ACL_OTHER, 0o7, 0)]
    return list(_ACL_ENTRY.iter_unpack(raw[4:]))


def _acl_others(acl: list[tuple[int, int, int]], reader: int) -> list[str]:
    """Who the ACL lets at the file besides its owner and the user `reader` (uid): its group,
    named groups, other named users, others; a named entry's permissions as the mask limits
    them (acl(5) "access check algorithm")."""
    mask = next((perm for tag, perm, _ in acl if tag == _ACL_MASK), 0o7)
    others = []
    for tag, perm, ident in acl:
        if tag == _ACL_GROUP_OBJ and perm & mask:
            others.append("its group")
        elif tag == _ACL_GROUP and perm & mask:
            others.append(f"group {ident}")
        elif tag == _ACL_USER and perm & mask and ident != reader:
            others.append(f"user {ident}")
        elif tag == _ACL_OTHER and perm:
            others.append("others")
    return others


def _sas_of(text: str, path: Path, problem: Callable[[str], ProblemsError]) -> str:
    """A SAS without a leading '?'; a whole URL is cut to its query string."""
    if text.startswith(("https://", "http://")):
        query = urlsplit(text).query
        if not query:
            raise problem("holds a URL without a query string: the SAS is the part after '?'")
        _log_once(
            path,
            "url",
            f"{path} holds a whole URL: using its query string (the SAS) only;"
            " the account and container come from the config",
        )
        text = query
    return text.removeprefix("?")


def _pem_of(text: str, problem: Callable[[str], ProblemsError]) -> str:
    """A PEM bundle with one certificate and one unencrypted private key, newline-terminated."""
    if "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text or "Proc-Type: 4,ENCRYPTED" in text:
        raise problem(
            "holds an encrypted private key: an unattended service has no password for it;"
            " export the key without a password (openssl pkey -in KEY -out KEY.pem)"
        )
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise problem("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if re.search(r"-----BEGIN (RSA |EC )?PRIVATE KEY-----", text) is None:
        raise problem(
            "holds no PEM private key (-----BEGIN PRIVATE KEY-----): the file needs the"
            " certificate and its key, e.g. cat cert.pem key.pem"
        )
    return text + "\n"


def _check_bytes(
    body: bytes,
    start: int,
    allowed: frozenset[int],
    what: str,
    problem: Callable[[str], ProblemsError],
) -> None:
    """The first byte of `body` not in `allowed` is refused, with its offset in the file."""
    for offset, byte in enumerate(body):
        if byte not in allowed:
            raise problem(f"byte 0x{byte:02x} at offset {start + offset} is not allowed in {what}")


@dataclass(frozen=True)
class SasParameters:
    """What a SAS grants: permissions (sp), validity (st, se), resource (sr), version (sv)."""

    permissions: str
    start: datetime | None
    expiry: datetime | None
    resource: str | None
    version: str | None


def _sas_time(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name}={text!r} is not a date and time (like 2026-12-31T00:00:00Z)"
        ) from None
    return value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)


def parse_sas(sas: str) -> SasParameters:
    """The parameters of a SAS query string; ValueError saying what does not parse (never the
    signature). A SAS from a stored access policy (si=) may leave out sp and se."""
    try:
        pairs = parse_qsl(sas, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(
            "it does not parse as a query string (name=value pairs joined by &)"
        ) from None
    names = [name for name, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"parameters given twice: {', '.join(twice)}")
    params = dict(pairs)
    if not params.get("sig"):
        raise ValueError("it has no signature (sig=): it is not a SAS")
    policy = "si" in params
    permissions = params.get("sp", "")
    if not permissions and not policy:
        raise ValueError("it names no permissions (sp=)")
    if permissions and not permissions.isalpha():
        raise ValueError(f"sp={permissions!r} is not a list of permission letters (like rcwl)")
    if "se" not in params and not policy:
        raise ValueError("it has no expiry (se=)")
    expiry = _sas_time("se", params["se"]) if "se" in params else None
    start = _sas_time("st", params["st"]) if "st" in params else None
    return SasParameters(permissions, start, expiry, params.get("sr"), params.get("sv"))
