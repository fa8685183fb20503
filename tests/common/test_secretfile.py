"""Secret files, for every secret either app reads: what is stripped (and logged once), what
is refused (one line naming the file and the byte's offset), a SAS pasted as a URL."""

from __future__ import annotations

import logging
import os
import stat
import struct
from pathlib import Path

import pytest

from homewatt_common import secretfile
from homewatt_common.problems import Problem, ProblemsError
from homewatt_common.secretfile import parse_sas, read_secret

ORIGIN = Problem("/etc/homewatt/backup.yaml", "", "influxdb.token_credential", 24)
WHERE = "/etc/homewatt/backup.yaml:24: influxdb.token_credential"
SAS = "sv=2026-10-06&sr=c&sp=rcwl&se=2099-01-01T00%3A00%3A00Z&sig=abc%2Fdef%3D"


@pytest.fixture(autouse=True)
def fresh_log_memory() -> None:
    secretfile._logged.clear()


def secret(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def refused(path: Path, kind: str) -> str:
    with pytest.raises(ProblemsError) as info:
        read_secret(path, kind, ORIGIN)
    return str(info.value)


def test_a_bom_and_trailing_whitespace_are_stripped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = secret(tmp_path, b"\xef\xbb\xbft0ken-ABC_123==\r\n \t")
    with caplog.at_level(logging.DEBUG, logger="homewatt_common.secretfile"):
        assert read_secret(path, "token", ORIGIN) == "t0ken-ABC_123=="
        assert read_secret(path, "token", ORIGIN) == "t0ken-ABC_123=="
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: ignored a UTF-8 byte order mark and trailing b'\\r\\n \\t'"
    ]
    assert caplog.records[0].levelno == logging.INFO
    assert "t0ken" not in caplog.text


def test_the_one_final_newline_every_editor_writes_is_only_a_debug_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = secret(tmp_path, b"t0ken\n")
    with caplog.at_level(logging.DEBUG, logger="homewatt_common.secretfile"):
        assert read_secret(path, "token", ORIGIN) == "t0ken"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, f"{path}: ignored trailing b'\\n'")
    ]


@pytest.mark.parametrize(
    ("content", "byte", "offset"),
    [
        (b"t0k en", 0x20, 3),  # a space inside: pasted with a word
        (b"t0ken\x00", 0x00, 5),
        (b"\xef\xbb\xbft\xc3\xa9st", 0xC3, 4),  # offsets count in the file, BOM included
        (b'"t0ken"\x7f', 0x7F, 7),
    ],
)
def test_a_token_byte_outside_printable_ascii_is_refused_by_offset(
    tmp_path: Path, content: bytes, byte: int, offset: int
) -> None:
    path = secret(tmp_path, content)
    assert refused(path, "token") == (
        f"{WHERE}: {path}: byte 0x{byte:02x} at offset {offset} is not allowed in a token"
        " (printable ASCII, no spaces)"
    )


def test_a_sas_is_taken_without_its_question_mark(tmp_path: Path) -> None:
    assert read_secret(secret(tmp_path, f"?{SAS}\n".encode()), "sas", ORIGIN) == SAS


def test_a_sas_pasted_as_a_container_url_keeps_its_query_string_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://homewattbackups.blob.core.windows.net/homewatt-home?{SAS}"
    path = secret(tmp_path, url.encode())
    with caplog.at_level(logging.INFO, logger="homewatt_common.secretfile"):
        assert read_secret(path, "sas", ORIGIN) == SAS
    assert caplog.messages == [
        f"{path} holds a whole URL: using its query string (the SAS) only; the account and"
        " container come from the config"
    ]
    assert "abc%2Fdef" not in caplog.text


def test_a_url_without_a_query_is_refused(tmp_path: Path) -> None:
    path = secret(tmp_path, b"https://homewattbackups.blob.core.windows.net/homewatt-home")
    assert refused(path, "sas") == (
        f"{WHERE}: {path}: holds a URL without a query string: the SAS is the part after '?'"
    )


@pytest.mark.parametrize(
    ("content", "byte", "offset"), [(b"sv=1&sp=r c", 0x20, 9), (b'sig="x"', 0x22, 4)]
)
def test_a_sas_byte_outside_query_string_syntax_is_refused_by_offset(
    tmp_path: Path, content: bytes, byte: int, offset: int
) -> None:
    path = secret(tmp_path, content)
    assert refused(path, "sas") == (
        f"{WHERE}: {path}: byte 0x{byte:02x} at offset {offset} is not allowed in a SAS"
        " (a URL query string)"
    )


def test_a_password_may_hold_spaces_and_utf8_but_no_control_characters(tmp_path: Path) -> None:
    assert read_secret(secret(tmp_path, "pass wört\n".encode()), "password", ORIGIN) == (
        "pass wört"
    )
    path = secret(tmp_path, b"pass\tword")
    assert refused(path, "password") == (
        f"{WHERE}: {path}: byte 0x09 at offset 4 is not allowed in a password (a control character)"
    )


@pytest.mark.parametrize(
    ("mode", "content", "message"),
    [
        (0o644, b"t", "is readable by group or others (mode 0644): run: sudo chmod 600 {path}"),
        (0o600, b"\n\n", "is empty"),
    ],
)
def test_a_readable_or_empty_secret_is_refused(
    tmp_path: Path, mode: int, content: bytes, message: str
) -> None:
    path = secret(tmp_path, content, mode)
    assert refused(path, "token") == f"{WHERE}: {path}: {message.format(path=path)}"


def test_a_missing_secret_or_a_directory_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path / "nope", "token") == f"{WHERE}: {tmp_path / 'nope'}: does not exist"
    assert refused(tmp_path, "token") == f"{WHERE}: {tmp_path}: is not a regular file"


def test_a_sas_from_terraform_parses() -> None:
    parsed = parse_sas(SAS)
    assert parsed.permissions == "rcwl"
    assert parsed.resource == "c"
    assert parsed.expiry is not None and parsed.expiry.year == 2099


@pytest.mark.parametrize(
    ("sas", "problem"),
    [
        ("sv=2026&sp=rcwl&se=2099-01-01", "it has no signature (sig=): it is not a SAS"),
        (
            "sp=rcwl&se=tomorrow&sig=x",
            "se='tomorrow' is not a date and time (like 2026-12-31T00:00:00Z)",
        ),
        ("sp=rcwl&sp=r&se=2099-01-01&sig=x", "parameters given twice: sp"),
        ("sp=r-w&se=2099-01-01&sig=x", "sp='r-w' is not a list of permission letters (like rcwl)"),
        ("sp=rcwl&sig=x", "it has no expiry (se=)"),
        ("se=2099-01-01&sig=x", "it names no permissions (sp=)"),
        (
            "sp=rcwl&se=2099-01-01&sig=x&oops",
            "it does not parse as a query string (name=value pairs joined by &)",
        ),
    ],
)
def test_a_sas_whose_parameters_do_not_parse_says_which(sas: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_sas(sas)
    assert str(info.value) == problem
    assert "sig=x" not in str(info.value)


def test_a_sas_of_a_stored_access_policy_needs_no_permissions_or_expiry() -> None:
    assert parse_sas("si=backup-policy&sr=c&sig=x").permissions == ""


PEM = (
    b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
    b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG\n-----END PRIVATE KEY-----\n"
)


def test_a_certificate_is_a_pem_bundle_with_its_key_kept_line_for_line(tmp_path: Path) -> None:
    assert read_secret(secret(tmp_path, PEM + b"\n\n"), "certificate", ORIGIN) == PEM.decode()
    crlf = PEM.replace(b"\n", b"\r\n")
    assert (
        read_secret(secret(tmp_path, crlf), "certificate", ORIGIN)
        == crlf.decode().rstrip("\r\n") + "\n"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PEM.split(b"-----BEGIN PRIVATE")[0], "holds no PEM private key"),
        (PEM.split(b"-----END CERTIFICATE-----\n")[1], "holds no PEM certificate"),
        (
            PEM.replace(b"BEGIN PRIVATE KEY", b"BEGIN ENCRYPTED PRIVATE KEY"),
            "holds an encrypted private key",
        ),
        (PEM.replace(b"MIIE", b"MI\tE"), "byte 0x09 at offset"),
    ],
)
def test_a_certificate_file_without_its_key_or_with_a_locked_key_is_refused(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    message = refused(secret(tmp_path, content), "certificate")
    assert message.startswith(WHERE) and expected in message
    assert "MIIE" not in message and "MIIB" not in message


def with_acl(path: Path, *entries: tuple[int, int, int]) -> None:
    """Give `path` an access ACL as setfacl(1) stores it: the extended attribute
    system.posix_acl_access, a little-endian u32 version 2 then (u16 tag, u16 perm, u32 id)
    entries in tag order (linux/include/uapi/linux/posix_acl_xattr.h; tags: 0x01 owner,
    0x02 named user, 0x04 group, 0x08 named group, 0x10 mask, 0x20 others)."""
    raw = (2).to_bytes(4, "little") + b"".join(
        struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries
    )
    os.setxattr(path, "system.posix_acl_access", raw)


def test_a_systemd_credential_copy_read_by_its_service_user_through_an_acl_is_read(
    tmp_path: Path,
) -> None:
    """systemd 254+ (trixie) hands a DynamicUser= service its LoadCredential= copy as 0400 root
    plus the ACL entry user:<the service's uid>:r-- (src/core/exec-credential.c), which stat
    shows as 0440 (the group bits are the ACL's mask)."""
    path = secret(tmp_path, b"token\n", 0o400)
    with_acl(path, (0x01, 4, 0), (0x02, 4, os.geteuid()), (0x04, 0, 0), (0x10, 4, 0), (0x20, 0, 0))
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert read_secret(path, "token", ORIGIN) == "token"


@pytest.mark.parametrize(
    ("entries", "who"),
    [
        ([(0x02, 4, 4242)], "user 4242"),
        ([(0x04, 4, 0)], "its group"),
        ([(0x08, 4, 4243)], "group 4243"),
        ([(0x02, 4, 4242), (0x08, 6, 4243)], "user 4242, group 4243"),
    ],
)
def test_a_secret_whose_acl_lets_anyone_else_read_it_is_refused(
    tmp_path: Path, entries: list[tuple[int, int, int]], who: str
) -> None:
    path = secret(tmp_path, b"token", 0o400)
    group = [] if any(tag == 0x04 for tag, _, _ in entries) else [(0x04, 0, 0)]
    with_acl(path, *sorted([(0x01, 4, 0), *entries, *group, (0x10, 6, 0), (0x20, 0, 0)]))
    assert refused(path, "token") == (
        f"{WHERE}: {path}: its ACL gives access to {who} (getfacl {path} shows it):"
        f" run: sudo setfacl --remove-all {path} && sudo chmod 600 {path}"
    )


def test_an_acl_entry_the_mask_takes_everything_from_gives_nothing(tmp_path: Path) -> None:
    path = secret(tmp_path, b"token", 0o400)
    with_acl(path, (0x01, 4, 0), (0x02, 4, 4242), (0x04, 4, 0), (0x10, 0, 0), (0x20, 0, 0))
    assert read_secret(path, "token", ORIGIN) == "token"
