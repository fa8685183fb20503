"""Secret files as a real systemd hands them over: a `DynamicUser=` service loads a 0600 root
token with `LoadCredential=`, as the collector and backup units do, and reads its copy in
$CREDENTIALS_DIRECTORY with homewatt_common.secretfile, on bookworm (systemd 252) and trixie
(systemd 257, Raspberry Pi OS 13). Since v254 systemd gives the service user read access to the
copy with an ACL entry, so the copy shows as 0440 there (src/core/exec-credential.c
write_credential()); the collector refused it as "readable by group or others" on trixie and
never started (found by tests/ansible/test_install_sh_end_to_end.py).

The containers' Python is the distribution's (homewatt_common's two imports, PyYAML and
pydantic, from Debian's packages); homewatt_common is copied in from this checkout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.systemd_container import SystemdContainer

pytestmark = [pytest.mark.systemd_rig, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
TOKEN = "/etc/homewatt/credentials/influxdb-write-token"
READ = """
import os, stat, sys
from pathlib import Path
from homewatt_common.problems import Problem, ProblemsError
from homewatt_common.secretfile import read_secret
copy = Path(os.environ["CREDENTIALS_DIRECTORY"]) / "influxdb-write-token"
print(f"mode {stat.S_IMODE(copy.stat().st_mode):04o}")
try:
    print("read", read_secret(copy, "token", Problem("unit", "", "token_credential")))
except ProblemsError as error:
    sys.exit(f"refused: {error}")
"""


def read_as_service(box: SystemdContainer) -> list[str]:
    """The lines READ prints when run as a transient DynamicUser= service with the token
    loaded as a credential (systemd-run --wait --pipe: its output and exit code)."""
    done = box.run(
        [
            "systemd-run", "--quiet", "--wait", "--pipe", "--property=DynamicUser=yes",
            f"--property=LoadCredential=influxdb-write-token:{TOKEN}",
            "--setenv=PYTHONPATH=/opt/homewatt-test/src", "python3", "-c", READ,
        ],
        check=False,
    )  # fmt: skip
    assert done.exit_code == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize(("suite", "copy_mode"), [("bookworm", "0400"), ("trixie", "0440")])
def test_a_dynamic_user_service_reads_its_loaded_token_credential(
    boot_systemd_container: Callable[..., SystemdContainer], suite: str, copy_mode: str
) -> None:
    box = boot_systemd_container(suite, purpose=f"credential-{suite}")
    box.run(
        "apt-get -o DPkg::Lock::Timeout=600 update -qq"
        " && apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-yaml python3-pydantic",
        timeout=600,
    )
    box.copy_in(REPO / "common" / "src" / "homewatt_common", "/opt/homewatt-test/src")
    box.write_file(TOKEN, "rig-token\n", mode=0o600)
    box.run("chmod 0700 /etc/homewatt/credentials")

    assert read_as_service(box) == [f"mode {copy_mode}", "read rig-token"]
