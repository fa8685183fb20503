"""The command-line conventions both apps share (typer), so they behave alike:

- Every error is one plain line on stderr, `<prog>: error: <problem>`, exit status 1 (2 for a
  command-line mistake): a config problem reads `file:line: key: problem`, an option problem
  `--option: problem`, and nothing is rendered as rich markup (`[a-z]` stays `[a-z]`). Lines a
  user can paste to fix a problem follow it, indented.
- A group's options (e.g. `-c/--config`, `-v`) are accepted before and after its sub-commands:
  `homewatt-backup --config FILE run` and `homewatt-backup run --config FILE` are the same
  (`shared_options`); a value given after the sub-command wins. Commands read them with
  `option(ctx, name)`.
- `--help` lists flags without a value type (no `<bool>`).
- `CheckReport`: what check-config prints: explanations on stdout, problems and warnings on
  stderr, and `ok` last, only when nothing failed.

Typer 0.29 vendors click as `typer._click`; its exception classes are imported from there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from typer._click import exceptions as click_exc
from typer._click.core import Context, ParameterSource
from typer._click.globals import get_current_context
from typer.core import TyperCommand, TyperGroup, TyperOption

from homewatt_common.problems import Problem, ProblemsError

if TYPE_CHECKING:
    from rich.console import Console

EVERY_COMMAND = None


def plain_console(stderr: bool = False) -> Console:
    """A rich Console for tables and progress: no markup (user data such as `[x]` prints as it
    is), no highlighting, and off a terminal no width limit (nothing wraps at 80 columns).
    rich is imported here, not by the module: a daemon that never draws does not load it."""
    from rich.console import Console  # noqa: PLC0415

    console = Console(stderr=stderr, markup=False, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(
            stderr=stderr, markup=False, highlight=False, soft_wrap=True, width=10_000
        )
    return console


def progress_console() -> tuple[Console, bool]:
    """The console for progress bars (stderr) and whether to show them: only on a terminal (a
    log or a pipe gets the result line, not bar redraws)."""
    console = plain_console(stderr=True)
    return console, console.is_terminal


def _plain_flags(params: Iterable[Any]) -> None:
    """Flags take no value: show no value type for them in --help."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


def prog_name(ctx: Context | None = None) -> str:
    """The program's name (the root command's), for error lines."""
    ctx = ctx or get_current_context(silent=True)
    if ctx is None:
        return "homewatt"
    return ctx.find_root().command.name or ctx.find_root().info_name or "homewatt"


def _scrub(ctx: Context | None) -> Callable[[str], str]:
    root = ctx.find_root().command if ctx is not None else None
    return root.scrub if isinstance(root, HomewattGroup) else (lambda text: text)


def print_problems(problems: Iterable[Problem | str], level: str = "error") -> None:
    """Each problem as one plain line on stderr (`<prog>: error: ...`), its fixes indented."""
    ctx = get_current_context(silent=True)
    scrub = _scrub(ctx)
    prog = prog_name(ctx)
    for problem in problems:
        typer.echo(scrub(f"{prog}: {level}: {problem}"), err=True)
        for fix in getattr(problem, "fix", ()):
            typer.echo(f"  {fix}", err=True)


def fail(problem: ProblemsError | Exception | str) -> typer.Exit:
    """Print an error (every line of a ProblemsError) and return the Exit(1) to raise."""
    if isinstance(problem, ProblemsError):
        print_problems(problem.problems)
    else:
        print_problems(str(problem).splitlines() or [type(problem).__name__])
    return typer.Exit(1)


def usage_problem(exc: click_exc.UsageError) -> Problem:
    """A click/typer usage error as `--option: problem` (or the command's problem)."""
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else prog_name()
    see = f" (see {path} --help)"
    if isinstance(exc, click_exc.NoSuchOption):
        hint = ""
        if exc.possibilities:
            hint = f" (did you mean {', '.join(sorted(exc.possibilities))}?)"
        return Problem("", f"no such option for {path}{hint or see}", exc.option_name)
    if isinstance(exc, click_exc.BadParameter) and exc.param is not None:
        param = exc.param
        names = [*getattr(param, "opts", [])]
        key = max(names, key=len) if names and param.param_type_name == "option" else ""
        key = key or str(getattr(param, "human_readable_name", param.name))
        if isinstance(exc, click_exc.MissingParameter):
            return Problem("", f"required{see}", key)
        return Problem("", f"{exc.message}{see}", key)
    return Problem("", f"{path}: {exc.format_message()}")


class HomewattCommand(TyperCommand):
    """A sub-command: flags without a value type in --help."""

    def get_params(self, ctx: Context) -> list[Any]:
        params = super().get_params(ctx)
        _plain_flags(params)
        return params


class HomewattGroup(TyperGroup):
    """A group (the app, or a group of sub-commands): one-line errors when it is the root,
    and its `shared_options` accepted after its sub-commands too.

    `shared_options`: the group's option names -> the sub-command paths (relative, e.g.
    "outbox replay") that accept them, or EVERY_COMMAND. `scrub`: applied to every error line
    (the backup removes SAS signatures)."""

    shared_options: ClassVar[Mapping[str, frozenset[str] | None]] = {}

    @staticmethod
    def scrub(text: str) -> str:
        return text

    def shared_option_given(self, ctx: typer.Context, name: str, value: Any) -> None:
        """A shared option was given after a sub-command (after this group's callback ran):
        apply what the callback applies at once (e.g. logging for -v). Values are read with
        `option()`, which sees it anyway."""

    _shared = False

    def get_params(self, ctx: Context) -> list[Any]:
        params = super().get_params(ctx)
        _plain_flags(params)
        return params

    # -- options accepted after the sub-commands ---------------------------------------------

    def share_options(self) -> None:
        """Give each sub-command (at any depth) a copy of the shared options it accepts."""
        if self._shared:
            return
        self._shared = True
        for name, accepted in self.shared_options.items():
            original = next(p for p in self.params if p.name == name)
            for path, command in _descendants(self):
                if accepted is EVERY_COMMAND or path in accepted:
                    command.params.append(self._copy_for_sub_command(original))
        for _, command in _descendants(self):
            if isinstance(command, HomewattGroup):
                command.share_options()

    def _copy_for_sub_command(self, original: Any) -> Any:
        owner = self

        def forward(ctx: Context, param: Any, value: Any) -> Any:
            if ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
                group_ctx = ctx
                while group_ctx.command is not owner:
                    assert group_ctx.parent is not None
                    group_ctx = group_ctx.parent
                group_ctx.params[param.name] = value
                owner.shared_option_given(group_ctx, param.name, value)  # type: ignore[arg-type]
            return value

        clone = copy.copy(original)
        clone.envvar = None
        clone.show_envvar = False
        clone.required = False
        clone.default = False if original.is_flag else None
        clone.expose_value = False
        clone.is_eager = False
        clone.callback = forward
        clone.rich_help_panel = f"Options of {self.name or 'the command'} (also accepted here)"
        return clone

    # -- the program's entry point -----------------------------------------------------------

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the program; every click/typer error ends as one line (never a rich box)."""
        self.share_options()
        code: int
        try:
            result = super().main(
                args, prog_name or self.name, complete_var, standalone_mode=False, **extra
            )
            code = result if isinstance(result, int) else 0
        except click_exc.NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except click_exc.UsageError as exc:
            _print_outside_context(self, [usage_problem(exc)])
            code = exc.exit_code
        except click_exc.ClickException as exc:
            _print_outside_context(self, [Problem("", exc.format_message())])
            code = exc.exit_code
        except typer.Abort:
            _print_outside_context(self, [Problem("", "aborted")])
            code = 1
        if not standalone_mode:
            return code
        raise SystemExit(code)


def _print_outside_context(group: HomewattGroup, problems: Sequence[Problem]) -> None:
    for problem in problems:
        typer.echo(group.scrub(f"{group.name}: error: {problem}"), err=True)


def _descendants(group: TyperGroup, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, TyperGroup):
            yield from _descendants(command, f"{path} ")


def option(ctx: typer.Context, name: str) -> Any:
    """The value of a group's option `name`, given before or after the sub-command."""
    current: Context | None = ctx
    while current is not None:
        if name in current.params:
            return current.params[name]
        current = current.parent
    raise KeyError(f"no option {name!r} on {ctx.command_path}")


class CheckReport:
    """What check-config prints: explanations on stdout as it goes, problems and warnings on
    stderr, and `ok` last, only when there was no problem (then `finish` exits 0)."""

    def __init__(self) -> None:
        self.problems = 0
        self.warnings = 0

    def say(self, text: str) -> None:
        typer.echo(text)

    def warn(self, problem: Problem | str) -> None:
        self.warnings += 1
        print_problems([problem], level="warning")

    def error(self, error: ProblemsError | Problem | str) -> None:
        problems = error.problems if isinstance(error, ProblemsError) else (error,)
        self.problems += len(problems)
        print_problems(problems)

    def finish(self) -> None:
        if self.problems:
            raise typer.Exit(1)
        warnings = (
            f" ({self.warnings} warning{'s' * (self.warnings != 1)})" if self.warnings else ""
        )
        typer.echo(f"ok{warnings}")
