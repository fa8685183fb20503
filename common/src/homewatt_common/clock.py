"""Is the system clock synchronised (NTP)? Samples and backups must not carry an
unsynchronised time (a Pi has no battery clock and boots with a wrong time). Shared by both
apps; one question, one module.

Asked in this order; the first that can answer does:

1. The kernel: adjtimex(2) with no mode set (read only) returns TIME_ERROR while no time
   daemon (systemd-timesyncd, chrony, ntpd) has synchronised the clock; every daemon keeps the
   kernel informed, and timedated's own `NTPSynchronized` is this very call. A sandbox may
   refuse it: systemd's `ProtectClock=` and any `SystemCallFilter=` without `@clock` or
   `adjtimex` do (EPERM, or SIGSYS without `SystemCallErrorNumber=`), which is why the
   collector's unit allows the call and keeps the clock safe by its empty capability set.
2. timedated over D-Bus (`timedatectl show --property=NTPSynchronized --value`), which asks
   the kernel for a process that may not. (Not for a `DynamicUser=` service, though: in the
   test rig's Debian bookworm, dbus-daemon dropped such a connection, nss-systemd or not.)
3. systemd-timesyncd's flag file `/run/systemd/timesync/synchronized`, touched at its first
   sync; its directory exists while timesyncd runs (RuntimeDirectory=systemd/timesync), so a
   directory without the file means "not synchronised yet".
4. Otherwise it cannot tell, and says so (`ClockSync.synchronized is None`).

Sources: adjtimex(2), timedatectl(1), org.freedesktop.timedate1(5),
systemd-timesyncd.service(8), systemd.exec(5) (ProtectClock=).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import subprocess
from dataclasses import dataclass
from pathlib import Path

TIME_ERROR = 5
TIMESYNC_DIR = Path("/run/systemd/timesync")
TIMEDATECTL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ClockSync:
    """The answer: `synchronized` True/False, or None for "cannot tell"; `how` names who said
    it, or why nobody could (for log lines)."""

    synchronized: bool | None
    how: str


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `modes` is set (0: read only).
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


def clock_synchronized() -> bool | None:
    """True synchronised, False not, None cannot tell (clock_state() says who answered)."""
    return clock_state().synchronized


def clock_state(
    timedatectl: str = "timedatectl",
    timesync_dir: Path = TIMESYNC_DIR,
    *,
    ask_kernel: bool = True,
) -> ClockSync:
    """Ask the kernel, then timedated, then systemd-timesyncd's flag file; never raises.
    (`ask_kernel=False` skips the kernel: for tests of the fallbacks.)"""
    refused = ""
    if ask_kernel:
        kernel, refused = _ask_kernel()
        if kernel is not None:
            return ClockSync(kernel, "the kernel (adjtimex)")
    answer = _ask_timedated(timedatectl)
    if answer is not None:
        return ClockSync(answer, "timedated (NTPSynchronized)")
    if (timesync_dir / "synchronized").exists():
        return ClockSync(True, f"systemd-timesyncd ({timesync_dir}/synchronized)")
    if timesync_dir.is_dir():
        return ClockSync(False, f"systemd-timesyncd (no {timesync_dir}/synchronized yet)")
    return ClockSync(
        None,
        f"{refused}timedated does not answer and systemd-timesyncd does not run",
    )


def _ask_kernel() -> tuple[bool | None, str]:
    """(synchronised?, "") from adjtimex(2); (None, why) when it cannot be asked."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None, "no C library to ask the kernel; "
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = int(libc.adjtimex(ctypes.byref(timex)))
    except (OSError, AttributeError) as exc:
        return None, f"the kernel cannot be asked ({exc}); "
    if state < 0:
        code = ctypes.get_errno()
        return None, f"adjtimex refused ({errno.errorcode.get(code, code)}: a sandbox?); "
    return state != TIME_ERROR, ""


def _ask_timedated(timedatectl: str) -> bool | None:
    try:
        done = subprocess.run(
            [timedatectl, "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=TIMEDATECTL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    if done.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"
