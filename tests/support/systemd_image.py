"""Debian images that boot systemd, built with debootstrap (no registry is reachable here).

An `ImageRecipe` is everything an image is made of, as data: the suite (bookworm, trixie),
the mirror, the package list, the files baked in and the image config. Its content hash names
the result, so each recipe is built once per machine:

1. `rootfs_tarball(recipe)`: `debootstrap --variant=minbase` into a scratch dir, the files
   written in, `update-ca-certificates` run in the chroot, an empty /etc/machine-id (systemd
   makes one at boot), packed as `<suite>-<hash>.tar` in the machine-wide cache
   /var/cache/homewatt-test/rootfs (HOMEWATT_TEST_CACHE overrides the root). Every checkout
   and later session reuses it; a flock makes concurrent builders wait for the first one.
   Downloaded .debs are kept in the cache's debs/<suite>/ for the next recipe of that suite.
   The cache is keyed by the recipe, not by the mirror's state: delete a tarball to refresh it.
2. `ensure_image(daemon, recipe)`: `docker import` of that tarball into the rig's daemon, then
   a one-step `docker build` for the config `docker import` cannot set (STOPSIGNAL), tagged
   `homewatt-test/<suite>:<hash>`. A daemon keeps it in its data-root across sessions.

The default recipe (`systemd_recipe`) bakes in what a test container needs to reach PyPI and
npm through this machine's egress: the host's extra CA certificates
(/usr/local/share/ca-certificates/*.crt, so they are part of the hash), /etc/pip.conf pointing
pip at the system bundle, and PIP_CERT/REQUESTS_CA_BUNDLE/SSL_CERT_FILE/NODE_EXTRA_CA_CERTS in
the image's environment (seen by `docker exec`; systemd services get pip.conf only); and
apt's retries (APT_RETRIES: 8, not 3), so one DNS hiccup does not fail an image build.

Images built FROM these (e.g. a stand-in server) use `FROM homewatt-test/bookworm:<hash>` with
the tag this module returns; containers from them boot with the flags in systemd_container.py.

Cost (2-core dev VM): debootstrap about 90 s per suite with an empty deb cache (70-80 s with
it), packing 3 s; import + build about 10 s per image; a cached image costs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.dockerd import PrivateDockerd, RigUnavailable

CACHE = Path(os.environ.get("HOMEWATT_TEST_CACHE", "/var/cache/homewatt-test"))
MIRROR = "http://deb.debian.org/debian"
SUITES = ("bookworm", "trixie")  # Raspberry Pi OS 12 and 13
# What Ansible, the apps (a venv) and systemd need; platform.md's list plus python3-venv.
PACKAGES = (
    "ca-certificates",
    "dbus",
    "iproute2",
    "procps",
    "python3",
    "python3-apt",
    "python3-venv",
    "sudo",
    "systemd",
    "systemd-sysv",
)
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
# Bump when the build steps change in a way the recipe's data does not show.
RECIPE_FORMAT = 1


@dataclass(frozen=True)
class BakedFile:
    """A file written into the root file system before it is packed."""

    path: str  # absolute path inside the image
    content: bytes
    mode: int = 0o644


# apt retries a failed download 3 times by default, with a delay that doubles from a second
# (apt's changelog, 2.3.2 and 2.3.7): a DNS outage of ten seconds fails a build. 8 retries, at
# most 30 s apart, ride out about two minutes. Every apt in a rig container and in an image
# built FROM one (stand-ins, Molecule's instances) reads this file.
APT_RETRIES = BakedFile(
    "/etc/apt/apt.conf.d/80homewatt-test-retries",
    b'Acquire::Retries "8";\nAcquire::Retries::Delay::Maximum "30";\n',
)


@dataclass(frozen=True)
class ImageRecipe:
    """Everything an image is made of; `content_hash()` names the built tarball and image."""

    suite: str
    packages: tuple[str, ...] = PACKAGES
    mirror: str = MIRROR
    files: tuple[BakedFile, ...] = ()
    # Dockerfile instructions applied on top of the imported root file system.
    config: tuple[str, ...] = field(
        default=(
            'CMD ["/lib/systemd/systemd"]',
            "STOPSIGNAL SIGRTMIN+3",
            "ENV container=docker",
        )
    )

    def content_hash(self) -> str:
        """sha256 (hex) over the recipe's canonical JSON, file contents included."""
        canonical = {
            "format": RECIPE_FORMAT,
            "suite": self.suite,
            "variant": "minbase",
            "mirror": self.mirror,
            "packages": sorted(self.packages),
            "files": sorted(
                (f.path, f.mode, hashlib.sha256(f.content).hexdigest()) for f in self.files
            ),
            "config": list(self.config),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    @property
    def name(self) -> str:
        """`<suite>-<first 16 hex digits of the hash>`: the cached tarball's name."""
        return f"{self.suite}-{self.content_hash()[:16]}"

    @property
    def tag(self) -> str:
        """The image's name in the rig's daemon: `homewatt-test/<suite>:<hash16>`."""
        return f"homewatt-test/{self.suite}:{self.content_hash()[:16]}"


def systemd_recipe(suite: str = "bookworm") -> ImageRecipe:
    """The rig's image for `suite`: PACKAGES, the host's extra CA certificates, pip's config,
    apt's retries (APT_RETRIES)."""
    if suite not in SUITES:
        raise ValueError(f"suite {suite!r}: the rig builds {', '.join(SUITES)}")
    certs = tuple(
        BakedFile(str(path), path.read_bytes()) for path in sorted(HOST_CA_DIR.glob("*.crt"))
    )
    pip_conf = BakedFile("/etc/pip.conf", f"[global]\ncert = {CA_BUNDLE}\n".encode())
    base = ImageRecipe(suite)
    trust = tuple(
        f"ENV {name}={CA_BUNDLE}"
        for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")
    )
    files = (*certs, pip_conf, APT_RETRIES)
    return ImageRecipe(suite, files=files, config=(*base.config, *trust))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unmount_below(root: Path) -> None:
    """Unmount what a failed debootstrap left mounted under `root` (proc, sys), deepest first."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target == str(root) or target.startswith(f"{root}/"):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], check=False, timeout=60)


def rootfs_tarball(recipe: ImageRecipe, cache: Path = CACHE) -> Path:
    """The packed root file system of `recipe`, built now unless the cache has it.

    Cost: nothing when cached; else about 90 s (debootstrap from the Debian mirror).
    Raises RigUnavailable naming the build log when debootstrap fails.
    """
    tarball = cache / "rootfs" / f"{recipe.name}.tar"
    if tarball.exists():
        return tarball
    with _locked(cache / "rootfs" / f"{recipe.name}.lock"):
        if tarball.exists():  # another checkout built it while we waited
            return tarball
        build = cache / "build" / f"{recipe.name}.{os.getpid()}"
        rootfs = build / "rootfs"
        log = cache / "build" / f"{recipe.name}.log"
        debs = cache / "debs" / recipe.suite
        debs.mkdir(parents=True, exist_ok=True)
        rootfs.mkdir(parents=True)
        started = time.monotonic()
        try:
            with _locked(debs.with_suffix(".lock")), log.open("wb") as out:
                done = subprocess.run(
                    [
                        "debootstrap",
                        "--variant=minbase",
                        f"--cache-dir={debs}",
                        f"--include={','.join(recipe.packages)}",
                        recipe.suite,
                        str(rootfs),
                        recipe.mirror,
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=1800,
                    check=False,
                )
            if done.returncode != 0:
                raise RigUnavailable(
                    f"debootstrap {recipe.suite} failed (exit {done.returncode}): see {log}"
                )
            for baked in recipe.files:
                target = rootfs / baked.path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(baked.content)
                target.chmod(baked.mode)
            subprocess.run(
                ["chroot", str(rootfs), "update-ca-certificates"],
                capture_output=True,
                check=True,
                timeout=120,
            )
            (rootfs / "etc/machine-id").write_text("")  # systemd makes one at each boot
            (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
            partial = tarball.with_suffix(".tar.part")
            partial.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "tar",
                    "--numeric-owner",
                    "--one-file-system",
                    "-C",
                    str(rootfs),
                    "-cf",
                    str(partial),
                    ".",
                ],
                check=True,
                timeout=600,
            )
            partial.rename(tarball)
            tarball.with_suffix(".json").write_text(
                json.dumps(
                    {
                        "suite": recipe.suite,
                        "packages": list(recipe.packages),
                        "hash": recipe.content_hash(),
                        "built_s": round(time.monotonic() - started, 1),
                    },
                    indent=2,
                )
                + "\n"
            )
        finally:
            _unmount_below(rootfs)
            shutil.rmtree(build, ignore_errors=True)
    return tarball


def ensure_image(daemon: PrivateDockerd, recipe: ImageRecipe) -> str:
    """The tag of `recipe`'s image in `daemon`, imported (and built first) if it is missing.

    Cost: nothing when the daemon has it; about 10 s to import a cached tarball; plus
    `rootfs_tarball`'s build when the machine has none.
    """
    if daemon.docker("image", "inspect", recipe.tag, check=False).exit_code == 0:
        return recipe.tag
    with _locked(daemon.state_dir / "images.lock"):
        if daemon.docker("image", "inspect", recipe.tag, check=False).exit_code == 0:
            return recipe.tag
        tarball = rootfs_tarball(recipe)
        rootfs_image = f"homewatt-test/{recipe.suite}-rootfs:{recipe.content_hash()[:16]}"
        daemon.docker("import", str(tarball), rootfs_image)
        dockerfile = "\n".join(
            [
                f"FROM {rootfs_image}",
                *recipe.config,
                f'LABEL org.opencontainers.image.description="homewatt test image: Debian'
                f' {recipe.suite} with systemd" homewatt-test.recipe="{recipe.content_hash()}"',
            ]
        )
        daemon.docker("build", "--tag", recipe.tag, "-", input=dockerfile.encode())
        daemon.docker("rmi", rootfs_image)
    return recipe.tag
