"""Plugins that misbehave, each in one way, for the fault suite."""

from __future__ import annotations

import ctypes
import os
import sys
import time
from typing import Any


class Faulty:
    """Does what ``execute``'s argument names: ``segfault``, ``loop``, ``exit3``, ..."""

    def execute(self, what: Any = None) -> Any:
        if what == "segfault":
            ctypes.string_at(0)
        if what == "loop":
            while True:
                pass
        if what == "sleep":
            time.sleep(60)
        if what == "exit3":
            os._exit(3)
        if what == "memory":
            hog = []
            while True:
                hog.append(bytearray(64 * 1024 * 1024))
        if what == "garbage":
            os.write(4, b"\xc1\xc1 this is not msgpack")
            time.sleep(5)
        if what == "stdout":
            line = "x" * 99 + "\n"
            for _ in range(30_000):  # 3 MB
                sys.stdout.write(line)
            sys.stdout.flush()
            return "done"
        if what == "forkbomb":
            made = 0
            try:
                while made < 10_000:
                    if os.fork() == 0:
                        time.sleep(60)
                        os._exit(0)
                    made += 1
            except OSError as exc:
                return {"forked": made, "error": exc.strerror}
            return {"forked": made, "error": None}
        if isinstance(what, dict) and "write" in what:
            try:
                with open(what["write"], "w") as file:  # noqa: PTH123 - the point of the test
                    file.write("escaped")
            except OSError as exc:
                return {"written": False, "error": exc.strerror}
            return {"written": True, "error": None}
        if what == "ptrace":
            libc = ctypes.CDLL(None, use_errno=True)
            result = libc.ptrace(0, 0, 0, 0)  # PTRACE_TRACEME
            return {"result": result, "errno": ctypes.get_errno()}
        return what
