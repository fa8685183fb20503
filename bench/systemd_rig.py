"""Benchmark: what the systemd test rig costs a test session (root; after scripts/bootstrap).

    .tools/venv/bin/python bench/systemd_rig.py [--cold] [--boots 5] [--no-dind] [--json FILE]

Always measured, with a daemon of its own (a throw-away checkout key, so a new data-root):
- warm start: the daemon started (bridge, containerd, dockerd), then each image imported from
  the machine-wide cache's tarball (built first if the cache has none);
- hot start: a second session adopting that running daemon whose images are present;
- container boot (`docker run` to `systemctl is-system-running` = running), one command
  (`docker exec true`) and a graceful halt (SIGRTMIN+3, container removed), median of --boots;
- per-test overhead: boot + halt, what the `systemd_container` fixture adds to a test;
- Docker inside (unless --no-dind): boot with docker_in_docker, apt-get install docker.io,
  `docker load` of a small saved image, `docker run` of it, halt.
--cold also builds both images from nothing (debootstrap from the Debian mirror, empty
.deb cache) in a temporary cache dir: the first session on a new machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
T = TypeVar("T")
if TYPE_CHECKING:
    from tests.support.systemd_rig import SystemdRig


def timed(action: Callable[[], T]) -> tuple[T, float]:
    began = time.perf_counter()
    result = action()
    return result, round(time.perf_counter() - began, 2)


def measure_boots(rig: SystemdRig, suite: str, boots: int) -> dict[str, float]:
    """Median boot to `running`, one `docker exec`, graceful halt and boot+halt overhead."""
    booted, ran, halted, overheads = [], [], [], []
    for _ in range(boots):
        began = time.perf_counter()
        box, boot_s = timed(lambda: rig.boot(suite, purpose="bench"))
        _, run_s = timed(lambda b=box: b.run(["true"]))
        _, halt_s = timed(box.stop)
        overheads.append(time.perf_counter() - began - run_s)
        booted.append(boot_s)
        ran.append(run_s)
        halted.append(halt_s)
    return {
        f"boot_to_running_{suite}_median_s": round(statistics.median(booted), 2),
        f"exec_true_{suite}_median_s": round(statistics.median(ran), 2),
        f"graceful_halt_{suite}_median_s": round(statistics.median(halted), 2),
        f"per_test_overhead_{suite}_median_s": round(statistics.median(overheads), 2),
    }


def measure_docker_inside(rig: SystemdRig, work: Path) -> dict[str, float]:
    """Docker inside a bookworm container: apt install, a saved image loaded and run, halt."""
    from tests.support.docker_inside import busybox_archive, install_docker, load_image  # noqa: PLC0415

    work.mkdir()
    figures: dict[str, float] = {}
    began = time.perf_counter()
    box, figures["dind_boot_s"] = timed(
        lambda: rig.boot("bookworm", purpose="bench-dind", docker_in_docker=True)
    )
    _, figures["dind_apt_install_docker_io_s"] = timed(lambda: install_docker(box))
    tag, figures["dind_make_and_save_image_s"] = timed(
        lambda: busybox_archive(rig.daemon, box, work)
    )
    figures["dind_image_archive_mb"] = round((work / "busybox.tar").stat().st_size / 2**20, 1)
    _, figures["dind_docker_load_s"] = timed(lambda: load_image(box, work / "busybox.tar"))
    _, figures["dind_docker_run_s"] = timed(
        lambda: box.run(["docker", "run", "--rm", tag, "/bin/busybox", "true"])
    )
    _, figures["dind_halt_s"] = timed(box.stop)
    figures["dind_total_s"] = round(time.perf_counter() - began, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also build both images from nothing")
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--no-dind", action="store_true", help="skip the Docker-inside case")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="homewatt-bench-rig-"))
    if args.cold:
        os.environ["HOMEWATT_TEST_CACHE"] = str(scratch / "cache")  # before the rig's imports

    from tests.support.dockerd import PrivateDockerd  # noqa: PLC0415
    from tests.support.systemd_image import SUITES, rootfs_tarball, systemd_recipe  # noqa: PLC0415
    from tests.support.systemd_rig import SystemdRig  # noqa: PLC0415

    figures: dict[str, object] = {}
    if args.cold:
        for suite in SUITES:
            _, figures[f"cold_debootstrap_and_pack_{suite}_s"] = timed(
                lambda s=suite: rootfs_tarball(systemd_recipe(s))
            )
    checkout = scratch / "checkout"
    checkout.mkdir()
    rig = SystemdRig(PrivateDockerd(checkout))
    try:
        _, figures["warm_daemon_start_s"] = timed(rig.acquire)
        for suite in SUITES:
            _, figures[f"warm_import_{suite}_s"] = timed(lambda s=suite: rig.image(s))
        second = SystemdRig(PrivateDockerd(checkout))
        _, figures["hot_adopt_daemon_s"] = timed(second.acquire)
        _, figures["hot_image_lookup_s"] = timed(lambda: second.image("bookworm"))
        second.release()

        for suite in SUITES:
            figures.update(measure_boots(rig, suite, args.boots))
        if not args.no_dind:
            figures.update(measure_docker_inside(rig, scratch / "dind"))
    finally:
        rig.release()
        shutil.rmtree(rig.daemon.data_dir, ignore_errors=True)
        shutil.rmtree(rig.daemon.state_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:42} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
