"""Print the HCL of a Terraform directory as JSON: {"<relative path>": <parsed file>, ...}.

Runs in the python-hcl2 venv (.tools/hcl2, built by scripts/bootstrap), not in the test venv:
checkov's dependencies replace hcl2's module there. Usage: hcl_dump.py DIR [DIR...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hcl2

# Plain values: strings without their HCL quotes, heredocs as strings, blocks as lists of dicts.
OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    preserve_heredocs=False,
    strip_string_quotes=True,
)


def dump(root: Path) -> dict[str, object]:
    return {
        str(path.relative_to(root)): hcl2.loads(
            path.read_text(encoding="utf-8"), serialization_options=OPTIONS
        )
        for path in sorted(root.rglob("*.tf"))
        if ".terraform" not in path.parts
    }


if __name__ == "__main__":
    json.dump({arg: dump(Path(arg)) for arg in sys.argv[1:]}, sys.stdout, indent=1)
