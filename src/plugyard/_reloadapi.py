"""The reload and watch methods of :class:`PluginManager`."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ._events import PluginReloaded
from ._lifecycle import Invoker
from ._reload import RELOAD, REQUESTED, Reload

if TYPE_CHECKING:
    from ._install import Installer
    from ._policy import Gate
    from ._registry import Registry
    from ._table import Table


class ReloadAPI:
    """The reload methods of :class:`PluginManager`."""

    if TYPE_CHECKING:
        _table: Table
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
        return self._reload(name, to, REQUESTED, RELOAD)

    async def areload(
        self, name: str, to: str | os.PathLike[str] | None = None
    ) -> PluginReloaded | None:
        """:meth:`reload`, awaiting ``async def`` methods on the running loop."""
        event: PluginReloaded | None = await self._in_thread(
            self._reload, name, to, REQUESTED, call="areload"
        )
        return event

    def _reload(
        self, name: str, to: str | os.PathLike[str] | None, reason: str, invoke: Invoker
    ) -> PluginReloaded | None:
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
