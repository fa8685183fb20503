"""Fault injection into a real process (tests only): put this directory on PYTHONPATH and name
the faults in HOMEWATT_TEST_FAULTS (or in the JSON file HOMEWATT_TEST_FAULTS_FILE names, for a
systemd unit's Environment=), a JSON list of

    {"target": "package.module:Class.method", "raise": "RuntimeError", "message": "...",
     "times": 2, "after": 0}

The method raises that exception (a builtin exception type) on its calls number after+1 to
after+times, then behaves as before; with `"hang": SECONDS` instead of `raise` those calls
sleep that long first (a stuck serial call). Python imports `sitecustomize` at start-up, so
the process under test runs its real code with only these calls replaced; without the variable
nothing is touched. UnicodeEncodeError is built as http.client raises it for a header it
cannot encode.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _exception(kind: str, message: str) -> BaseException:
    if kind == "UnicodeEncodeError":
        return UnicodeEncodeError("latin-1", message, 0, 1, "ordinal not in range(256)")
    exc_type = getattr(builtins, kind)
    assert isinstance(exc_type, type) and issubclass(exc_type, BaseException), kind
    return exc_type(message)


def _inject(fault: dict[str, Any]) -> None:
    module_name, _, attribute = fault["target"].partition(":")
    owner_name, _, method_name = attribute.rpartition(".")
    owner: Any = importlib.import_module(module_name)
    for part in owner_name.split(".") if owner_name else ():
        owner = getattr(owner, part)
    original: Callable[..., Any] = getattr(owner, method_name)
    after, times = int(fault.get("after", 0)), int(fault.get("times", 1))
    calls = [0]
    lock = threading.Lock()

    @functools.wraps(original)
    def faulty(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
            number = calls[0]
        if after < number <= after + times:
            if "hang" in fault:
                time.sleep(float(fault["hang"]))
            else:
                raise _exception(fault["raise"], fault.get("message", "injected"))
        return original(*args, **kwargs)

    setattr(owner, method_name, faulty)


def _faults() -> list[dict[str, Any]]:
    if path := os.environ.get("HOMEWATT_TEST_FAULTS_FILE"):
        loaded: list[dict[str, Any]] = json.loads(Path(path).read_text(encoding="utf-8"))
        return loaded
    parsed: list[dict[str, Any]] = json.loads(os.environ.get("HOMEWATT_TEST_FAULTS", "[]"))
    return parsed


for _fault in _faults():
    _inject(_fault)
