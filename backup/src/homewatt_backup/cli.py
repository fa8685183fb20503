"""The `homewatt-backup` command (thin: parse options, call the flows, print one line or a
table). Domain errors end as one clear line on stderr and exit status 1, never a traceback.

Conventions (homewatt_common.cli, the same in homewatt-collector): every error is one plain
line, `homewatt-backup: error: file:line: key: problem` or `...: --option: problem`, with SAS
signatures and tokens removed; `-c/--config`, `--credentials-dir`, `--state-dir` and `-v` go
before or after the sub-command (the unit runs `homewatt-backup --config FILE run`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from homewatt_backup import __version__, configfiles
from homewatt_backup.archive import LocalArchives
from homewatt_backup.config import DEFAULT_CONFIG, Settings, load_settings
from homewatt_backup.engines import DatabaseEngine, make_engine
from homewatt_backup.errors import BackupError, CorruptArchiveError, redact
from homewatt_backup.ledger import VerificationLedger
from homewatt_backup.models import BackupId, RemoteBackup, utc_now
from homewatt_backup.restore import Reporter, Restorer
from homewatt_backup.runner import RequestedKind, Runner
from homewatt_backup.store import AzureBlobStore, BlobStore, azure_credential, inspect_sas
from homewatt_common.cli import (
    EVERY_COMMAND,
    CheckReport,
    HomewattCommand,
    HomewattGroup,
    fail,
    option,
    plain_console,
    progress_console,
)
from homewatt_common.problems import ProblemsError, option_problem

log = logging.getLogger("homewatt_backup")


class BackupGroup(HomewattGroup):
    shared_options: ClassVar = {
        "config": EVERY_COMMAND,
        "credentials_dir": EVERY_COMMAND,
        "state_dir": EVERY_COMMAND,
        "verbose": EVERY_COMMAND,
    }

    @staticmethod
    def scrub(text: str) -> str:
        return redact(text)

    def shared_option_given(self, ctx: typer.Context, name: str, value: Any) -> None:
        if name == "verbose":
            _logging(bool(value))


app = typer.Typer(
    name="homewatt-backup",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Hourly InfluxDB backups to Azure Blob Storage, rotated; and restore.",
    cls=BackupGroup,
)
command = app.command


def _version(value: bool) -> None:
    if value:
        typer.echo(f"homewatt-backup {__version__}")
        raise typer.Exit()


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # azure-core logs every request (URLs with SAS query strings) at INFO/DEBUG: keep it quiet
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


@app.callback()
def main_options(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            envvar="HOMEWATT_BACKUP_CONFIG",
            readable=False,  # checked by load_settings, with a one-line error
            help="The configuration file.",
        ),
    ] = DEFAULT_CONFIG,
    credentials_dir: Annotated[
        Path | None,
        typer.Option(
            "--credentials-dir",
            envvar="CREDENTIALS_DIRECTORY",
            readable=False,  # systemd's credentials directory may be search-only (x) to us
            help="Where *_credential secrets are read (systemd sets it with LoadCredential=;"
            " outside systemd the files the unit hands over are read).",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            envvar="STATE_DIRECTORY",
            readable=False,
            help="Local archives and state (systemd sets it with StateDirectory=;"
            " outside systemd the unit's, /var/lib/homewatt-backup).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _logging(verbose)


def _settings(ctx: typer.Context, read_secrets: bool = True) -> Settings:
    state_dir = option(ctx, "state_dir")
    return load_settings(
        option(ctx, "config"),
        option(ctx, "credentials_dir"),
        Path(str(state_dir).split(":")[0]) if state_dir else None,
        read_secrets=read_secrets,
    )


def _engine(settings: Settings, *, interactive: bool = True) -> DatabaseEngine:
    """InfluxDB; `interactive` (a person waiting): 2 attempts, else the timer's 3."""
    return make_engine(
        settings.config.influxdb,
        settings.secrets,
        settings.config.schedule.query_chunk_hours,
        attempts=2 if interactive else 3,
    )


def _store(settings: Settings, *, interactive: bool = True) -> BlobStore | None:
    """Azure; `interactive` (a person waiting): an unreachable account reported within ~12 s;
    the timer's `run` retries for minutes."""
    azure = settings.config.azure
    if azure is None:
        return None
    credential = azure_credential(azure, settings.secrets, interactive=interactive)
    if credential is None:
        return None
    make = AzureBlobStore.interactive if interactive else AzureBlobStore
    return make(
        azure.account_url, azure.container, credential, azure.credential_source, auth=azure.auth
    )


def _guarded(action: Callable[[], None]) -> None:
    try:
        action()
    except (BackupError, ProblemsError) as exc:
        raise fail(exc) from None


def _parse_name(name: str, site: str) -> BackupId:
    backup_id = BackupId.parse(name) or BackupId.parse(f"{site}/{name}")
    if backup_id is None:
        raise option_problem(
            "NAME",
            f"{name!r} is not a backup name (<site>/<kind>/<YYYYMMDDTHHMMSSZ>.tar, "
            "as `homewatt-backup list` shows)",
        )
    return backup_id


def _parse_blob_name(name: str, site: str) -> str:
    """A blob name as `list` shows it (any revision), the site optional."""
    parsed = BackupId.parse_blob(name) or BackupId.parse_blob(f"{site}/{name}")
    if parsed is None:
        _parse_name(name, site)  # raises the one error for a name that is not a backup's
        raise AssertionError(name)
    return parsed[0].blob_name(parsed[1])


class _RichReporter(Reporter):
    def __init__(self) -> None:
        # downloads count bytes, line protocol restores count lines, full restores shards
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=progress_console()[0],
            transient=False,
            disable=not progress_console()[1],
        )
        self.started = False

    def task(self, description: str, total: int | None) -> Callable[[int], None]:
        if not self.started:
            self.progress.start()
            self.started = True
        task_id = self.progress.add_task(description, total=total)
        return lambda n: self.progress.advance(task_id, n)

    def done(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False


@command(cls=HomewattCommand)
def run(
    ctx: typer.Context,
    kind: Annotated[
        RequestedKind,
        typer.Option(
            help="auto: a daily full once a day (schedule.daily_full_hour_utc), hourly otherwise."
        ),
    ] = RequestedKind.AUTO,
    upload: Annotated[bool, typer.Option(help="Upload the backlog and rotate remotely.")] = True,
) -> None:
    """Make one backup, upload what is pending (oldest first), rotate, write the health point."""

    def action() -> None:
        settings = _settings(ctx)
        engine, store = _engine(settings, interactive=False), _store(settings, interactive=False)
        result = Runner(settings, engine, store).run(kind, upload)
        made = result.backup.id.name if result.backup else "none"
        summary = (
            f"{result.kind.value} backup {made}; uploaded {len(result.uploaded)}, "
            f"pending {result.pending}, rotated out {len(result.deleted_remote)} remote "
            f"and {len(result.deleted_local)} local"
        )
        if not result.ok:
            for problem in result.errors[1:]:
                log.error("%s", problem)
            raise BackupError(f"{result.errors[0]} ({summary})")
        typer.echo(summary)

    _guarded(action)


def _age(ts: datetime, now: datetime) -> str:
    seconds = int((now - ts).total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@command("list", cls=HomewattCommand)
def list_backups(
    ctx: typer.Context,
    local_only: Annotated[bool, typer.Option("--local-only", help="Do not ask Azure.")] = False,
) -> None:
    """Backups kept locally and remotely: kind, age, size, upload and verification state."""

    def action() -> None:
        settings = _settings(ctx)
        local = {b.id: b for b in LocalArchives(settings.state_dir).list()}
        store = None if local_only else _store(settings)
        remote: dict[BackupId, list[RemoteBackup]] = {}
        for blob in store.list(f"{settings.config.site}/") if store else []:
            remote.setdefault(blob.id, []).append(blob)
        ledger = VerificationLedger(settings.state_dir)
        verified, revoked = (ledger.verified(), ledger.revoked()) if remote else ({}, {})
        now = utc_now()
        header = ("backup", "kind", "age", "size", "local", "remote")
        rows = []
        for backup_id in sorted(set(local) | set(remote)):
            here = local.get(backup_id)
            local_state = "-" if here is None else ("uploaded" if here.uploaded else "pending")
            # one row per blob (a re-upload after a failed verification is `.r<N>.tar`)
            blobs: list[RemoteBackup | None] = [*remote.get(backup_id, [])] or [None]
            for there in blobs:
                size = here.record.size if here else there.size if there else 0
                remote_state = (
                    "-"
                    if there is None
                    else "revoked"
                    if there.name in revoked
                    else "verified"
                    if there.is_verified(verified)
                    else "unverified"
                )
                rows.append(
                    (
                        backup_id.name if there is None else there.name,
                        backup_id.kind.value,
                        _age(backup_id.timestamp, now),
                        _size(size),
                        local_state,
                        remote_state,
                    )
                )
        out = plain_console()
        if out.is_terminal:
            table = Table(*header)
            for row in rows:
                table.add_row(*row)
            out.print(table)
        else:  # plain columns for scripts and logs
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            for row in [header, *rows]:
                typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if store is None and not local_only:
            typer.echo("(no azure section configured: local archives only)")

    _guarded(action)


@command(cls=HomewattCommand)
def verify(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="A backup name from `list`.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Verify every remote backup.")] = False,
    workdir: Annotated[
        Path | None, typer.Option(readable=False, help="Where downloads go (default: $TMPDIR).")
    ] = None,
) -> None:
    """Download remote archives and check them against their SHA-256 and manifest; record
    each intact one as verified (locally, in the state directory's ledger)."""

    def action() -> None:
        settings = _settings(ctx)
        store = _store(settings)
        if store is None:
            raise BackupError("verify needs the azure section in the configuration")
        if all_:
            names = [b.name for b in store.list(f"{settings.config.site}/")]
        elif name is not None:
            names = [_parse_blob_name(name, settings.config.site)]
        else:
            raise option_problem("NAME", "name a backup or pass --all")
        restorer = Restorer(
            _engine(settings), store, LocalArchives(settings.state_dir), workdir, _RichReporter()
        )
        failed = []
        for blob_name in names:  # every one is checked, even after a failure
            try:
                manifest = restorer.verify(blob_name)
            except CorruptArchiveError as exc:
                failed.append(str(exc))
                continue
            typer.echo(
                f"{blob_name}: OK ({len(manifest.files)} files, "
                f"{manifest.engine.value} {manifest.engine_version})"
            )
        if len(failed) == 1:
            raise CorruptArchiveError(failed[0])
        if failed:
            for line in failed[:-1]:
                typer.echo(f"homewatt-backup: error: {line}", err=True)
            raise CorruptArchiveError(failed[-1])

    _guarded(action)


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise option_problem("--at", f"{text!r} is not a time like 2026-11-23T18:30:00Z") from None
    if value.tzinfo is None:
        raise option_problem("--at", f"{text!r} has no time zone (add Z for UTC)")
    return value.astimezone(UTC)


@command(cls=HomewattCommand)
def restore(
    ctx: typer.Context,
    *,
    name: Annotated[str | None, typer.Argument(help="One backup from `list`.")] = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="Point in time (ISO 8601 with zone): the full before it plus the hourlies after."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Database (1.x) or bucket (2.x) to restore into; default: the backed-up one."
            " Extra buckets (2.x) go into TARGET_<bucket>; without --target, their own names."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Merge into a target that already holds data (same series and times overwritten)."
        ),
    ] = False,
    workdir: Annotated[
        Path | None, typer.Option(readable=False, help="Where downloads go (default: $TMPDIR).")
    ] = None,
    config_files: Annotated[
        bool,
        typer.Option(
            "--config-files",
            help="Put back the configuration a daily backup holds (config_files.directory,"
            " without credentials, and the install answers) instead of the data; a file that"
            " differs is kept unless --force.",
        ),
    ] = False,
    root: Annotated[
        Path,
        typer.Option(readable=False, help="With --config-files: write under this directory."),
    ] = Path("/"),
) -> None:
    """Download, verify and restore a backup (or a chain up to --at) into InfluxDB; or, with
    --config-files, the site's configuration from a daily backup."""

    def action() -> None:
        settings = _settings(ctx)
        if (name is None) == (at is None):
            raise option_problem("--at", "give either a backup NAME or --at TIME")
        backup_id = None if name is None else _parse_name(name, settings.config.site)
        when = None if at is None else _parse_time(at)
        engine = _engine(settings)
        if not config_files:  # a hung InfluxDB is told in seconds, not after a query's timeout
            engine.version()
        destination = target or engine.source.split("/")[-1]
        restorer = Restorer(
            engine, _store(settings), LocalArchives(settings.state_dir), workdir, _RichReporter()
        )
        if config_files:
            _restore_config(settings, restorer, name=name, at=at, root=root, force=force)
            return
        if backup_id is not None:
            done = restorer.restore(backup_id, destination, force, renamed=target)
            typer.echo(f"restored {backup_id.name} into {destination}{done.extras}")
        else:
            assert when is not None
            done = restorer.restore_at(
                settings.config.site, when, destination, force, renamed=target
            )
            typer.echo(
                f"restored {len(done.backups)} backups into {destination}{done.extras}: "
                + ", ".join(b.name for b in done.backups)
            )

    _guarded(action)


def _restore_config(
    settings: Settings,
    restorer: Restorer,
    *,
    name: str | None,
    at: str | None,
    root: Path,
    force: bool,
) -> None:
    wanted = settings.config.config_files
    backup_id, restored = restorer.restore_config(
        settings.config.site,
        None if name is None else _parse_name(name, settings.config.site),
        None if at is None else _parse_time(at),
        root=root,
        allowed=configfiles.archive_paths(wanted.directory, wanted.install_answers),
        force=force,
    )
    for path in restored.kept:
        log.warning("%s differs from the backup: kept (--force replaces it)", path)
    for member in restored.outside:
        log.warning(
            "%s is outside %s: left out (set config_files.install_answers to restore it)",
            member,
            wanted.directory,
        )
    typer.echo(
        f"configuration of {backup_id.name} restored under {root}: {len(restored.written)}"
        f" written, {len(restored.unchanged)} unchanged, {len(restored.kept)} kept"
    )


def _check_azure(report: CheckReport, settings: Settings) -> None:
    """check-config's azure line: the SAS's permissions and expiry, or the service principal
    and whether its certificate loads (Entra ID itself is asked at the first upload)."""
    config = settings.config
    if config.azure is None:
        report.say("azure: not configured (backups stay local)")
    elif config.azure.auth == "service_principal":
        where = (
            f"azure: {config.azure.account_url}/{config.azure.container}, retention "
            f"{config.azure.retention}, signed in as {config.azure.credential_source}"
            f" through {config.azure.authority_host}"
        )
        try:
            if azure_credential(config.azure, settings.secrets) is not None:
                where += " (its secret read; Entra ID is asked at the first upload)"
        except BackupError as exc:
            report.error(redact(str(exc)))
        else:
            report.say(where)
    elif settings.secrets.sas is not None:
        try:
            info = inspect_sas(
                settings.secrets.sas, config.azure.retention, utc_now(), config.azure.sas_source
            )
        except BackupError as exc:
            report.error(redact(str(exc)))
        else:
            expiry = f"expires {info.expiry:%Y-%m-%d}" if info.expiry else "no expiry"
            report.say(
                f"azure: {config.azure.account_url}/{config.azure.container}, retention "
                f"{config.azure.retention}, SAS permissions {info.permissions!r}, {expiry}"
            )
    else:
        report.say(
            f"azure: {config.azure.account_url}/{config.azure.container}, retention "
            f"{config.azure.retention}"
        )


@command("check-config", cls=HomewattCommand)
def check_config(
    ctx: typer.Context,
    no_secrets: Annotated[
        bool,
        typer.Option(
            "--no-secrets",
            help="Check everything but the secrets' contents (no root needed to read them).",
        ),
    ] = False,
) -> None:
    """Validate the configuration and its secrets, and check the SAS (permissions, expiry);
    `ok` when all passed. Outside systemd it assumes what the unit would hand over (the
    credentials' files, the state directory) and says so."""
    report = CheckReport()
    try:
        settings = _settings(ctx, read_secrets=not no_secrets)
    except (BackupError, ProblemsError) as exc:
        report.error(exc if isinstance(exc, ProblemsError) else redact(str(exc)))
        report.finish()
        return
    config = settings.config
    report.say(
        f"{settings.path}: site {config.site}, {config.engine.value} {config.influxdb.source},"
        f" state in {settings.state_dir}"
    )
    for location in settings.secret_locations.values():
        report.say(f"  {location.origin.key}: {location.path}")
    for assumed in settings.assumed:
        report.say(f"  assumed {assumed}")
    for warning in settings.warnings:
        report.warn(warning)
    if no_secrets:
        report.say("  secrets not read (--no-secrets)")
    _check_azure(report, settings)
    report.finish()


def main() -> None:
    app()
