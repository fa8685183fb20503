"""Generate the Inputs and Outputs tables of a Terraform README from the parsed HCL.

Runs in the python-hcl2 venv (.tools/hcl2, built by scripts/bootstrap):

    .tools/hcl2/bin/python tools/hcl2/tfdocs.py terraform/README.md          # rewrite
    .tools/hcl2/bin/python tools/hcl2/tfdocs.py --check terraform/README.md  # exit 1 on drift

The README marks where each module's tables go, by the module's directory relative to the README:

    <!-- BEGIN_TF_DOCS . -->          ...generated...  <!-- END_TF_DOCS . -->
    <!-- BEGIN_TF_DOCS bootstrap -->  ...generated...  <!-- END_TF_DOCS bootstrap -->
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import hcl2

OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    preserve_heredocs=False,
    strip_string_quotes=True,
)
MARKERS = re.compile(
    r"(?P<begin><!-- BEGIN_TF_DOCS (?P<module>\S+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END_TF_DOCS (?P=module) -->)",
    re.DOTALL,
)


def load_blocks(module: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Every `kind` block (variable, output) of the module's *.tf files, in file order."""
    blocks: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(module.glob("*.tf")):
        parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=OPTIONS)
        for block in parsed.get(kind, []):
            blocks.extend(block.items())
    return blocks


def expression(value: Any) -> str:
    """A parsed value as HCL-ish text: ${...} unwrapped, literals as JSON."""
    if isinstance(value, str):
        match = re.fullmatch(r"\$\{(.*)\}", value, re.DOTALL)
        return match.group(1) if match else json.dumps(value)
    return json.dumps(value, separators=(", ", ": "))


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (code spans only need their pipes escaped)."""
    return text.replace("|", "\\|").replace("\n", "<br>")


def prose(text: str) -> str:
    """A description as a table cell: angle brackets outside `code` shown, not read as HTML."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return cell("`".join(parts))


def code(text: str) -> str:
    return f"`{cell(text)}`"


def type_expression(value: Any) -> str:
    """A type constraint: a bare keyword (string, number, bool) or a ${...} constructor."""
    text = str(value)
    match = re.fullmatch(r"\$\{(.*)\}", text, re.DOTALL)
    return match.group(1) if match else text


def tables(module: Path) -> str:
    lines = [
        "### Inputs",
        "",
        "| Name | Description | Type | Default | Required |",
        "|------|-------------|------|---------|:--------:|",
    ]
    for name, spec in load_blocks(module, "variable"):
        has_default = "default" in spec
        default = code(expression(spec["default"])) if has_default else "n/a"
        lines.append(
            f"| {code(name)} | {prose(spec.get('description', ''))} "
            f"| {code(type_expression(spec.get('type', 'any')))} | {default} "
            f"| {'no' if has_default else 'yes'} |"
        )
    lines += [
        "",
        "### Outputs",
        "",
        "| Name | Description | Sensitive |",
        "|------|-------------|:---------:|",
    ]
    for name, spec in load_blocks(module, "output"):
        sensitive = "yes" if spec.get("sensitive") is True else "no"
        lines.append(f"| {code(name)} | {prose(spec.get('description', ''))} | {sensitive} |")
    return "\n".join(lines) + "\n"


def render(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")

    def replace(match: re.Match[str]) -> str:
        module = (readme.parent / match["module"]).resolve()
        return f"{match['begin']}{tables(module)}{match['end']}"

    rendered, count = MARKERS.subn(replace, text)
    if count == 0:
        raise SystemExit(f"{readme}: no <!-- BEGIN_TF_DOCS <module> --> markers")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is not current")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    rendered = render(args.readme)
    if args.check:
        if rendered != current:
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    rendered.splitlines(keepends=True),
                    str(args.readme),
                    f"{args.readme} (generated)",
                )
            )
            print(
                f"\n{args.readme} is out of date: run "
                f".tools/hcl2/bin/python tools/hcl2/tfdocs.py {args.readme}",
                file=sys.stderr,
            )
            return 1
        return 0
    if rendered != current:
        args.readme.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
