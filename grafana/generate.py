"""Write grafana/'s dashboards, alert rules and provisioning files from the code, or check them.

    .tools/venv/bin/python grafana/generate.py          # regenerate (homewatt_grafana/ changed)
    .tools/venv/bin/python grafana/generate.py --check  # exit 1 naming each file that differs

The tests run the check too (tests/grafana/test_generated_files.py), so a hand edit or a
forgotten regeneration fails CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from homewatt_grafana import contract, render  # noqa: E402 (after the path above)


def drift(root: Path = HERE) -> list[str]:
    """Files whose committed text differs from the generated one (or is missing)."""
    expected = render.files(contract.load())
    return [
        name
        for name, text in sorted(expected.items())
        if not (root / name).exists() or (root / name).read_text() != text
    ]


def write(root: Path = HERE) -> list[str]:
    written = []
    for name, text in sorted(render.files(contract.load()).items()):
        path = root / name
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(name)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args()
    if args.check:
        stale = drift()
        for name in stale:
            print(f"grafana/{name} is not what the code generates: run grafana/generate.py")
        return 1 if stale else 0
    for name in write():
        print(f"wrote grafana/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
