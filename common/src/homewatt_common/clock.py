"""Is the system clock synchronised (NTP)? Samples and backups must not carry an
unsynchronised time. Shared by both apps; one question, one module.

The kernel knows: adjtimex(2) returns TIME_ERROR while no time daemon (systemd-timesyncd,
chrony, ntpd) has synchronised the clock. A Pi without a battery clock boots with a wrong
time until then.
"""

from __future__ import annotations

import ctypes
import ctypes.util

TIME_ERROR = 5


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
    """True/False from the kernel; None when it cannot be asked (then assume nothing)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = int(libc.adjtimex(ctypes.byref(timex)))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR
