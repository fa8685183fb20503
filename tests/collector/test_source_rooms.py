"""One folder per source kind (sources/<kind>/), registered by one line, importing nothing from
another kind's folder: the rule that lets a contributor add a kind without touching the others
(sources/__init__.py says how)."""

from __future__ import annotations

import ast
from pathlib import Path

import typer

from homewatt_collector.cli.app import KIND_COMMANDS, app
from homewatt_collector.sources import SOURCES

PACKAGE = Path(__file__).parents[2] / "collector" / "src" / "homewatt_collector"
SOURCES_DIR = PACKAGE / "sources"
PREFIX = "homewatt_collector.sources."


def kind_folders() -> list[Path]:
    return sorted(p for p in SOURCES_DIR.iterdir() if (p / "__init__.py").is_file())


def imported_modules(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Every module `path` (the module named `module`, by default the one at that path)
    imports, relative imports resolved, with its line."""
    module = module or ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_no_kind_imports_from_another_kinds_folder() -> None:
    kinds = {folder.name for folder in kind_folders()}
    crossings = []
    for folder in kind_folders():
        for path in sorted(folder.rglob("*.py")):
            for line, name in imported_modules(path):
                if not name.startswith(PREFIX):
                    continue
                other = name.removeprefix(PREFIX).split(".")[0]
                if other in kinds and other != folder.name:
                    crossings.append(f"{path.relative_to(PACKAGE)}:{line}: imports {name}")
    assert crossings == []


def test_the_rule_sees_a_crossing_import(tmp_path: Path) -> None:
    """The check above is not blind: relative and absolute imports of another kind are seen."""
    modbus_source = SOURCES_DIR / "modbus" / "source.py"
    assert "homewatt_collector.sources.modbus.bus" in {
        n for _, n in imported_modules(modbus_source)
    }
    probe = tmp_path / "probe.py"
    probe.write_text("from ..modbus import meters\nimport homewatt_collector.sources.demo\n")
    names = {n for _, n in imported_modules(probe, "homewatt_collector.sources.shelly.probe")}
    assert {"homewatt_collector.sources.modbus.meters", "homewatt_collector.sources.demo"} <= names


def test_each_registered_kind_is_one_folder_and_each_folder_a_registered_kind() -> None:
    assert [folder.name for folder in kind_folders()] == SOURCES.names()
    for name in SOURCES.names():
        kind = SOURCES.get(name)
        room = f"{PREFIX}{name}"
        parts = [kind.config_model, kind.factory, kind.read_secrets, kind.check]
        for part in (p for p in parts if p is not None):
            assert part.__module__ == room or part.__module__.startswith(f"{room}."), (name, part)
        assert kind.config_model.model_fields["kind"].default == name


def test_each_kind_with_commands_is_one_group_on_top_of_the_app() -> None:
    with_cli = [folder.name for folder in kind_folders() if (folder / "cli.py").is_file()]
    assert sorted(name for name, _ in KIND_COMMANDS) == sorted(with_cli)
    click_app = typer.main.get_command(app)
    groups = getattr(click_app, "commands", {})
    for name, group in KIND_COMMANDS:
        assert name in groups and not groups[name].hidden, name
        assert group.registered_commands, f"{name}: a group without commands"


def test_shared_modules_outside_the_kind_folders_import_no_kind() -> None:
    """What kinds share (passwords, counters, state files, models) depends on no kind."""
    shared = [
        SOURCES_DIR / "passwords.py",
        *(PACKAGE / m for m in ("counters.py", "statefile.py", "models.py", "throttle.py")),
    ]
    for path in shared:
        kinds = [n for _, n in imported_modules(path) if n.startswith(PREFIX)]
        assert kinds == [], path
