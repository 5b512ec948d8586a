"""The plugin manager: a facade over the sources, the loader, the resolver and the lifecycle."""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _configure, _resolve, _start, _versions
from ._asyncapi import AsyncAPI
from ._bus import EventBus
from ._candidate import Candidate
from ._handles import MapResult, PluginHandle, T
from ._lifecycle import Invoker, Lifecycle
from ._metrics import GroupMetrics
from ._model import PluginInfo, PluginState
from ._policy import Gate, TrustPolicy
from ._public import present_top_level as _present_top_level
from ._registry import Registry, get_registry
from ._reloadapi import ReloadAPI
from ._table import Table
from ._value import evolve
from .exceptions import DependentsActiveError, ManagerBusyError, ManagerClosedError, PluginError

if TYPE_CHECKING:
    from ._configstore import ConfigStore

# The sync API's invokers: each refuses a coroutine method, naming the async call to use.
_LOAD = Invoker(call="aload")
_LOAD_ALL = Invoker(call="aload_all")
_EXECUTE = Invoker(call="aexecute")
_UNLOAD = Invoker(call="aunload")
_SHUTDOWN = Invoker(call="ashutdown")
_CONFIGURE = Invoker(call="aconfigure")


class PluginManager(AsyncAPI[T], ReloadAPI):
    """Loads, runs and unloads the plugins of one group, dependencies first.

    Plugins are loaded lazily: on first :meth:`get` or :meth:`execute`, or all
    at once by :meth:`load_all`. A plugin that fails (a missing dependency, a
    version out of range, a cycle, an exception in its ``setup``) fails alone
    with its dependents; everything else still loads.

    Calls (:meth:`execute`, handles) take no lock. Lifecycle operations
    (load, unload, configure, shutdown) run one at a time; reading
    (:meth:`states`, :meth:`errors`, :meth:`info`, :meth:`metrics`,
    :meth:`candidates`) does not wait for them. Unloading waits for the calls
    in flight. A manager is a context manager (``with`` and ``async with``)
    that shuts down on exit; a shut-down manager is closed for good.

    Plugins come from three sources in one namespace: the registry (plugins
    registered in code), the entry points of the installed distributions in
    the group, and plugin directories of wheels and single-file plugins. An
    entry point names a class or function (the entry point's name is the
    plugin's name) or a module whose import registers plugins with
    :func:`register`. Listing imports nothing. When several versions of a
    plugin are present, the newest allowed is loaded (see ``versions``).

    Plugins with ``async def`` lifecycle methods are set up, configured and
    torn down through the async API (:meth:`aload`, :meth:`aexecute`, ...),
    which runs them on the caller's event loop.

    Args:
        registry: The registry to load from; by default the process-wide
            registry of ``group``.
        group: The group, when no registry is given.
        entry_points: Whether to find installed plugins through the entry
            points of the group.
        path: Where to look for installed distributions; ``sys.path`` by default.
        plugin_dirs: Directories of wheels and single-file plugins, in order
            of precedence. A plugin of a directory is installed into
            plugyard's data directory when it is first loaded (see
            :doc:`/plugin-dirs`).
        versions: Version ranges by plugin name, e.g. ``{"tokenize": "==1.1"}``:
            only versions in its range are chosen for that plugin.
        trust: Which installed and directory plugins must be signed; nothing
            is verified by default. See :class:`TrustPolicy`.
        config: A directory (or :class:`ConfigStore`) holding each plugin's
            configuration and which plugins are disabled; without one,
            plugins get empty configurations and nothing is persisted.
        events: The bus lifecycle events are published on; a new one by default.
        metrics: Whether to count calls, errors and latency of each plugin.
        watch: Start :meth:`watch` right away: reload plugins when a new
            version lands in a plugin directory.
        drain_timeout: How long, in seconds, an unload, shutdown or reload
            waits for calls in flight before it gives up.
        lock_timeout: How long, in seconds, a lifecycle operation waits for
            the one running before it gives up with :class:`ManagerBusyError`.
        interface: What every plugin must implement: a :class:`typing.Protocol`
            or an ABC. Each plugin is checked before it is set up (its methods,
            ``async`` or not, their positional arguments) and fails alone with
            :class:`PluginInterfaceError` if it does not fit; handles are typed
            ``PluginHandle[interface]``.
        isolation: ``"process"`` runs every plugin of the group in a sandbox
            process, or give it by plugin name (``{"name": "process"}``); see
            :mod:`plugyard.runtime`. Entry points marked ``[sandbox]`` run
            there in any case.
        sandbox: How sandbox processes are confined and supervised
            (a :class:`plugyard.runtime.Sandbox`; its defaults otherwise).

    Raises:
        ValueError: neither ``registry`` nor ``group`` is given, or both are
            and they disagree.
        InvalidPluginError: a range of ``versions`` is invalid.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        group: str | None = None,
        entry_points: bool = True,
        path: Sequence[str] | None = None,
        plugin_dirs: Sequence[str | os.PathLike[str]] | None = None,
        versions: Mapping[str, str] | None = None,
        trust: TrustPolicy | None = None,
        config: ConfigStore | str | os.PathLike[str] | None = None,
        events: EventBus | None = None,
        metrics: bool = True,
        watch: bool = False,
        drain_timeout: float = 30.0,
        lock_timeout: float = 60.0,
        interface: type[T] | None = None,
        isolation: str | Mapping[str, str] | None = None,
        sandbox: Any = None,
    ) -> None:
        if registry is None:
            if group is None:
                raise ValueError("PluginManager needs a registry or a group")
            registry = get_registry(group)
        elif group is not None and group != registry.group:
            raise ValueError(f"group {group!r} differs from the registry's {registry.group!r}")
        self.registry = registry
        self.group = registry.group
        self.trust = trust or TrustPolicy()
        self.events = events if events is not None else EventBus()
        self.config_store = _configure.store_of(config)
        self.drain_timeout = drain_timeout
        self.lock_timeout = lock_timeout
        self.interface = interface
        self._metrics = GroupMetrics(self.group) if metrics else None
        self._lifecycle = Lifecycle(
            self.group, self.events, self._metrics, self._load_lazily, interface
        )
        self._gate = Gate(self.trust, self.group)
        directories = installer = None
        if plugin_dirs:
            # Imported only for plugin directories: zip and importlib.abc cost at import.
            from ._install import Installer
            from ._plugindirs import Directories

            directories = Directories(plugin_dirs)
            installer = Installer(directories, self.trust, self.group)
        self._installer = installer
        self._table = Table(
            registry,
            self._lifecycle,
            self._gate,
            self._metrics,
            entry_points=entry_points,
            path=path,
            sandbox={
                "isolation": isolation,
                "policy": sandbox,
                "untrusted": self.trust.untrusted == "sandbox",
            },
            directories=directories,
            pins=_versions.parse_pins(versions),
            prepare=installer,
        )
        # The table's own mapping, changed in place: execute() reads it with no lock.
        self._handles = self._table.handles
        self._lock = threading.RLock()
        self._disabled = _configure.Disabled(self.config_store, self.group)
        if watch:
            self.watch()

    def __repr__(self) -> str:
        return f"<PluginManager {self.group!r}: {len(self._table.slots)} plugins>"

    @property
    def path(self) -> list[str] | None:
        """Where installed distributions are looked for; ``None`` means ``sys.path``."""
        path = self._table.path
        return None if path is None else list(path)

    @property
    def closed(self) -> bool:
        """Whether the manager was shut down."""
        return self._lifecycle.closed

    def __enter__(self) -> PluginManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # -- calls (no lock) ----------------------------------------------------

    def execute(self, name: str, data: Any = None) -> Any:
        """Call plugin ``name`` with ``data``, loading it first if needed.

        For a plugin whose ``execute`` is ``async def`` this returns an
        awaitable; :meth:`aexecute` awaits it for you.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: the plugin failed or was unloaded.
            ManagerClosedError: the manager was shut down.
            PluginError: loading it failed now (the error that failed it).
        """
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handle(name)
        return handle.execute(data)

    def get(self, name: str) -> PluginHandle[T]:
        """Return the handle of plugin ``name``, loading it and its dependencies first.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: the plugin failed earlier or was unloaded.
            ManagerClosedError: the manager was shut down.
            PluginError: loading it failed now (the error that failed it).
        """
        slot = self._table.slots.get(name)
        if slot is not None and slot.state is PluginState.ACTIVE:
            return slot.handle
        return self._ensure_active(name, _LOAD)

    # -- lifecycle (one at a time) -----------------------------------------

    def load(self, name: str) -> PluginHandle[T]:
        """Start plugin ``name`` and, first, every dependency it needs.

        A failed or unloaded plugin is tried again; an active one is left as it is.

        Raises:
            PluginNotFoundError: no such plugin.
            ManagerClosedError: the manager was shut down.
            PluginError: the plugin could not start; the same error is kept
                in :meth:`errors`. An ``async def setup`` is refused here:
                use :meth:`aload`.
        """
        return self._load(name, _LOAD)

    def load_all(self) -> Mapping[str, PluginState]:
        """Start every plugin that is not active nor disabled, in dependency order.

        Failures do not raise: they are in :meth:`states` and :meth:`errors`.

        Returns:
            The state of every plugin, as :meth:`states` would.

        Raises:
            ManagerClosedError: the manager was shut down.
        """
        return self._load_all(_LOAD_ALL)

    def unload(self, name: str, *, cascade: bool = False, timeout: float | None = None) -> None:
        """Tear plugin ``name`` down once the calls in flight on it have returned.

        New calls are refused with :class:`PluginNotActiveError` from the
        moment the unload starts; ``teardown`` runs after the last call in
        flight returns.

        Args:
            name: The plugin.
            cascade: Tear down the active plugins that depend on it first,
                dependents before their dependencies.
            timeout: How long to wait for calls in flight, in seconds; the
                manager's ``drain_timeout`` by default.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: the plugin is not active.
            DependentsActiveError: active plugins depend on it and
                ``cascade`` is false; nothing was torn down.
            PluginBusyError: calls were still running after ``timeout``;
                nothing was torn down.
        """
        self._unload(name, cascade, timeout, _UNLOAD)

    def shutdown(self, *, timeout: float | None = None) -> None:
        """Tear down every active plugin, dependents first, and close the manager.

        Waits for calls in flight as :meth:`unload` does. Once closed, the
        manager loads and runs nothing (:class:`ManagerClosedError`); a
        second shutdown does nothing.

        Raises:
            PluginBusyError: calls were still running after ``timeout``;
                nothing was torn down and the manager stays open.
            PluginError: a plugin has an ``async def teardown``; nothing was
                torn down: use :meth:`ashutdown`.
        """
        self._shutdown(timeout, _SHUTDOWN)

    def map(
        self, method: str, /, *args: Any, propagate: bool = False, **kwargs: Any
    ) -> dict[str, MapResult]:
        """Call ``method`` on every active plugin, loading them all first, in dependency order.

        ============================  ===========================================
        a plugin ...                  in the result
        ============================  ===========================================
        returns                       ``MapResult(name, value)``
        raises                        ``MapResult(name, error=exc)``; the others
                                      are still called (``propagate=True``:
                                      the exception is raised at once)
        has no such method            an error result (:class:`PluginError`)
        failed to load, is disabled   left out (see :meth:`errors`)
        ============================  ===========================================

        Each call counts in the plugin's metrics and is waited for by an
        unload, as :meth:`PluginHandle.call` is.

        Returns:
            The results by plugin name, in the order the plugins were called.
        """
        self.load_all()
        results: dict[str, MapResult] = {}
        for handle in self._active_handles():
            try:
                results[handle.name] = MapResult(handle.name, handle.call(method, *args, **kwargs))
            except Exception as exc:  # noqa: PERF203 - each plugin's error is its own result
                if propagate:
                    raise
                results[handle.name] = MapResult(handle.name, error=exc)
        return results

    def __iter__(self) -> Iterator[PluginHandle[T]]:
        """Load every plugin, then yield the handles of the active ones in dependency order."""
        self.load_all()
        return iter(self._active_handles())

    def _active_handles(self) -> list[PluginHandle[T]]:
        return [slot.handle for slot in list(self._lifecycle.started.values())]

    # -- reading (no lifecycle lock) ----------------------------------------

    def states(self) -> Mapping[str, PluginState]:
        """Every known plugin's state, by name (sorted); imports and changes nothing."""
        return self._table.states()

    def errors(self) -> Mapping[str, BaseException]:
        """The error that failed each failed plugin, by name (sorted).

        Where the plugin failed because of another exception (its ``setup``
        raised, a dependency failed), that exception is ``__cause__``.
        """
        return self._table.errors()

    def candidates(self) -> list[Candidate]:
        """Every plugin known, installed or registered, sorted by name; imports nothing.

        Module entry points not imported yet are listed under their entry
        point's name with ``kind="module"``: the plugins they register appear
        once they are imported (by :meth:`load_all`, or by asking for a
        plugin by a name not otherwise known).
        """
        disabled = self._disabled.names()
        return [
            evolve(c, enabled=c.name not in disabled) if c.name in disabled else c
            for c in self._table.listing(modules=True)
        ]

    def info(self, name: str) -> PluginInfo:
        """The :class:`PluginInfo` of plugin ``name``.

        Raises:
            PluginNotFoundError: no such plugin.
        """
        for candidate in self._table.listing(modules=False, only=name):
            return candidate.info
        with self._locked():
            return self._table.require(name).info

    def metrics(self, name: str | None = None) -> Any:
        """Call counts, errors, latency and timings: of every plugin, or of one.

        Returns:
            A mapping of plugin name to :class:`MetricsSnapshot`, or the
            snapshot of plugin ``name``. Snapshots are immutable.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginError: the manager was made with ``metrics=False``.
        """
        if self._metrics is None:
            raise PluginError("metrics are off for this manager (metrics=False)")
        if name is None:
            return self._metrics.snapshot()
        self.info(name)  # raises if there is no such plugin
        return self._metrics.plugin(name).snapshot()

    def plan(self) -> _resolve.Plan:
        """Import every plugin and decide, without setting any up, what would start.

        Active plugins are left out of the plan: they are started already.
        Plugins that cannot be imported are in its ``failures``.
        """
        with self._locked():
            return _start.plan(self._table)

    # -- configuration --------------------------------------------------------

    def config(self, name: str) -> Any:
        """The configuration plugin ``name`` runs with, or will load with.

        For an active plugin, what its ``setup`` or last ``configure`` got:
        an instance of its ``config_type``, or a read-only mapping. For any
        other, what the store holds, read now.

        Raises:
            PluginNotFoundError: no such plugin.
            ConfigError: the stored config cannot be read or validated.
        """
        with self._locked():
            slot = self._table.require(name)
            if slot.state is PluginState.ACTIVE:
                return slot.config
            if not self._table.materialize(slot):
                raise slot.refusal()
            return _configure.initial(slot, self.config_store)

    def configure(self, name: str, config: Mapping[str, Any]) -> None:
        """Validate, persist and apply a new configuration for plugin ``name``, or change nothing.

        The config is copied, validated into the plugin's ``config_type`` if
        it declares one, encoded, written to the store (when there is one) and
        then, for an active plugin, given to its ``configure`` method. If any
        step raises, the plugin, :meth:`config` and the file keep the old
        config, :class:`ConfigRejected` is published and :class:`ConfigError`
        is raised (a ``KeyboardInterrupt`` propagates as itself, after the
        same rollback). On success :class:`ConfigChanged` is published. A
        plugin that is not active gets the config on its next load. The
        plugin holds a read-only copy: changing ``config`` afterwards changes
        nothing.

        Raises:
            PluginNotFoundError: no such plugin.
            ConfigError: the config is invalid (naming the field), the plugin
                rejected it, or it cannot be saved.
        """
        self._configure(name, config, _CONFIGURE)

    def disable(self, name: str) -> None:
        """Keep plugin ``name`` from loading (persisted in the config store, if any).

        A disabled plugin is still listed; :meth:`load_all` skips it,
        :meth:`load` and calls refuse it, and plugins that require it fail.
        An active plugin is not torn down: :meth:`unload` it too to stop it.

        Raises:
            PluginNotFoundError: no such plugin.
            ConfigError: the state cannot be written.
        """
        self._set_disabled(name, True)

    def enable(self, name: str) -> None:
        """Let plugin ``name`` load again (this also repairs a corrupt disabled record).

        Raises:
            PluginNotFoundError: no such plugin.
            ConfigError: the state cannot be written.
        """
        self._set_disabled(name, False)

    def rescan(self) -> list[str]:
        """Find distributions installed or removed since the manager looked last.

        Active plugins are left as they are. Installed plugins that are not
        active are forgotten and found again, so a failed import is retried;
        the handles of plugins that are gone raise :class:`PluginNotFoundError`.

        Returns:
            The names of plugins and module entry points that are new.
        """
        with self._locked():
            importlib.invalidate_caches()
            self._gate.forget()
            before = {c.name for c in self._table.listing(modules=True)}
            self._table.drop_idle()
            return sorted({c.name for c in self._table.listing(modules=True)} - before)

    # -- internals ------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Run one lifecycle operation; its events reach handlers after the lock is released."""
        with self.events.deferred():
            if not self._lock.acquire(timeout=self.lock_timeout):
                raise ManagerBusyError(self.group, self._lifecycle.holder, self.lock_timeout)
            try:
                yield
            finally:
                self._lock.release()

    def _open(self) -> None:
        if self._lifecycle.closed:
            raise ManagerClosedError(self.group)

    def _load_lazily(self, name: str) -> PluginHandle:
        """What a call of a plugin that is not loaded does first."""
        return self._ensure_active(name, _EXECUTE)

    def _handle(self, name: str) -> PluginHandle:
        with self._locked():
            self._open()
            return self._table.require(name).handle

    def _ensure_active(self, name: str, invoke: Invoker) -> PluginHandle:
        with self._locked():
            self._open()
            slot = self._table.require(name)
            if slot.state is PluginState.DISCOVERED:
                return self._load(name, invoke)
            if slot.state is not PluginState.ACTIVE:
                raise slot.refusal()
            return slot.handle

    def _load(self, name: str, invoke: Invoker) -> PluginHandle:
        with self._locked():
            self._open()
            slot = self._table.require(name)
            disabled, broken = self._disabled.of({name})
            if name in broken:
                raise broken[name]
            if disabled:
                raise _configure.disabled_error(name, slot.state)
            if slot.state is not PluginState.ACTIVE:
                self._start([name], invoke)
            if slot.state is PluginState.FAILED and slot.error is not None:
                raise slot.error
            return slot.handle

    def _load_all(self, invoke: Invoker) -> Mapping[str, PluginState]:
        with self._locked():
            self._open()
            self._table.find_all()
            self._start(
                [n for n, s in self._table.slots.items() if s.state is not PluginState.ACTIVE],
                invoke,
            )
            return self.states()

    def _start(self, names: list[str], invoke: Invoker) -> None:
        _start.start(names, self._table, self._lifecycle, self._disabled, self.config_store, invoke)

    def _unload(self, name: str, cascade: bool, timeout: float | None, invoke: Invoker) -> None:
        with self._locked():
            slot = self._table.require(name)
            if slot.state is not PluginState.ACTIVE:
                raise slot.refusal()
            dependents = self._lifecycle.dependents(name)
            ordered = [
                s for s in reversed(self._lifecycle.started.values()) if s.name in dependents
            ]
            if ordered and not cascade:
                raise DependentsActiveError(name, [s.name for s in ordered])
            victims = [*ordered, slot]
            self._lifecycle.check_teardown(victims, invoke)
            self._lifecycle.drain(victims, self.drain_timeout if timeout is None else timeout)
            self._lifecycle.teardown(victims, invoke)

    def _shutdown(self, timeout: float | None, invoke: Invoker) -> None:
        self._stop_watching()  # before the lock: a reload it is running finishes first
        with self._locked():
            if self._lifecycle.closed:
                return
            victims = list(reversed(self._lifecycle.started.values()))
            self._lifecycle.check_teardown(victims, invoke)
            self._lifecycle.drain(victims, self.drain_timeout if timeout is None else timeout)
            self._lifecycle.closed = True
            try:
                self._lifecycle.teardown(victims, invoke)
            finally:
                self._table.close_sandbox()

    def _set_disabled(self, name: str, disabled: bool) -> None:
        with self._locked():
            self._table.require(name)
            self._disabled.set(name, disabled)

    def _configure(self, name: str, config: Mapping[str, Any], invoke: Invoker) -> None:
        with self._locked():
            slot = self._table.require(name)
            if not self._table.materialize(slot):
                raise slot.refusal()
            _configure.transaction(slot, config, self.config_store, self._lifecycle, invoke)


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
