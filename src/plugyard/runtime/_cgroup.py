"""A process-count limit that holds for root too: a ``pids`` cgroup per child.

``RLIMIT_NPROC`` counts per user and does not bind root at all, so a host
running as root gets its process limit from a cgroup instead, where it can
create one: the ``pids`` controller of cgroup v2 (when delegated to the
host's cgroup) or of cgroup v1. The child joins the cgroup between ``fork``
and ``exec``; the host removes it once the child's process group is gone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    """This process's cgroup path by hierarchy: ``"pids"`` (v1), ``""`` (v2)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    return found


@functools.lru_cache(maxsize=1)
def pids_base() -> Path | None:
    """The directory new ``pids`` cgroups are made in, or ``None`` where there is none."""
    own = _own_paths()
    candidates = []
    if "pids" in own:
        candidates.append(_ROOT / "pids" / own["pids"].lstrip("/"))
    if "" in own:
        candidates += [mount / own[""].lstrip("/") for mount in (_ROOT, _ROOT / "unified")]
    for base in candidates:
        v2 = (base / "cgroup.subtree_control").exists()
        if v2:
            try:
                enabled = (base / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if "pids" not in enabled:
                continue
        elif not (base / "cgroup.procs").exists():
            continue
        if os.access(base, os.W_OK):
            return base
    return None


def dead(pid: str) -> bool:
    """Whether no process has the pid ``pid`` (a string; ``False`` if it is no number)."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep() -> list[Path]:
    """Remove the cgroups that hosts killed before they could (``SIGKILL``); those removed."""
    base = pids_base()
    removed: list[Path] = []
    if base is None:
        return removed
    with contextlib.suppress(OSError):
        for path in base.glob("plugyard-*-*"):
            if dead(path.name.split("-")[1]):
                with contextlib.suppress(OSError):  # still busy: left for the next sweep
                    path.rmdir()
                    removed.append(path)
    return removed


class PidsGroup:
    """One child's ``pids`` cgroup.

    Args:
        limit: The most processes and threads the child's cgroup may hold.

    Raises:
        OSError: the cgroup cannot be made.
    """

    def __init__(self, limit: int) -> None:
        base = pids_base()
        if base is None:
            raise OSError("no writable pids cgroup")
        self.path = base / f"plugyard-{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()
        try:
            (self.path / "pids.max").write_text(str(limit))
        except OSError:
            self.path.rmdir()
            raise
        self._procs = str(self.path / "cgroup.procs")

    def join(self) -> None:  # pragma: no cover - in the child, before exec: tested by effect
        """Move the calling process into the cgroup (in the child, before ``exec``)."""
        fd = os.open(self._procs, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

    def remove(self, timeout: float = 2.0) -> None:
        """Remove the cgroup once its processes (killed already) have left it."""
        deadline = time.monotonic() + timeout
        while self.path.exists():
            # EBUSY while a killed process is still exiting.
            with contextlib.suppress(OSError):
                self.path.rmdir()
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)
