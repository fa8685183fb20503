"""What a rebuilt Pi needs besides its data: every daily (full) backup also archives the
configuration directory (without its credentials directory and without private files) and
install.sh's answers; `restore --config-files` puts them back."""

from __future__ import annotations

import shutil
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from homewatt_backup import configfiles
from homewatt_backup.errors import ArchiveError
from tests.backup.conftest import DB, make_site, sample_lines, write_secret
from tests.support.azurite import Azurite
from tests.support.influxdb1 import InfluxDB1


def etc_homewatt(root: Path) -> Path:
    """An /etc/homewatt as the roles lay it out: configs 0644, credentials/ 0700 with 0600
    secrets, a Grafana token copy 0400 outside credentials/."""
    etc = root / "etc" / "homewatt"
    (etc / "collector").mkdir(parents=True)
    (etc / "backup.yaml").write_text("site: home\n")
    (etc / "collector" / "main.yaml").write_text("source: {kind: modbus}\n")
    (etc / "tariff.yaml").write_text("t1: 0.31\n")
    for path in etc.rglob("*.yaml"):
        path.chmod(0o644)
    write_secret(etc / "credentials" / "azure-sas", "sv=2026&sig=SECRET-SAS")
    (etc / "credentials").chmod(0o700)
    secrets = etc / "grafana" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "influxdb-grafana-token").write_text("SECRET-TOKEN")
    (secrets / "influxdb-grafana-token").chmod(0o400)
    (etc / "link.yaml").symlink_to(etc / "tariff.yaml")
    return etc


def answers_file(root: Path) -> Path:
    path = root / "opt" / "homewatt" / "inventories" / "local" / "install.yml"
    path.parent.mkdir(parents=True)
    path.write_text("---\ncollector_site: home\n")
    path.chmod(0o644)
    return path


def test_collect_leaves_out_credentials_private_files_and_links_and_adds_the_answers(
    tmp_path: Path,
) -> None:
    etc, answers = etc_homewatt(tmp_path), answers_file(tmp_path)
    collected = configfiles.collect(etc, etc / "credentials", answers, tmp_path / "config.tar")
    with tarfile.open(collected.path) as tar:
        names = set(tar.getnames())
        data = b"".join(
            tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        )
    prefix = str(etc).lstrip("/")
    assert {
        f"{prefix}/backup.yaml",
        f"{prefix}/collector/main.yaml",
        f"{prefix}/tariff.yaml",
    } <= names
    assert str(answers).lstrip("/") in names
    assert not [n for n in names if "credentials" in n or "influxdb-grafana-token" in n]
    assert f"{prefix}/link.yaml" not in names
    assert b"SECRET" not in data
    assert any("private (mode 0400)" in s for s in collected.skipped)
    assert any("link.yaml: not a regular file" in s for s in collected.skipped)


def test_missing_install_answers_are_noted_not_fatal(tmp_path: Path) -> None:
    etc = etc_homewatt(tmp_path)
    collected = configfiles.collect(
        etc, etc / "credentials", tmp_path / "nope.yml", tmp_path / "c.tar"
    )
    assert collected.files and any("install answers not present" in s for s in collected.skipped)


def test_restore_writes_missing_files_keeps_changed_ones_unless_forced(tmp_path: Path) -> None:
    etc = etc_homewatt(tmp_path / "old")
    tar = configfiles.collect(etc, etc / "credentials", None, tmp_path / "c.tar").path
    allowed = configfiles.archive_paths(etc, None)
    root = tmp_path / "new"
    first = configfiles.restore_config(tar, root, allowed)
    restored = root / str(etc).lstrip("/")
    assert len(first.written) == 3 and not first.kept
    assert (restored / "tariff.yaml").read_text() == "t1: 0.31\n"
    assert (restored / "tariff.yaml").stat().st_mode & 0o777 == 0o644
    assert not (restored / "credentials").exists()
    (restored / "tariff.yaml").write_text("t1: 0.40\n")
    again = configfiles.restore_config(tar, root, allowed)
    assert again.kept == [restored / "tariff.yaml"] and len(again.unchanged) == 2
    assert (restored / "tariff.yaml").read_text() == "t1: 0.40\n"
    forced = configfiles.restore_config(tar, root, allowed, force=True)
    assert forced.written == [restored / "tariff.yaml"]
    assert (restored / "tariff.yaml").read_text() == "t1: 0.31\n"


def test_restore_leaves_out_paths_outside_the_allowed_ones_and_refuses_unsafe_names(
    tmp_path: Path,
) -> None:
    etc, answers = etc_homewatt(tmp_path / "old"), answers_file(tmp_path / "old")
    tar = configfiles.collect(etc, etc / "credentials", answers, tmp_path / "c.tar").path
    result = configfiles.restore_config(tar, tmp_path / "new", configfiles.archive_paths(etc, None))
    assert result.outside == [str(answers).lstrip("/")]
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as handle:
        info = tarfile.TarInfo("../../etc/passwd")
        handle.addfile(info)
    with pytest.raises(ArchiveError, match="unsafe member name"):
        configfiles.restore_config(evil, tmp_path / "new", ["etc/homewatt"])


@pytest.mark.integration
def test_a_daily_backup_carries_the_config_and_restore_config_files_puts_it_back_from_azure(
    tmp_path: Path, influxdb1: InfluxDB1, azurite: Azurite
) -> None:
    influxdb1.write(DB, sample_lines(int(time.time()) - 600, 10, step=30))
    etc, answers = etc_homewatt(tmp_path / "pi"), answers_file(tmp_path / "pi")
    site = make_site(tmp_path / "site", influxdb1, azurite)
    site.config["config_files"] = {"directory": str(etc), "install_answers": str(answers)}
    site.save()
    result = site.cli("run", "--kind", "daily")
    assert result.exit_code == 0, result.output
    [name] = [b.name for b in azurite.container(site.container or "").list_blobs()]

    # the SD card died: configs, answers and local archives are gone; only Azure is left
    shutil.rmtree(tmp_path / "pi")
    shutil.rmtree(site.state_dir / "archives")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    restored = site.cli("restore", "--config-files", "--at", now)
    assert restored.exit_code == 0, restored.output
    assert f"configuration of {name} restored under /: 4 written" in restored.stdout
    assert (etc / "collector" / "main.yaml").read_text() == "source: {kind: modbus}\n"
    assert answers.read_text() == "---\ncollector_site: home\n"
    assert not (etc / "credentials").exists()
    assert not (etc / "grafana" / "secrets" / "influxdb-grafana-token").exists()
    assert (etc / "backup.yaml").stat().st_mode & 0o777 == 0o644

    hourly = site.cli("restore", "--config-files", name.replace("daily", "hourly"))
    assert hourly.exit_code == 1
