"""Sum up a py-spy profile of the collector (`bench/modbus_loop.py --profile FILE`).

    python bench/profile_summary.py FILE [--top 25]

FILE holds collapsed stacks (py-spy `--format raw`: `frame;frame;... count`), CPU samples only
(py-spy leaves out threads that wait). Printed: the share of samples per part of a cycle (the
first matching rule below, looked for from the innermost frame out), then the functions that
were running (self time) most often.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

# (part, text in a frame): the innermost frame that matches one of these names the part
PARTS = [
    ("serial waiting (pyserial read/select)", "serial/serialposix.py"),
    ("pymodbus framing and transaction", "pymodbus/"),
    ("decoding registers", "homewatt_collector/sources/modbus/decode.py"),
    ("counter rule", "homewatt_collector/counters.py"),
    ("outbox (SQLite commit)", "homewatt_collector/outbox.py"),
    ("line protocol", "homewatt_common/lineprotocol.py"),
    ("health samples", "_health_sample"),
    ("health samples", "_device_health_samples"),
    ("forwarder + sink (HTTP)", "homewatt_collector/forwarder.py"),
    ("modbus source", "homewatt_collector/sources/modbus/"),
    ("scheduler + loop", "homewatt_collector/service.py"),
    ("scheduler + loop", "homewatt_collector/scheduler.py"),
]


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for part, needle in PARTS:
            if needle in frame:
                return part
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    parts: collections.Counter[str] = collections.Counter()
    selves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        parts[part_of(frames)] += count
        selves[frames[-1]] += count
        threads[frames[0].split(" (")[0] + " " + frames[0].split(": ")[-1]] += count
    print(f"{total} CPU samples")
    print("\nby thread:")
    for name, count in threads.most_common():
        print(f"  {100 * count / total:5.1f} %  {name}")
    print("\nby part of the cycle:")
    for part, count in parts.most_common():
        print(f"  {100 * count / total:5.1f} %  {part}")
    print(f"\ntop {args.top} functions (self):")
    for frame, count in selves.most_common(args.top):
        print(f"  {100 * count / total:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
