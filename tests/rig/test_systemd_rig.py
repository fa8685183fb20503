"""The systemd test rig itself: a private dockerd per checkout, debootstrap'd bookworm and
trixie images, containers that boot systemd, and what later tests rely on (files in,
commands, journal, credentials, a graceful halt, pip through this machine's trust, Docker
inside)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.docker_inside import busybox_archive, install_docker, load_image
from tests.support.dockerd import (
    PrivateDockerd,
    RigUnavailable,
    _cmdline,
    _flock,
    _read_pid,
    prune_gone_checkouts,
)
from tests.support.systemd_container import (
    SYSTEMD_RUN_OPTIONS,
    SystemdContainer,
    leaked_cgroups,
)
from tests.support.systemd_image import APT_RETRIES
from tests.support.systemd_rig import SystemdRig

pytestmark = [pytest.mark.systemd_rig, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
Boot = Callable[..., SystemdContainer]

# A oneshot service that copies what it finds in $CREDENTIALS_DIRECTORY into its state
# directory; RemainAfterExit keeps its credentials mounted for the test to inspect.
CREDENTIAL_PROOF_UNIT = """\
[Unit]
Description=rig proof: credentials reach a sandboxed service ({who})

[Service]
Type=oneshot
RemainAfterExit=yes
{who}
StateDirectory={name}
LoadCredential=token:/etc/homewatt/credentials/proof-token
SetCredential=greeting:hello from SetCredential
ProtectSystem=strict
PrivateTmp=yes
NoNewPrivileges=yes
ExecStart=/bin/sh -ec 'id -u > "$$STATE_DIRECTORY/uid"; \
cat "$$CREDENTIALS_DIRECTORY/token" > "$$STATE_DIRECTORY/token"; \
cat "$$CREDENTIALS_DIRECTORY/greeting" > "$$STATE_DIRECTORY/greeting"; \
echo "$$CREDENTIALS_DIRECTORY" > "$$STATE_DIRECTORY/directory"'
"""
PROOF_TOKEN = "proof-token-0123456789abcdef"
PROOF_UNITS = {"credproof-dynamic": "DynamicUser=yes", "credproof-user": "User=homewatt-proof"}


def install_credential_proofs(box: SystemdContainer) -> None:
    box.write_file("/etc/homewatt/credentials/proof-token", PROOF_TOKEN, mode=0o600)
    box.run(["useradd", "--system", "--no-create-home", "homewatt-proof"])
    for name, who in PROOF_UNITS.items():
        box.write_file(
            f"/etc/systemd/system/{name}.service",
            CREDENTIAL_PROOF_UNIT.format(name=name, who=who),
        )
    box.systemctl("daemon-reload")


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_a_container_boots_the_suites_systemd_with_no_unit_failed(
    boot_systemd_container: Boot, suite: str
) -> None:
    box = boot_systemd_container(suite, purpose=f"boot-{suite}")
    assert box.system_state() == "running", box.run("systemctl --failed", check=False).stdout
    assert box.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert f"VERSION_CODENAME={suite}" in box.read_text("/etc/os-release")
    version = int(box.run("systemctl --version").stdout.split()[1])
    assert version == {"bookworm": 252, "trixie": 257}[suite]


def test_commands_give_their_exit_code_stdout_and_stderr(
    systemd_container: SystemdContainer,
) -> None:
    done = systemd_container.run("echo out; echo err >&2; exit 3", check=False)
    assert (done.exit_code, done.stdout, done.stderr) == (3, "out\n", "err\n")
    with pytest.raises(AssertionError, match="exited 3"):
        systemd_container.run("exit 3")
    assert systemd_container.run(["id", "-un"], user="nobody").stdout == "nobody\n"
    assert systemd_container.run(["cat"], input=b"through stdin").stdout == "through stdin"


def test_files_arrive_with_mode_and_owner_even_on_tmpfs(
    systemd_container: SystemdContainer, tmp_path: Path
) -> None:
    box = systemd_container
    box.write_file("/run/homewatt/secret", "s3cret\n", mode=0o600, owner="nobody:nogroup")
    assert box.run("stat -c '%a %U %G' /run/homewatt/secret").stdout == "600 nobody nogroup\n"
    assert box.read_text("/run/homewatt/secret") == "s3cret\n"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "leaf.txt").write_text("leaf\n")
    box.copy_in(tree, "/tmp")  # /tmp is a tmpfs: `docker cp` would silently miss it
    assert box.read_text("/tmp/tree/sub/leaf.txt") == "leaf\n"
    assert box.run("stat -c '%U' /tmp/tree/sub/leaf.txt").stdout == "root\n"


def test_the_journal_holds_a_units_output(systemd_container: SystemdContainer) -> None:
    systemd_container.run(["systemd-run", "--wait", "--unit=rig-hello", "echo", "hello journal"])
    journal = systemd_container.journal(unit="rig-hello")
    assert re.search(r"echo\[\d+\]: hello journal", journal), journal


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_load_and_set_credential_reach_dynamic_and_static_users(
    boot_systemd_container: Boot, suite: str
) -> None:
    box = boot_systemd_container(suite, purpose=f"cred-{suite}")
    install_credential_proofs(box)
    for name in PROOF_UNITS:
        box.systemctl("start", f"{name}.service")
        state = box.unit_properties(f"{name}.service", "ActiveState", "Result")
        assert state == {"ActiveState": "active", "Result": "success"}, box.journal(f"{name}")
        proof = f"/var/lib/{name}"
        assert box.read_text(f"{proof}/token") == PROOF_TOKEN
        assert box.read_text(f"{proof}/greeting") == "hello from SetCredential"
        directory = box.read_text(f"{proof}/directory").strip()
        assert directory == f"/run/credentials/{name}.service"
        # The credential stays the service's own: another unprivileged user cannot read it
        # (systemd 252: permission denied; 257 mounts it in the service's namespace only).
        other = box.run(["runuser", "-u", "nobody", "--", "cat", f"{directory}/token"], check=False)
        assert other.exit_code != 0 and other.stdout == ""
    static_uid = box.run(["id", "-u", "homewatt-proof"]).stdout.strip()
    assert box.read_text("/var/lib/credproof-user/uid").strip() == static_uid
    # systemd allocates dynamic users from 61184-65519 (systemd.exec(5), DynamicUser=).
    assert 61184 <= int(box.read_text("/var/lib/credproof-dynamic/uid")) <= 65519


def test_credentials_vanish_when_run_is_a_private_mount(systemd_rig: SystemdRig) -> None:
    """The cause, shown: Docker's default private /run keeps systemd's credential mount (made
    in a helper's mount namespace and moved to /run/credentials/<unit>) from reaching the
    service. This is why the rig mounts /run shared."""
    options = [
        "--tmpfs=/run:rw,nosuid,nodev,mode=755" if o.startswith("--tmpfs=/run:") else o
        for o in SYSTEMD_RUN_OPTIONS
    ]
    name = f"hwt-{systemd_rig.daemon.key[:6]}-private-run-{secrets.token_hex(3)}"
    started = systemd_rig.daemon.docker(
        "run",
        "--detach",
        f"--name={name}",
        "--label=homewatt-test.rig=1",
        *options,
        systemd_rig.image("bookworm"),
    )
    box = SystemdContainer(systemd_rig.daemon, name, started.stdout.strip())
    try:
        box.wait_until_booted()
        assert box.run("findmnt -n -o PROPAGATION /run").stdout.strip() == "private"
        install_credential_proofs(box)
        failed = box.systemctl("start", "credproof-dynamic.service", check=False)
        assert failed.exit_code != 0
        journal = box.journal("credproof-dynamic.service")
        missing = "/run/credentials/credproof-dynamic.service/token: Permission denied"
        assert missing in journal, journal
    finally:
        box.stop()


def test_halting_leaves_no_container_and_no_cgroup(systemd_container: SystemdContainer) -> None:
    report = systemd_container.stop(timeout=60)
    assert report.exit_code == 0
    assert leaked_cgroups(systemd_container.id) == []
    listed = systemd_container.daemon.docker("ps", "-aq", "--filter", f"id={systemd_container.id}")
    assert listed.stdout.strip() == ""


def test_pip_inside_reaches_pypi_with_this_machines_trust(
    systemd_container: SystemdContainer,
) -> None:
    """The image trusts the host's extra CA certificates (a TLS-inspecting egress, here) and
    tells pip so in /etc/pip.conf, so pip works even with an empty environment."""
    pinned = re.search(r"^tenacity==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert pinned is not None
    box = systemd_container
    box.run(["python3", "-m", "venv", "/opt/pip-proof"])
    done = box.run(
        [
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            "/opt/pip-proof/bin/pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--dest=/opt/pip-proof/d",
            f"tenacity=={pinned.group(1)}",
        ],
        check=False,
    )
    assert done.exit_code == 0, done.stderr
    assert f"tenacity-{pinned.group(1)}" in box.run("ls /opt/pip-proof/d").stdout


def test_docker_runs_inside_a_rig_container_from_a_saved_image(
    boot_systemd_container: Boot, systemd_rig: SystemdRig, tmp_path: Path
) -> None:
    """What Molecule's docker, influxdb and grafana scenarios do: Debian's docker.io inside a
    systemd container, fed an image by `docker save` | `docker load` (no registry)."""
    box = boot_systemd_container(purpose="dind", docker_in_docker=True)
    install_docker(box)
    tag = busybox_archive(systemd_rig.daemon, box, tmp_path)
    load_image(box, tmp_path / "busybox.tar")
    ran = box.run(["docker", "run", "--rm", tag, "/bin/busybox", "echo", "inner hello"])
    assert ran.stdout == "inner hello\n"
    # The inner container reaches the Debian mirror too (three NATs: inner, rig, host).
    fetched = box.run(
        [
            "docker",
            "run",
            "--rm",
            tag,
            "/bin/busybox",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            "http://deb.debian.org/debian/dists/bookworm/Release",
        ],
        check=False,
    )
    assert fetched.exit_code == 0, fetched.stderr


def test_each_checkout_has_its_own_daemon_and_the_last_user_cleans_up(
    systemd_rig: SystemdRig, tmp_path: Path
) -> None:
    checkout = tmp_path / "other-checkout"
    checkout.mkdir()
    first = PrivateDockerd(checkout)
    second = PrivateDockerd(checkout)
    try:
        first.acquire()
        ours = systemd_rig.daemon
        assert first.socket != ours.socket and first.bridge != ours.bridge
        assert not first.network.network.overlaps(ours.network.network)
        pid = _read_pid(first.pidfile)
        assert pid is not None
        argv = _cmdline(pid)
        assert f"unix://{first.socket}" in argv and str(first.containerd_socket) in argv
        assert "/run/docker.sock" not in " ".join(argv)
        subnet = str(first.network.network)
        second.acquire()  # a second session of that checkout adopts the running daemon
        assert _read_pid(second.pidfile) == pid
        first.release()
        assert second.healthy(), "released while another session still used it"
        second.release()
        assert not first.healthy()
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
        assert first.bridge not in rules.stdout and subnet not in rules.stdout
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True)
        assert first.bridge not in links.stdout
    finally:
        second.release()
        first.release()
        first.stop()
        shutil.rmtree(first.data_dir, ignore_errors=True)
        shutil.rmtree(first.state_dir, ignore_errors=True)


def test_the_data_of_a_rig_whose_checkout_is_gone_is_pruned_and_no_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A deleted CI clone left 1.5-2 GB of images per run behind (the disk filled up on
    2026-11-30). Pruned: a recorded checkout that is gone. Kept: one that exists, one whose lock
    a session holds, one whose dockerd pid is alive, and a data dir with no record."""
    gone, busy, running = (PrivateDockerd(tmp_path / name) for name in ("gone", "busy", "running"))
    present_checkout = tmp_path / "present"
    present_checkout.mkdir()
    present = PrivateDockerd(present_checkout)
    unrecorded = PrivateDockerd(tmp_path / "unrecorded")  # a dir from before the record
    rigs = (gone, busy, running, present, unrecorded)
    try:
        for rig in rigs:
            (rig.data_root / "image").mkdir(parents=True)
            (rig.data_root / "image" / "layer").write_bytes(b"x" * 4096)
            if rig is not unrecorded:
                (rig.data_dir / "checkout").write_text(f"{rig.checkout}\n")
        running.state_dir.mkdir(parents=True, exist_ok=True)
        running.pidfile.write_text(f"{os.getpid()}\n")  # a live pid
        with _flock(busy.state_dir / "lock"), caplog.at_level(logging.WARNING):
            pruned = prune_gone_checkouts()
        assert gone.data_dir in pruned  # (and any real gone checkout's on this machine)
        assert not {rig.data_dir for rig in (busy, running, present, unrecorded)} & set(pruned)
        assert not gone.data_dir.exists() and not gone.state_dir.exists()
        for kept in (busy, running, present, unrecorded):
            assert (kept.data_root / "image" / "layer").exists(), kept.checkout
        assert f"pruned the test rig of a checkout that is gone: {gone.checkout}" in caplog.text
    finally:
        for rig in rigs:
            shutil.rmtree(rig.data_dir, ignore_errors=True)
            shutil.rmtree(rig.state_dir, ignore_errors=True)


def rule_exists(table: str, chain: str, rule: tuple[str, ...]) -> bool:
    check = ["iptables", "-w", "-t", table, "-C", chain, *rule]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def delete_rule(table: str, chain: str, rule: tuple[str, ...]) -> None:
    subprocess.run(["iptables", "-w", "-t", table, "-D", chain, *rule], check=True)


def fetch_release(box: SystemdContainer) -> int:
    """Exit code of fetching Debian's Release file from inside `box` (the mirror, via NAT)."""
    script = (
        "import urllib.request; urllib.request.urlopen("
        "'http://deb.debian.org/debian/dists/bookworm/Release', timeout=20).read()"
    )
    return box.run(["python3", "-c", script], check=False).exit_code


def test_a_rig_restarted_on_a_new_block_keeps_it_and_its_stop_spares_another_rigs_nat(
    systemd_rig: SystemdRig, tmp_path: Path
) -> None:
    """What deleted a CI rig's MASQUERADE rule (2026-11-30): rig B starts and stops (dockerd
    stores B's subnet), rig A takes that free block, B starts again on the next block. dockerd
    20.10 used to put B's bridge back on its stored address, A's subnet; B's stop then deleted
    every rule naming that subnet, A's MASQUERADE among them. Two checkouts whose keys prefer
    the same block make it happen on any machine."""
    del systemd_rig  # only to run beside a live rig, as in CI

    def key(path: Path) -> str:
        return hashlib.sha256(str(path.resolve()).encode()).hexdigest()

    b_checkout = tmp_path / "rig-b"
    # the last two digits of the 10-digit key choose the first block a rig tries
    candidates = (tmp_path / f"rig-a-{n}" for n in range(100_000))
    a_checkout = next(c for c in candidates if key(c)[8:10] == key(b_checkout)[8:10])
    for checkout in (a_checkout, b_checkout):
        checkout.mkdir()
    a, b_first, b_again = (PrivateDockerd(c) for c in (a_checkout, b_checkout, b_checkout))
    try:
        b_first.acquire()
        b_subnet = b_first.network.network
        b_first.release()  # the bridge is gone, dockerd's store keeps its subnet
        a.acquire()
        assert a.network.network == b_subnet, "setup: A takes the block B left"
        b_again.acquire()
        assert not b_again.network.network.overlaps(a.network.network)
        b_again.release()
        missing = [rule for rule in a.network_rules() if not rule_exists(*rule)]
        assert not missing, f"B's stop deleted A's rules: {missing}"
    finally:
        for daemon in (b_first, b_again, a):
            daemon.release()
            daemon.stop()
            shutil.rmtree(daemon.data_dir, ignore_errors=True)
            shutil.rmtree(daemon.state_dir, ignore_errors=True)


def test_lost_nat_and_forward_rules_come_back_on_adopting_and_before_a_run(
    systemd_rig: SystemdRig, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever deletes a rule of the bridge, the next session that adopts the rig and the next
    `docker run` (or build) put it back, logged; a container then reaches the Debian mirror."""
    daemon = systemd_rig.daemon
    masquerade, *forward = daemon.network_rules()
    assert masquerade[:2] == ("nat", "POSTROUTING") and "MASQUERADE" in masquerade[2]
    assert all(rule_exists(*rule) for rule in daemon.network_rules())
    caplog.set_level(logging.WARNING, logger="tests.support.dockerd")

    delete_rule(*masquerade)
    delete_rule(*forward[2])  # -i bridge ! -o bridge -j ACCEPT: the way out
    adopter = PrivateDockerd(daemon.checkout)
    try:
        adopter.acquire()  # a second session of this checkout adopts the running daemon
    finally:
        adopter.release()
    assert daemon.healthy(), "a second session's release stopped the daemon"
    assert all(rule_exists(*rule) for rule in daemon.network_rules())
    restored = [r.getMessage() for r in caplog.records if "restored" in r.getMessage()]
    assert len(restored) == 2 and "MASQUERADE" in restored[0], restored
    assert (
        "restored: iptables -t nat -A POSTROUTING" in (daemon.log_dir / "network.log").read_text()
    )

    delete_rule(*masquerade)  # mid-session, as in CI
    box = SystemdContainer.boot(daemon, systemd_rig.image("bookworm"), purpose="nat")
    try:
        assert rule_exists(*masquerade)
        assert fetch_release(box) == 0
    finally:
        box.stop()


def test_apt_in_rig_containers_retries_a_failed_download_8_times(
    systemd_container: SystemdContainer,
) -> None:
    dump = systemd_container.run(["apt-config", "dump", "Acquire::Retries"]).stdout
    assert 'Acquire::Retries "8";' in dump
    assert 'Acquire::Retries::Delay::Maximum "30";' in dump
    baked = systemd_container.run(["cat", APT_RETRIES.path]).stdout
    assert baked == APT_RETRIES.content.decode()


def test_without_root_the_rig_fails_with_one_line_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(RigUnavailable) as raised:
        PrivateDockerd(tmp_path).acquire()
    assert str(raised.value) == (
        "the systemd test rig needs root (it starts its own dockerd and bridge):"
        " run the tests as root"
    )
