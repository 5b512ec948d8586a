"""The reload and watch methods of :class:`PluginManager`."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ._candidate import CandidateKind
from ._lifecycle import Invoker, Lifecycle, log
from ._model import canonical
from .exceptions import PluginError, ReloadError

# The reload machinery (_reload, _watch) is imported by the first reload or
# watch: a manager that never reloads never loads it.
if TYPE_CHECKING:
    from ._events import PluginReloaded
    from ._install import Installer
    from ._policy import Gate
    from ._registry import Registry
    from ._table import Table
    from ._watch import Watcher

#: The reason of a reload the watcher started.
WATCHED = "a new version in a plugin directory"


class ReloadAPI:
    """The reload methods of :class:`PluginManager`."""

    _watcher: Watcher | None = None
    # Per plugin, the file (and its stamp) a reload from watching failed with.
    _watch_failed: dict[str, tuple[str | None, object]]

    if TYPE_CHECKING:
        _table: Table
        _lifecycle: Lifecycle
        _gate: Gate
        _installer: Installer | None
        registry: Registry
        drain_timeout: float

        def _locked(self) -> AbstractContextManager[None]: ...
        def _open(self) -> None: ...
        async def _in_thread(self, fn: Callable[..., Any], *args: Any, call: str) -> Any: ...

    def reload(self, name: str, to: str | os.PathLike[str] | None = None) -> PluginReloaded | None:
        """Replace active plugin ``name`` by another version while it takes calls.

        The new version is imported from its own installation and set up
        beside the old one, with the config the old one runs with; a
        ``migrate(previous)`` method, if it has one, then receives the old
        instance. Every active plugin of the same distribution moves to the
        new version with it, and their active dependents are set up again
        beside theirs. Then every affected handle switches at once; the old
        instances are torn down, dependents first, when their calls in
        flight return. If anything fails, all of it is undone: callers see
        the old version throughout, and never an error of the reload.

        Args:
            name: The plugin.
            to: A version (``"1.1"``, found in the plugin directories or
                installed), a wheel or ``.py`` file, or ``None`` for the version
                the manager would choose now (the newest allowed).

        Returns:
            The :class:`PluginReloaded` event of ``name`` (one is published
            for each affected plugin), or ``None`` when it runs ``to`` already.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: the plugin is not active: load it instead.
            VersionNotFoundError: ``to`` names no version of it.
            ReloadError: the reload failed (the reason, the stage and both
                versions are in it, and in a :class:`ReloadFailed` event);
                the old version is still active. Also when the old or the
                new version has extension modules, which cannot be unloaded.
        """
        from ._reload import RELOAD, REQUESTED

        return self._reload(name, to, REQUESTED, RELOAD)

    async def areload(
        self, name: str, to: str | os.PathLike[str] | None = None
    ) -> PluginReloaded | None:
        """:meth:`reload`, awaiting ``async def`` methods on the running loop."""
        from ._reload import REQUESTED

        event: PluginReloaded | None = await self._in_thread(
            self._reload, name, to, REQUESTED, call="areload"
        )
        return event

    def _reload(
        self, name: str, to: str | os.PathLike[str] | None, reason: str, invoke: Invoker
    ) -> PluginReloaded | None:
        from ._reload import Reload

        with self._locked():
            self._open()
            job = Reload(
                self._table,
                self.registry,
                self._gate,
                self._installer,
                self.drain_timeout,
                invoke,
                reason,
            )
            return job.run(name, to)

    def watch(self, *, interval: float = 0.5, polling: bool | None = None) -> Watcher:
        """Reload plugins when a new version of them lands in a plugin directory.

        A daemon thread watches the directories (with watchfiles, the
        ``plugyard[watch]`` extra, when it is installed; else by polling).
        After each batch of changes, each active plugin with versions in the
        directories is reloaded to the version the manager would choose now,
        if that is another one. A file that cannot be used (half copied,
        unsigned under a requiring policy, broken) fails its reload alone, is
        logged and published as :class:`ReloadFailed`, and is tried again
        only once it changes. :meth:`shutdown` stops the watching.

        Args:
            interval: How long to wait for more changes before acting (a
                wheel being copied changes many times); when polling, how
                long between two looks, in seconds.
            polling: ``True`` to poll even with watchfiles installed.

        Returns:
            The :class:`Watcher`; calling ``watch()`` again returns the same one.

        Raises:
            ValueError: the manager has no plugin directories.
        """
        if self._watcher is not None:
            self._watcher.start()
            return self._watcher
        installer = self._installer
        if installer is None:
            raise ValueError("this manager has no plugin directories to watch (plugin_dirs=)")
        from ._watch import Watcher

        self._watch_failed = {}
        watcher = Watcher(
            installer.directories.paths,
            self._directories_changed,
            interval=interval,
            polling=polling,
        )
        self._watcher = watcher
        watcher.start()
        return watcher

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def _directories_changed(self) -> None:
        """Reload each active plugin the directories now hold another chosen version of."""
        from ._plugindirs import stamp_of
        from ._reload import RELOAD

        with self._locked():
            installed = self._table.reread()
            todo = []
            dists: set[str] = set()
            for slot in list(self._lifecycle.started.values()):
                old = slot.candidate
                eps = installed.by_name.get(slot.name, ())
                if old.kind is not CandidateKind.ENTRY_POINT or not any(
                    ep in installed.locations for ep in eps
                ):
                    continue
                if canonical(old.distribution) in dists:
                    continue  # its sibling's reload moves it too
                dists.add(canonical(old.distribution))
                new = installed.candidate(slot.name, self._table.ranges_on(slot.name))
                if new.location is None:
                    continue
                todo.append((slot.name, new.location, stamp_of(new.location)))
        for name, location, stamp in todo:
            if self._watch_failed.get(name) == (location, stamp):
                continue  # failed as it is: tried again when it changes
            try:
                self._reload(name, location, WATCHED, RELOAD)
            except ReloadError:  # logged, and published as ReloadFailed
                self._watch_failed[name] = (location, stamp)
            except PluginError as error:  # unloaded meanwhile, or the file went away
                self._watch_failed[name] = (location, stamp)
                log.warning("watching %s: %s", location, error)
            else:
                self._watch_failed.pop(name, None)
