"""A plugin that says who its process runs as."""

from __future__ import annotations

import ctypes
import os
from typing import Any

_PR_GET_PDEATHSIG = 2


def _parent_death_signal() -> int:
    """The calling thread's: each thread has its own, and a new one starts without."""
    signal = ctypes.c_int()
    ctypes.CDLL(None).prctl(_PR_GET_PDEATHSIG, ctypes.byref(signal), 0, 0, 0)
    return signal.value


#: The main thread's, which the host set: the worker imports plugins on it.
PARENT_DEATH_SIGNAL = _parent_death_signal()


class WhoAmI:
    """Returns its process's user, groups and parent-death signal."""

    def execute(self, data: Any = None) -> dict[str, Any]:
        return {
            "uid": os.getresuid(),
            "gid": os.getresgid(),
            "groups": sorted(os.getgroups()),
            "parent_death_signal": PARENT_DEATH_SIGNAL,
        }
