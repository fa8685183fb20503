"""The command-line conventions of both apps (homewatt_common.cli), checked on every command
and every option they have: found by walking the commands, not listed by hand.

- `--help` works everywhere without a config, and shows no `<bool>` for a flag;
- a mistake on the command line is one plain line `<prog>: error: --option: problem`;
- `-c/--config` (and the other group options) work before and after the sub-command;
- nothing a user wrote is read as rich markup, and nothing wraps at 80 columns off a terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup, TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from homewatt_backup.cli import app as backup_app
from homewatt_collector.cli.app import app as collector_app
from homewatt_common.secrets_contract import load_contract

BIN = Path(sys.executable).parent
APPS = {"homewatt-collector": collector_app, "homewatt-backup": backup_app}


def commands(app: typer.Typer) -> Iterator[tuple[list[str], Any]]:
    """(path, click command) of the app and every sub-command, at any depth."""
    root = get_command(app)
    assert isinstance(root, TyperGroup)
    root.share_options()  # type: ignore[attr-defined]

    def walk(group: TyperGroup, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        for name, command in group.commands.items():
            yield [*path, name], command
            if isinstance(command, TyperGroup):
                yield from walk(command, [*path, name])

    yield [], root
    yield from walk(root, [])


EVERY_COMMAND = [
    pytest.param(prog, path, id=" ".join([prog, *path]))
    for prog, app in APPS.items()
    for path, _ in commands(app)
]


def invoke(prog: str, *args: str) -> Any:
    return CliRunner().invoke(APPS[prog], list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize(("prog", "path"), EVERY_COMMAND)
def test_help_works_without_a_config_and_shows_no_bool_for_a_flag(
    prog: str, path: list[str]
) -> None:
    result = invoke(prog, *path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert "<bool>" not in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(("prog", "path"), EVERY_COMMAND)
def test_an_unknown_option_is_one_line_naming_it(prog: str, path: list[str]) -> None:
    result = invoke(prog, *path, "--colour", "red")
    where = " ".join([prog, *path])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{prog}: error: --colour: no such option for {where} (see {where} --help)\n"
    )


def valid_value(param: Any) -> str:
    """A value the required option `param` accepts when the command line is parsed (a number
    within its bounds; any word for a string), so that a command runs past its options."""
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if kind is str:
        return "x"
    if kind in (int, float):
        low = getattr(param, "min", None)
        return str(low if low is not None else 1)
    pytest.fail(f"no valid value known for required option {param.opts}: add one here")


def required_options(command: Any, but: Any = None) -> list[str]:
    """The command's required options (except `but`), each with a valid value."""
    return [
        arg
        for p in command.params
        if getattr(p, "required", False) and p is not but
        for arg in (max(p.opts, key=len), valid_value(p))
    ]


def typed_options() -> Iterator[Any]:
    for prog, app in APPS.items():
        for path, command in commands(app):
            for param in command.params:
                annotation = getattr(param, "type_descriptor", None)
                kind = getattr(annotation, "annotation", None)
                if isinstance(param, TyperOption) and kind in (
                    int,
                    float,
                    int | None,
                    float | None,
                ):
                    required = required_options(command, but=param)
                    option = max(param.opts, key=len)
                    yield pytest.param(
                        prog, [*path, *required], option, id=" ".join([prog, *path, option])
                    )


@pytest.mark.parametrize(("prog", "args", "option"), list(typed_options()))
def test_a_number_option_given_a_word_is_one_line_naming_the_option(
    prog: str, args: list[str], option: str
) -> None:
    result = invoke(prog, *args, option, "abc")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{prog}: error: {option}: Input should be a valid "), line
    assert "╭" not in result.stderr and "Traceback" not in result.stderr


def command_at(prog: str, path: list[str]) -> Any:
    return next(command for at, command in commands(APPS[prog]) if at == path)


def config_commands() -> Iterator[Any]:
    for prog, app in APPS.items():
        for path, command in commands(app):
            if path and any(p.name == "config" for p in command.params):
                yield pytest.param(
                    prog,
                    path,
                    required_options(command),
                    command.hidden,
                    id=" ".join([prog, *path]),
                )


@pytest.mark.parametrize(("prog", "path", "required", "hidden"), list(config_commands()))
def test_the_config_option_works_before_and_after_the_sub_command(
    prog: str, path: list[str], required: list[str], hidden: bool, tmp_path: Path
) -> None:
    config = tmp_path / "absent.yaml"
    expected = f"{prog}: error: {config}: the file does not exist\n"
    # a hidden command is a deprecated alias: it says where it moves first
    moved = f"{prog}: warning: `{prog} {' '.join(path)}` moves to " if hidden else None
    tried = [
        (["-c", str(config), *path, *required], expected),
        ([*path, *required, "-c", str(config)], expected),
        ([*path, "--config", str(config), *required], expected),
    ]
    if any(p.name == "instance" for p in command_at(prog, path).params):
        # the unit's config of an instance that does not exist (as the contract places it)
        absent = load_contract().unit_of(prog).config_of("nosuch")
        named = f"{prog}: error: {absent}: the file does not exist\n"
        tried += [
            (["--instance", "nosuch", *path, *required], named),
            ([*path, *required, "--instance", "nosuch"], named),
        ]
    for args, error in tried:
        result = invoke(prog, *args)
        assert result.exit_code == 1, (args, result.output)
        stderr = result.stderr
        if moved is not None:
            warning, _, stderr = stderr.partition("\n")
            assert warning.startswith(moved), args
        assert stderr == error, args


def test_the_backup_units_command_line_still_works(tmp_path: Path) -> None:
    unit = (Path(__file__).parents[1] / "systemd" / "homewatt-backup.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = exec_start.removeprefix("ExecStart=").split()
    assert argv[1:] == ["--config", "/etc/homewatt/backup.yaml", "run"]
    config = tmp_path / "absent.yaml"
    done = subprocess.run(
        [str(BIN / "homewatt-backup"), "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # parsed as the unit writes it: --config before `run` reached the command
    assert done.returncode == 1
    assert done.stderr == f"homewatt-backup: error: {config}: the file does not exist\n"


def test_verbose_is_accepted_after_the_sub_command(tmp_path: Path) -> None:
    config = tmp_path / "backup.yaml"
    config.write_text("site: home\ninfluxdb: {engine: influxdb1, database: homewatt}\n")
    result = invoke(
        "homewatt-backup", "check-config", "-v", "-c", str(config), "--state-dir", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "ok"


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command with its output to pipes (not a terminal), no COLUMNS set."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "CREDENTIALS_DIRECTORY")}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env,
    )


def test_patterns_and_urls_with_brackets_print_as_written(tmp_path: Path) -> None:
    config = tmp_path / "main.yaml"
    config.write_text(
        "site: home\nsource: {kind: demo}\nsinks:\n"
        "  - {name: My Sink, url: 'http://127.0.0.1:8086/[/x]', org: o, bucket: b,"
        " anonymous: true}\n"
    )
    result = run("homewatt-collector", "check-config", "-c", str(config))
    assert result.returncode == 1
    assert result.stderr == (
        f"homewatt-collector: error: {config}:4: sinks[0].name: String should match pattern"
        " '^[a-z0-9][a-z0-9_-]*$', not 'My Sink'\n"
    )
    config.write_text(config.read_text().replace("My Sink", "local"))
    result = run("homewatt-collector", "check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "  sink local: http://127.0.0.1:8086/[/x] org=o bucket=b" in result.stdout


def test_backup_pattern_errors_print_as_written(tmp_path: Path) -> None:
    config = tmp_path / "backup.yaml"
    config.write_text(
        "site: home\ninfluxdb: {engine: influxdb1, database: d}\nazure:\n"
        "  account_url: https://a.blob.core.windows.net\n  container: Home_1\n"
        "  retention: lifecycle\n  sas_file: /x\n"
    )
    result = run("homewatt-backup", "check-config", "--no-secrets", "-c", str(config))
    assert result.returncode == 1
    assert result.stderr == (
        f"homewatt-backup: error: {config}:5: azure.container: String should match pattern"
        " '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$', not 'Home_1'\n"
    )


def test_check_config_does_not_wrap_at_80_columns_off_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / ("a-directory-with-a-long-name-" * 4) / "kitchen.yaml"
    deep.parent.mkdir(parents=True)
    deep.write_text(
        "site: home\nsource: {kind: demo}\nsinks: [{url: 'http://127.0.0.1:8086', org: o,"
        " bucket: b, anonymous: true}]\n"
    )
    result = run("homewatt-collector", "check-config", "-c", str(deep))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{deep}: site home, unit kitchen, a reading every 1 s"
    backup = deep.with_name("backup.yaml")
    backup.write_text("site: home\ninfluxdb: {engine: influxdb1, database: homewatt}\n")
    result = run(
        "homewatt-backup", "check-config", "-c", str(backup), "--state-dir", str(deep.parent)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"{backup}: site home, influxdb1 homewatt, state in {deep.parent}"
    )
