"""Watching plugin directories from a thread of their own.

A :class:`Watcher` calls a function whenever files in the directories
change: through `watchfiles <https://watchfiles.helpmanual.io>`_ (the
``plugyard[watch]`` extra), which asks the operating system, when it is
installed; otherwise, or when it cannot watch, by looking at the
directories' files every ``interval`` seconds. The manager's function
rereads the directories and reloads the plugins a new version arrived for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from . import _log

log = _log.Logger("plugyard")

#: The files a plugin directory is watched for.
WATCHED_SUFFIXES = (".whl", ".py", ".sig")
Backend = Literal["watchfiles", "polling"]


def _snapshot(directories: Sequence[Path]) -> dict[str, tuple[int, int]]:
    found = {}
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith(WATCHED_SUFFIXES) or entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            found[entry.path] = (st.st_size, st.st_mtime_ns)
    return found


def _watchfiles_available() -> bool:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


class Watcher:
    """Calls ``on_change`` from a daemon thread after each batch of changes in ``directories``.

    Args:
        directories: The directories to watch.
        on_change: Called, from the watcher's thread, after files changed;
            an exception from it is logged and watching goes on.
        interval: With watchfiles, how long to wait for more changes before
            calling ``on_change`` (a wheel being copied changes many times);
            when polling, how long between two looks.
        polling: ``True`` to poll even when watchfiles is installed,
            ``False`` to require watchfiles; by default watchfiles if installed.

    Raises:
        ImportError: ``polling=False`` and watchfiles is not installed.
    """

    def __init__(
        self,
        directories: Sequence[str | os.PathLike[str]],
        on_change: Callable[[], None],
        *,
        interval: float = 0.5,
        polling: bool | None = None,
    ) -> None:
        self.directories = tuple(Path(d) for d in directories)
        self.interval = interval
        self._on_change = on_change
        if polling is False and not _watchfiles_available():
            raise ImportError(
                "watching without polling needs watchfiles: pip install plugyard[watch]"
            )
        use_watchfiles = not polling and _watchfiles_available()
        #: How it watches: ``"watchfiles"`` or ``"polling"``.
        self.backend: Backend = "watchfiles" if use_watchfiles else "polling"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, tuple[int, int]] = {}

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Watcher {self.backend} {[str(d) for d in self.directories]} {state}>"

    @property
    def running(self) -> bool:
        """Whether the watching thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start watching, in a daemon thread (nothing happens if it runs already)."""
        if self.running:
            return
        self._stop.clear()
        # Taken now, not in the thread: a change right after start() is not missed.
        self._seen = _snapshot(self.directories)
        self._thread = threading.Thread(
            target=self._run, name=f"plugyard-watch-{id(self):x}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching; wait up to ``timeout`` seconds for a change being handled."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _changed(self) -> None:
        """Call ``on_change`` if the files differ from the last look."""
        now = _snapshot(self.directories)
        if now == self._seen or self._stop.is_set():
            return
        self._seen = now
        try:
            self._on_change()
        except Exception:
            log.exception("watching %s: handling a change failed", self.directories)

    def _run(self) -> None:
        if self.backend == "watchfiles":
            try:
                self._watch()
            except Exception as exc:  # an OS limit on watches, a directory that went away
                if self._stop.is_set():
                    return
                log.warning("watching with watchfiles failed (%s); polling instead", exc)
                self.backend = "polling"
            else:
                return
        self._poll()

    def _watch(self) -> None:
        import watchfiles

        def wanted(change: watchfiles.Change, path: str) -> bool:
            name = os.path.basename(path)  # noqa: PTH119 - a string per event
            return name.endswith(WATCHED_SUFFIXES) and not name.startswith(".")

        # Every few intervals without an event it yields anyway, and the files
        # are looked at: what changed before the watch was set up is not missed.
        milliseconds = max(int(self.interval * 1000), 1)
        for _ in watchfiles.watch(
            *self.directories,
            watch_filter=wanted,
            debounce=milliseconds,
            step=min(50, milliseconds),
            stop_event=self._stop,
            rust_timeout=max(5 * milliseconds, 100),
            yield_on_timeout=True,
            raise_interrupt=False,
            recursive=False,
        ):
            self._changed()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._changed()
