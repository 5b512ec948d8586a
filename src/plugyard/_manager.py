"""The plugin manager: the lifecycle of every plugin of one group."""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, cast

import attrs
from packaging.version import InvalidVersion, Version

from . import _discovery, _resolve
from ._configstore import ConfigStore, unstructure, validate
from ._discovery import EntryPoint
from ._events import (
    ConfigChanged,
    ConfigRejected,
    EventBus,
    PluginActivated,
    PluginDiscovered,
    PluginFailed,
    PluginLoaded,
    PluginUnloaded,
    SignatureRejected,
)
from ._metrics import GroupMetrics
from ._model import FunctionPlugin, PluginContext, PluginInfo, PluginState, check_name
from ._policy import Gate, TrustPolicy
from ._registry import Registry, get_registry, info_for
from .exceptions import (
    ConfigError,
    DependencyFailedError,
    DependentsActiveError,
    InvalidPluginError,
    PluginConflictError,
    PluginError,
    PluginLoadError,
    PluginNotActiveError,
    PluginNotFoundError,
    PluginSetupError,
    SignatureError,
)

log = logging.getLogger("plugyard")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class PluginHandle:
    """What callers hold to use one plugin; the same object for the manager's life.

    ``handle.execute(data)`` calls the plugin's ``execute``. The attribute is
    replaced as the plugin changes state rather than checked on each call:
    before the first use it loads the plugin; while active it is the
    plugin's own bound method (wrapped by the metrics counter unless the
    manager was made with ``metrics=False``); once failed or unloaded it
    raises :class:`PluginNotActiveError`.

    Attributes:
        name: The plugin's name.
        execute: Call the plugin with one argument (``None`` by default).
    """

    __module__ = "plugyard"
    __slots__ = ("_manager", "execute", "name")

    execute: Callable[..., Any]

    def __init__(self, manager: PluginManager, name: str) -> None:
        self._manager = manager
        self.name = name

    @property
    def state(self) -> PluginState:
        """The plugin's current state."""
        return self._manager._records[self.name].state

    @property
    def info(self) -> PluginInfo:
        """The plugin's :class:`PluginInfo`."""
        return self._manager._records[self.name].info

    @property
    def instance(self) -> Any:
        """The plugin's active instance.

        Raises:
            PluginNotActiveError: the plugin is not active.
        """
        record = self._manager._records[self.name]
        if record.state is not PluginState.ACTIVE:
            raise _not_active(record)
        return record.instance

    def __repr__(self) -> str:
        return f"<PluginHandle {self.name!r} {self.state}>"


@attrs.frozen
class Candidate:
    """A plugin as listed, before anything of it is imported.

    Attributes:
        name: The plugin's name (for a module entry point, the entry point's).
        group: Its group.
        version: Its version (an installed plugin's is its distribution's).
        distribution: The installed distribution providing it, or ``None``
            for a plugin registered in code.
        value: The entry point's value (``module:object`` or ``module``), or
            the ``module:qualname`` of a plugin registered in code.
        kind: ``"entry point"`` (a class or function), ``"module"`` (an entry
            point whose import registers plugins) or ``"registered"`` (in code).
        state: Its state in the manager.
        enabled: ``False`` when it was disabled with :meth:`PluginManager.disable`.
    """

    __module__ = "plugyard"

    name: str
    group: str
    version: str
    distribution: str | None
    value: str
    kind: str
    state: PluginState
    enabled: bool = True


class _Record:
    """The manager's mutable entry for one plugin, changed only under its lock."""

    __slots__ = (
        "config",
        "entry_point",
        "error",
        "handle",
        "imported",
        "info",
        "instance",
        "provider",
        "state",
        "target",
    )

    def __init__(
        self,
        info: PluginInfo,
        target: object,
        handle: PluginHandle,
        entry_point: EntryPoint | None = None,
    ) -> None:
        self.info = info
        self.target = target
        self.handle = handle
        self.entry_point = entry_point
        # False until the entry point's object is imported and checked.
        self.imported = entry_point is None
        # A module entry point that failed to import: listed, never started.
        self.provider = False
        self.state = PluginState.DISCOVERED
        self.instance: Any = None
        self.error: BaseException | None = None
        # The config the active instance runs with: its config_type's instance, or a mapping.
        self.config: Any = _EMPTY


def _not_active(record: _Record) -> PluginNotActiveError:
    name = record.info.name
    if record.state is PluginState.FAILED:
        error = PluginNotActiveError(
            f"plugin {name!r} failed: {record.error}", plugin=name, state=record.state.value
        )
        error.__cause__ = record.error
        return error
    return PluginNotActiveError(
        f"plugin {name!r} is {record.state.value}; call load({name!r}) to start it",
        plugin=name,
        state=record.state.value,
    )


class PluginManager:
    """Loads, runs and unloads the plugins of one group, dependencies first.

    Plugins are loaded lazily: on first :meth:`get` or :meth:`execute`, or all
    at once by :meth:`load_all`. A plugin that fails (a missing dependency, a
    version out of range, a cycle, an exception in its ``setup``) fails alone
    with its dependents; everything else still loads.

    Calls (:meth:`execute`, handles) take no lock. Lifecycle operations
    (load, unload, shutdown) are serialized. A manager is a context manager
    that shuts down on exit.

    Plugins come from two sources in one namespace: the registry (plugins
    registered in code) and the entry points of the installed distributions
    in the group. An entry point names a class or function (the entry
    point's name is the plugin's name) or a module whose import registers
    plugins with :func:`register`. Listing (:meth:`candidates`,
    :meth:`states`) imports nothing.

    Args:
        registry: The registry to load from; by default the process-wide
            registry of ``group``.
        group: The group, when no registry is given.
        entry_points: Whether to find installed plugins through the entry
            points of the group.
        path: Where to look for installed distributions; ``sys.path`` by default.
        trust: Which installed plugins must be signed; nothing is verified by
            default. See :class:`TrustPolicy`.
        config: A directory (or :class:`ConfigStore`) holding each plugin's
            configuration and which plugins are disabled; without one,
            plugins get empty configurations and nothing is persisted.
        events: The bus lifecycle events are published on; a new one by default.
        metrics: Whether to count calls, errors and latency of each plugin.

    Raises:
        ValueError: neither ``registry`` nor ``group`` is given, or both are
            and they disagree.
    """

    __module__ = "plugyard"

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        group: str | None = None,
        entry_points: bool = True,
        path: Sequence[str] | None = None,
        trust: TrustPolicy | None = None,
        config: ConfigStore | str | os.PathLike[str] | None = None,
        events: EventBus | None = None,
        metrics: bool = True,
    ) -> None:
        if registry is None:
            if group is None:
                raise ValueError("PluginManager needs a registry or a group")
            registry = get_registry(group)
        elif group is not None and group != registry.group:
            raise ValueError(f"group {group!r} differs from the registry's {registry.group!r}")
        self.registry = registry
        self.group = registry.group
        self._lock = threading.RLock()
        self._records: dict[str, _Record] = {}
        # Replaced whole when a plugin is added, so execute() reads it unlocked.
        self._handles: dict[str, PluginHandle] = {}
        # Active plugins in the order they were set up; torn down in reverse.
        self._started: list[str] = []
        self._use_entry_points = entry_points
        self.trust = trust or TrustPolicy()
        self.events = events if events is not None else EventBus()
        self.config_store = (
            config if isinstance(config, ConfigStore) or config is None else ConfigStore(config)
        )
        self._metrics = GroupMetrics(self.group) if metrics else None
        # Disabled plugins when there is no store to persist them in.
        self._disabled: set[str] = set()
        self._gate = Gate(self.trust, self.group)
        self._path = None if path is None else list(path)
        self._by_name: dict[str, list[EntryPoint]] | None = None
        # Module entry points found, and those not imported yet.
        self._module_eps: list[EntryPoint] = []
        self._providers: list[EntryPoint] = []
        # Handles of records a rescan dropped, given back if the name returns.
        self._spare_handles: dict[str, PluginHandle] = {}

    def __repr__(self) -> str:
        return f"<PluginManager {self.group!r}: {len(self._records)} plugins>"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize a lifecycle operation; its events reach handlers after the lock is released."""
        with self.events.deferred(), self._lock:
            yield

    def __enter__(self) -> PluginManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- calls (no lock) ----------------------------------------------------

    def execute(self, name: str, data: Any = None) -> Any:
        """Call plugin ``name`` with ``data``, loading it first if needed.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: the plugin failed or was unloaded.
            PluginError: loading it failed now (the error that failed it).
        """
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handle(name)
        return handle.execute(data)

    def get(self, name: str) -> PluginHandle:
        """Return the handle of plugin ``name``, loading it and its dependencies first.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: the plugin failed earlier or was unloaded.
            PluginError: loading it failed now (the error that failed it).
        """
        record = self._records.get(name)
        if record is not None and record.state is PluginState.ACTIVE:
            return record.handle
        return self._ensure_active(name)

    # -- lifecycle (serialized) --------------------------------------------

    def load(self, name: str) -> PluginHandle:
        """Start plugin ``name`` and, first, every dependency it needs.

        A failed or unloaded plugin is tried again; an active one is left as it is.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginError: the plugin could not start; the same error is kept
                in :meth:`errors`.
        """
        with self._locked():
            record = self._record(name)
            disabled = self._disabled_names()
            if name in disabled:
                raise _disabled_error(name, record.state)
            if record.state is not PluginState.ACTIVE:
                self._start([name], disabled)
            if record.state is PluginState.FAILED and record.error is not None:
                raise record.error
            return record.handle

    def load_all(self) -> Mapping[str, PluginState]:
        """Start every plugin that is not active nor disabled, in dependency order.

        Failures do not raise: they are in :meth:`states` and :meth:`errors`.

        Returns:
            The state of every plugin, as :meth:`states` would.
        """
        with self._locked():
            self._sync()  # so that plugins registered since are started too
            if self._providers:
                self._import_providers()
            disabled = self._disabled_names()
            self._start(
                [
                    name
                    for name, record in self._records.items()
                    if record.state is not PluginState.ACTIVE and name not in disabled
                ],
                disabled,
            )
            return self.states()

    def unload(self, name: str, *, cascade: bool = False) -> None:
        """Tear plugin ``name`` down.

        Args:
            name: The plugin.
            cascade: Tear down the active plugins that depend on it first,
                dependents before their dependencies.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: the plugin is not active.
            DependentsActiveError: active plugins depend on it and
                ``cascade`` is false; nothing was torn down.
        """
        with self._locked():
            record = self._record(name)
            if record.state is not PluginState.ACTIVE:
                raise _not_active(record)
            dependents = self._dependents(name)
            ordered = [n for n in reversed(self._started) if n in dependents]
            if ordered and not cascade:
                raise DependentsActiveError(name, ordered)
            for each in [*ordered, name]:
                self._teardown(self._records[each])

    def shutdown(self) -> None:
        """Tear down every active plugin, dependents before their dependencies."""
        with self._locked():
            for name in reversed(list(self._started)):
                self._teardown(self._records[name])

    def states(self) -> Mapping[str, PluginState]:
        """Every known plugin's state, by name (sorted)."""
        with self._locked():
            self._sync()
            return {name: self._records[name].state for name in sorted(self._records)}

    def errors(self) -> Mapping[str, BaseException]:
        """The error that failed each failed plugin, by name (sorted).

        Where the plugin failed because of another exception (its ``setup``
        raised, a dependency failed), that exception is ``__cause__``.
        """
        with self._locked():
            return {
                name: record.error
                for name, record in sorted(self._records.items())
                if record.state is PluginState.FAILED and record.error is not None
            }

    def plan(self) -> _resolve.Plan:
        """Import every plugin and decide, without setting any up, what would start.

        Active plugins are left out of the plan: they are started already.
        Plugins that cannot be imported are in its ``failures``.
        """
        with self._locked():
            self._sync()
            if self._providers:
                self._import_providers()
            records = self._records
            todo = self._closure(
                [n for n, r in records.items() if r.state is not PluginState.ACTIVE]
            )
            failures: dict[str, PluginError] = {}
            startable = {}
            for name in todo:
                record = records[name]
                if record.target is None:
                    failures[name] = cast("PluginError", record.error)
                else:
                    startable[name] = record.info
            planned = _resolve.plan(
                startable,
                {name: r.info for name, r in records.items() if not r.provider},
                failures,
            )
            return attrs.evolve(planned, failures={**failures, **planned.failures})

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
        with self._locked():
            self._record(name)
        return self._metrics.plugin(name).snapshot()

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
            record = self._record(name)
            if record.state is PluginState.ACTIVE:
                return record.config
            if record.target is None and not self._materialize(record):
                raise _not_active(record)
            return self._initial_config(record)

    def configure(self, name: str, config: Mapping[str, Any]) -> None:
        """Validate, apply and persist a new configuration for plugin ``name``.

        The config is validated into the plugin's ``config_type`` if it
        declares one. For an active plugin it is then given to the plugin's
        ``configure`` method; if that raises, the plugin keeps its old config,
        in memory and on disk, :class:`ConfigRejected` is published and
        :class:`ConfigError` is raised. On success the config is saved to the
        store (when there is one) and :class:`ConfigChanged` is published. A
        plugin that is not active gets it on its next load.

        Raises:
            PluginNotFoundError: no such plugin.
            ConfigError: the config is invalid (naming the field), the plugin
                rejected it, or it cannot be saved.
        """
        with self._locked():
            record = self._record(name)
            if record.target is None and not self._materialize(record):
                raise _not_active(record)
            config_type = getattr(record.target, "config_type", None)
            try:
                new: Any = (
                    validate(config_type, config, plugin=name)
                    if config_type is not None
                    else MappingProxyType(dict(config))
                )
            except ConfigError as invalid:
                self._emit(ConfigRejected, record, config=dict(config), error=invalid)
                raise
            old = record.config if record.state is PluginState.ACTIVE else None
            apply = getattr(record.instance, "configure", None)
            if apply is not None:
                try:
                    apply(new)
                except Exception as exc:
                    rejected = ConfigError(f"the plugin rejected it: {exc}", plugin=name)
                    rejected.__cause__ = exc
                    self._emit(ConfigRejected, record, config=dict(config), error=rejected)
                    raise rejected from exc
            try:
                if self.config_store is not None:
                    self.config_store.save(self.group, name, _plain(new))
            except ConfigError:
                if apply is not None and old is not None:
                    apply(old)  # the new config was not kept: back to the old one
                raise
            if record.state is PluginState.ACTIVE:
                record.config = new
            self._emit(ConfigChanged, record, old=_plain(old or {}), new=_plain(new))

    def disable(self, name: str) -> None:
        """Keep plugin ``name`` from loading (persisted in the config store, if any).

        A disabled plugin is still listed; :meth:`load_all` skips it,
        :meth:`load` and calls refuse it, and plugins that require it fail.
        An active plugin is not torn down: :meth:`unload` it too to stop it.

        Raises:
            PluginNotFoundError: no such plugin.
        """
        self._set_disabled(name, True)

    def enable(self, name: str) -> None:
        """Let plugin ``name`` load again.

        Raises:
            PluginNotFoundError: no such plugin.
        """
        self._set_disabled(name, False)

    def _set_disabled(self, name: str, disabled: bool) -> None:
        with self._locked():
            self._record(name)
            if self.config_store is not None:
                self.config_store.set_disabled(self.group, name, disabled)
            elif disabled:
                self._disabled.add(name)
            else:
                self._disabled.discard(name)

    def _disabled_names(self) -> frozenset[str]:
        if self.config_store is not None:
            return self.config_store.disabled(self.group)
        return frozenset(self._disabled)

    def candidates(self) -> list[Candidate]:
        """Every plugin known, installed or registered, sorted by name; imports nothing.

        Module entry points not imported yet are listed under their entry
        point's name with ``kind="module"``: the plugins they register appear
        once they are imported (by :meth:`load_all`, or by asking for a
        plugin by a name not otherwise known).
        """
        with self._locked():
            self._sync_registry()
            disabled = self._disabled_names()
            # Installed plugins without a record yet are listed from the index
            # alone: listing a thousand plugins must not build a thousand records.
            for name, eps in self._index().items():
                if name not in self._records and self._entry_point_error(name, eps) is not None:
                    self._find(name)  # fails it, with the reason
            listed = [
                attrs.evolve(_candidate(record), enabled=name not in disabled)
                for name, record in self._records.items()
            ]
            listed += [
                Candidate(
                    name=name,
                    group=self.group,
                    version=eps[0].version,
                    distribution=eps[0].distribution,
                    value=eps[0].value,
                    kind="entry point",
                    state=PluginState.DISCOVERED,
                    enabled=name not in disabled,
                )
                for name, eps in self._index().items()
                if name not in self._records
            ]
            listed += [
                Candidate(
                    name=ep.name,
                    group=self.group,
                    version=ep.version,
                    distribution=ep.distribution,
                    value=ep.value,
                    kind="module",
                    state=PluginState.DISCOVERED,
                )
                for ep in self._providers
            ]
            return sorted(listed, key=lambda c: (c.name, c.kind))

    def rescan(self) -> list[str]:
        """Find distributions installed or removed since the manager looked last.

        Active plugins are left as they are. Installed plugins that are not
        active are forgotten and found again, so a failed import is retried.

        Returns:
            The names of plugins and module entry points that are new.
        """
        with self._locked():
            importlib.invalidate_caches()
            self._gate.forget()
            before = {c.name for c in self.candidates()}
            for name, record in list(self._records.items()):
                if record.entry_point is not None and record.state in (
                    PluginState.DISCOVERED,
                    PluginState.FAILED,
                    PluginState.UNLOADED,
                ):
                    del self._records[name]
                    self._spare_handles[name] = record.handle
            self._providers = []
            self._by_name = None
            self._sync()
            self._publish_handles()  # records a rescan dropped are gone from it too
            return sorted({c.name for c in self.candidates()} - before)

    def info(self, name: str) -> PluginInfo:
        """The :class:`PluginInfo` of plugin ``name``.

        Raises:
            PluginNotFoundError: no such plugin.
        """
        with self._locked():
            return self._record(name).info

    # -- internals (call with the lock held) -------------------------------

    def _index(self) -> dict[str, list[EntryPoint]]:
        """The group's class and function entry points by name; read once per scan."""
        if self._by_name is None:
            found = (
                _discovery.entry_points(self.group, self._path) if self._use_entry_points else []
            )
            self._module_eps = [ep for ep in found if ep.attr is None]
            # Modules imported already have registered their plugins.
            self._providers = [ep for ep in self._module_eps if ep.module not in sys.modules]
            by_name: dict[str, list[EntryPoint]] = {}
            for ep in found:
                if ep.attr is not None:
                    by_name.setdefault(ep.name, []).append(ep)
            self._by_name = by_name
        return self._by_name

    def _sync(self) -> None:
        """Give every installed and every registered plugin a record."""
        if [self._add_entry_point(n) for n in self._index() if n not in self._records]:
            self._publish_handles()
        self._sync_registry()

    def _publish_handles(self) -> None:
        """Replace the handle mapping ``execute`` reads without a lock."""
        self._handles = {name: r.handle for name, r in self._records.items()}

    def _find(self, name: str) -> _Record | None:
        """The record of ``name``, made now if it is an installed or registered plugin.

        Only that plugin's record is made: a first call among many installed
        plugins does not pay for the others.
        """
        record = self._records.get(name)
        if record is None:
            if name in self._index():
                record = self._add_entry_point(name)
                self._handles = {**self._handles, name: record.handle}
            else:
                self._sync_registry()
            record = self._records.get(name)
            if record is None and self._providers:
                self._import_providers()
                record = self._records.get(name)
        return record

    def _sync_registry(self) -> None:
        """Bring the records in line with the registry, publishing new handles."""
        added = False
        registry = self.registry
        for info in registry:
            target = registry.target(info.name)
            record = self._records.get(info.name)
            if record is None:
                record = _Record(info, target, self._new_handle(info.name))
                self._records[info.name] = record
                self._emit(PluginDiscovered, record)
                added = True
            elif record.entry_point is not None or record.state is PluginState.ACTIVE:
                continue  # an installed plugin is reconciled when it is imported
            elif record.target is target:
                continue
            else:
                # Re-registered (replace=True or a re-imported module): use the new one.
                record.info, record.target = info, target
            provider = self._provider_of(info)
            if provider is not None:
                try:
                    self._bind(record, target, info, provider)
                except PluginError as error:
                    record.target = None  # never starts; the next sync tries again
                    self._fail(record, error)
                    continue
            self._set_call(record)
        if added:
            self._publish_handles()

    def _entry_point_error(self, name: str, eps: list[EntryPoint]) -> PluginError | None:
        """Why the entry points of ``name`` cannot become a plugin, found without importing."""
        dists = sorted({f"{e.distribution} {e.version}" for e in eps})
        if len(dists) > 1:
            return PluginConflictError(name, self.group, dists)
        try:
            check_name(name)
        except InvalidPluginError as exc:
            return _load_error(eps[0], str(exc))
        if _version(eps[0].version) is None:
            return _load_error(eps[0], f"its distribution's version {eps[0].version!r} is invalid")
        return None

    def _add_entry_point(self, name: str) -> _Record:
        """Make the record of an installed plugin (the caller publishes its handle)."""
        eps = self._index()[name]
        ep = eps[0]
        info = PluginInfo(
            name=name,
            group=self.group,
            version=_version(ep.version) or _ZERO,
            origin=ep.value,
            distribution=ep.distribution,
        )
        record = _Record(info, None, self._new_handle(name), ep)
        self._records[name] = record
        self._emit(PluginDiscovered, record)
        error = self._entry_point_error(name, eps)
        if error is not None:
            record.imported = True
            self._fail(record, error)
        else:
            self._set_call(record)
        return record

    def _import_providers(self) -> None:
        """Import the module entry points, whose import registers plugins."""
        pending, self._providers = self._providers, []
        for ep in pending:
            error = self._gate.check(ep.name, ep.distribution, ep.path) or _import_module(ep)
            if error is not None:
                record = _Record(
                    PluginInfo(ep.name, self.group, _ZERO, origin=ep.value),
                    None,
                    self._new_handle(ep.name),
                    ep,
                )
                record.imported = record.provider = True
                self._records.setdefault(ep.name, record)
                self._fail(self._records[ep.name], error)
                log.warning("%s", error)
        self._sync_registry()
        self._publish_handles()  # failed providers are listed too

    def _provider_of(self, info: PluginInfo) -> EntryPoint | None:
        """The module entry point whose module (or a submodule) registered ``info``."""
        module = info.origin.partition(":")[0]
        for ep in self._module_eps:
            if module == ep.module or module.startswith(ep.module + "."):
                return ep
        return None

    def _materialize(self, record: _Record) -> bool:
        """Import an entry point's object and learn its dependencies; False if it failed."""
        ep = record.entry_point
        if record.imported or ep is None:
            return record.target is not None
        try:
            refused = self._gate.check(record.info.name, ep.distribution, ep.path)
            if refused is not None:
                raise refused
            started = time.perf_counter()
            target = _import_object(ep)
            if self._metrics is not None:
                self._metrics.plugin(record.info.name).record_import(time.perf_counter() - started)
        except (PluginLoadError, SignatureError) as error:
            record.imported = True
            self._fail(record, error)
            log.warning("%s", error)
            return False
        record.imported = True
        registered = self.registry.find(target)
        name = record.info.name
        try:
            if name in self.registry and self.registry.target(name) is not target:
                raise PluginConflictError(
                    name,
                    self.group,
                    [f"{ep.distribution} {ep.version}", self.registry.info(name).origin],
                )
            if registered is None:
                registered = info_for(
                    target,
                    group=self.group,
                    name=name,
                    version=None,
                    depends_on=None,
                    optional_depends_on=None,
                )
            elif registered.name != name:
                raise _load_error(
                    ep,
                    f"the object is registered as {registered.name!r}; an entry point's "
                    "name must be the plugin's name",
                )
            self._bind(record, target, registered, ep)
        except PluginError as error:
            self._fail(record, error)
            return False
        return True

    def _bind(self, record: _Record, target: object, info: PluginInfo, ep: EntryPoint) -> None:
        """Make ``info`` the record's, with the distribution's name and version."""
        version = _version(ep.version) or _ZERO
        if info.version != _ZERO and info.version != version:
            raise _load_error(
                ep,
                f"the plugin declares version {info.version}, but its distribution is "
                f"{ep.distribution} {ep.version}; drop version= from register()",
            )
        record.info = attrs.evolve(info, version=version, distribution=ep.distribution)
        record.target = target

    def _new_handle(self, name: str) -> PluginHandle:
        return self._spare_handles.pop(name, None) or PluginHandle(self, name)

    def _record(self, name: str) -> _Record:
        record = self._find(name)
        if record is None:
            raise PluginNotFoundError(name, self.group)
        return record

    def _handle(self, name: str) -> PluginHandle:
        with self._locked():
            return self._record(name).handle

    def _ensure_active(self, name: str) -> PluginHandle:
        with self._locked():
            record = self._record(name)
            if record.state is PluginState.DISCOVERED:
                return self.load(name)
            if record.state is not PluginState.ACTIVE:
                raise _not_active(record)
            return record.handle

    def _set_call(self, record: _Record) -> None:
        """Point the handle's ``execute`` at what a call should do in this state."""
        name = record.info.name
        if record.state is PluginState.ACTIVE:
            method = getattr(record.instance, "execute", None)
            if method is None:
                method = _no_execute(name)
            elif self._metrics is not None:
                method = self._metrics.plugin(name).wrap_unary(method)
            record.handle.execute = method
        elif record.state is PluginState.DISCOVERED:

            def load_then_call(data: Any = None) -> Any:
                return self._ensure_active(name).execute(data)

            record.handle.execute = load_then_call
        else:

            def refuse(data: Any = None) -> Any:
                raise _not_active(self._records[name])

            record.handle.execute = refuse

    def _closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and every dependency they reach that is not active, imported."""
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            record = self._find(name)
            if name in seen or record is None or record.state is PluginState.ACTIVE:
                continue
            seen.add(name)
            if record.provider:
                continue
            if self._materialize(record):
                stack.extend(dep.name for dep in record.info.depends_on)
        return seen

    def _start(self, names: Iterable[str], disabled: frozenset[str]) -> None:
        self._sync_registry()
        records = self._records
        # A record without a target never starts: its import failed, or it
        # conflicts; it stays failed and fails its dependents. A disabled
        # plugin keeps its state and fails the plugins that require it.
        closure = self._closure(names)
        todo = {n for n in closure if records[n].target is not None and n not in disabled}
        failed: dict[str, BaseException] = {
            name: record.error
            for name, record in records.items()
            if name not in todo and record.state is PluginState.FAILED and record.error
        }
        failed.update({n: _disabled_error(n, records[n].state) for n in closure & disabled})
        plan = _resolve.plan(
            {name: records[name].info for name in todo},
            {name: record.info for name, record in records.items() if not record.provider},
            failed,
        )
        for name, error in plan.failures.items():
            self._fail(records[name], error)
        for name in plan.order:
            self._setup(records[name])

    def _setup(self, record: _Record) -> None:
        info = record.info
        deps: dict[str, Any] = {}
        for dep in info.depends_on:
            other = self._records.get(dep.name)
            if other is not None and other.state is PluginState.ACTIVE:
                deps[dep.name] = other.instance
            elif not dep.optional:
                # It was in the plan but failed in its own setup just now.
                error = DependencyFailedError(
                    info.name, dep.name, other.error if other is not None else None
                )
                self._fail(record, error)
                return
        try:
            config = self._initial_config(record)
        except ConfigError as error:
            self._fail(record, error)
            return
        try:
            target = record.target
            if inspect.isclass(target):
                record.instance = target()
            else:
                record.instance = FunctionPlugin(cast("Callable[..., Any]", target))
            record.state = PluginState.LOADED
            self._emit(PluginLoaded, record)
            setup = getattr(record.instance, "setup", None)
            if setup is not None:
                started = time.perf_counter()
                setup(PluginContext(info, MappingProxyType(deps), config))
                if self._metrics is not None:
                    self._metrics.plugin(info.name).record_setup(time.perf_counter() - started)
        except Exception as exc:
            failure = PluginSetupError(info.name, exc)
            failure.__cause__ = exc
            record.instance = None
            self._fail(record, failure)
            log.warning("%s", failure)
            return
        record.state = PluginState.ACTIVE
        record.error = None
        record.config = config
        self._started.append(info.name)
        self._set_call(record)
        self._emit(PluginActivated, record)

    def _initial_config(self, record: _Record) -> Any:
        """The plugin's stored config, validated into its ``config_type`` if it has one."""
        name = record.info.name
        store = self.config_store
        raw = store.load(self.group, name) if store is not None else {}
        config_type = getattr(record.target, "config_type", None)
        if config_type is None:
            return MappingProxyType(raw)
        return validate(config_type, raw, plugin=name)

    def _fail(self, record: _Record, error: PluginError) -> None:
        record.state = PluginState.FAILED
        record.error = error
        self._set_call(record)
        if self._metrics is not None:
            self._metrics.plugin(record.info.name).record_error(error)
        self._emit(PluginFailed, record, error=error)
        if isinstance(error, SignatureError):
            self._emit(
                SignatureRejected,
                record,
                distribution=error.distribution,
                problems=tuple(f"{p.kind}: {p}" for p in error.problems),
            )

    def _emit(self, event: type[Any], record: _Record, **fields: Any) -> None:
        if self.events.has_subscribers(event):
            info = record.info
            self.events.publish(event(info.name, self.group, str(info.version), **fields))

    def _teardown(self, record: _Record) -> None:
        name = record.info.name
        record.state = PluginState.UNLOADED
        self._set_call(record)
        self._started.remove(name)
        instance, record.instance = record.instance, None
        teardown = getattr(instance, "teardown", None)
        if teardown is not None:
            try:
                teardown()
            except Exception:
                log.exception("plugin %r raised in teardown(); it is unloaded anyway", name)
        self._emit(PluginUnloaded, record)

    def _dependents(self, name: str) -> set[str]:
        """Active plugins that depend on ``name``, directly or not."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {
                other
                for other in self._started
                if other not in found
                and any(d.name in frontier for d in self._records[other].info.depends_on)
            }
            found |= frontier
        return found


_ZERO = Version("0")


@functools.lru_cache(maxsize=4096)
def _version(text: str) -> Version | None:
    """A distribution's version, parsed once per distinct string; None if invalid."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _plain(config: Any) -> dict[str, Any]:
    """A config as a plain dict, for storage and events."""
    if isinstance(config, Mapping):
        return dict(config)
    return unstructure(config)


def _disabled_error(name: str, state: PluginState) -> PluginNotActiveError:
    return PluginNotActiveError(
        f"plugin {name!r} is disabled; enable({name!r}) to load it",
        plugin=name,
        state=state.value,
    )


def _candidate(record: _Record) -> Candidate:
    info, ep = record.info, record.entry_point
    if ep is not None:
        kind, value = ("module" if record.provider else "entry point"), ep.value
    else:
        kind, value = "registered", info.origin
    return Candidate(
        name=info.name,
        group=info.group,
        version=str(info.version),
        distribution=info.distribution,
        value=value,
        kind=kind,
        state=record.state,
    )


def _load_error(ep: EntryPoint, reason: str) -> PluginLoadError:
    return PluginLoadError(
        ep.name, f"{ep.name} = {ep.value}", f"{ep.distribution} {ep.version}", reason
    )


def _import_module(ep: EntryPoint) -> PluginLoadError | None:
    """Import a module entry point's module; the error if that failed."""
    try:
        importlib.import_module(ep.module)
    except Exception as exc:
        error = _load_error(ep, f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
    return None


def _import_object(ep: EntryPoint) -> object:
    """Import what an entry point names, wrapping every failure in PluginLoadError."""
    try:
        obj: object = importlib.import_module(ep.module)
        for part in (ep.attr or "").split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        error = _load_error(ep, f"{type(exc).__name__}: {exc}")
        raise error from exc
    if not callable(obj):
        raise _load_error(ep, f"it names a {type(obj).__name__}, not a class or function")
    return obj


def _no_execute(name: str) -> Callable[..., Any]:
    def refuse(data: Any = None) -> Any:
        raise PluginError(f"plugin {name!r} has no execute() method", plugin=name)

    return refuse
