"""The plugin manager: the lifecycle of every plugin of one group."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, cast

from . import _resolve
from ._model import FunctionPlugin, PluginContext, PluginInfo, PluginState
from ._registry import Registry, get_registry
from .exceptions import (
    DependencyFailedError,
    DependentsActiveError,
    PluginError,
    PluginNotActiveError,
    PluginNotFoundError,
    PluginSetupError,
)

log = logging.getLogger("plugyard")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class PluginHandle:
    """What callers hold to use one plugin; the same object for the manager's life.

    ``handle.execute(data)`` calls the plugin's ``execute``. The attribute is
    replaced as the plugin changes state, so a call costs no more than a
    call of the plugin's own method: before the first use it loads the
    plugin, once failed or unloaded it raises :class:`PluginNotActiveError`.

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


class _Record:
    """The manager's mutable entry for one plugin, changed only under its lock."""

    __slots__ = ("error", "handle", "info", "instance", "state", "target")

    def __init__(self, info: PluginInfo, target: object, handle: PluginHandle) -> None:
        self.info = info
        self.target = target
        self.handle = handle
        self.state = PluginState.DISCOVERED
        self.instance: Any = None
        self.error: BaseException | None = None


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

    Args:
        registry: The registry to load from; by default the process-wide
            registry of ``group``.
        group: The group, when no registry is given.

    Raises:
        ValueError: neither ``registry`` nor ``group`` is given, or both are
            and they disagree.
    """

    __module__ = "plugyard"

    def __init__(self, registry: Registry | None = None, *, group: str | None = None) -> None:
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

    def __repr__(self) -> str:
        return f"<PluginManager {self.group!r}: {len(self._records)} plugins>"

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
        with self._lock:
            record = self._record(name)
            if record.state is not PluginState.ACTIVE:
                self._start([name])
            if record.state is PluginState.FAILED:
                assert record.error is not None
                raise record.error
            return record.handle

    def load_all(self) -> Mapping[str, PluginState]:
        """Start every plugin that is not active, in dependency order.

        Failures do not raise: they are in :meth:`states` and :meth:`errors`.

        Returns:
            The state of every plugin, as :meth:`states` would.
        """
        with self._lock:
            self._sync()
            self._start([n for n, r in self._records.items() if r.state is not PluginState.ACTIVE])
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
        with self._lock:
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
        with self._lock:
            for name in reversed(list(self._started)):
                self._teardown(self._records[name])

    def states(self) -> Mapping[str, PluginState]:
        """Every known plugin's state, by name (sorted)."""
        with self._lock:
            self._sync()
            return {name: self._records[name].state for name in sorted(self._records)}

    def errors(self) -> Mapping[str, BaseException]:
        """The error that failed each failed plugin, by name (sorted).

        Where the plugin failed because of another exception (its ``setup``
        raised, a dependency failed), that exception is ``__cause__``.
        """
        with self._lock:
            return {
                name: record.error
                for name, record in sorted(self._records.items())
                if record.state is PluginState.FAILED and record.error is not None
            }

    def info(self, name: str) -> PluginInfo:
        """The :class:`PluginInfo` of plugin ``name``.

        Raises:
            PluginNotFoundError: no such plugin.
        """
        with self._lock:
            return self._record(name).info

    # -- internals (call with the lock held) -------------------------------

    def _sync(self) -> None:
        """Bring the records in line with the registry."""
        registry = self.registry
        added = False
        for info in registry:
            record = self._records.get(info.name)
            if record is None:
                handle = PluginHandle(self, info.name)
                record = _Record(info, registry.target(info.name), handle)
                self._records[info.name] = record
                self._set_call(record)
                added = True
            elif record.state is not PluginState.ACTIVE and record.info is not info:
                # Re-registered (replace=True or a re-imported module): use the new one.
                record.info = info
                record.target = registry.target(info.name)
        if added:
            self._handles = {name: r.handle for name, r in self._records.items()}

    def _record(self, name: str) -> _Record:
        record = self._records.get(name)
        if record is None:
            self._sync()
            record = self._records.get(name)
            if record is None:
                raise PluginNotFoundError(name, self.group)
        return record

    def _handle(self, name: str) -> PluginHandle:
        with self._lock:
            return self._record(name).handle

    def _ensure_active(self, name: str) -> PluginHandle:
        with self._lock:
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
        """``names`` and every dependency they reach that is not active."""
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            record = self._records.get(name)
            if name in seen or record is None or record.state is PluginState.ACTIVE:
                continue
            seen.add(name)
            stack.extend(dep.name for dep in record.info.depends_on)
        return seen

    def _start(self, names: Iterable[str]) -> None:
        todo = self._closure(names)
        records = self._records
        plan = _resolve.plan(
            {name: records[name].info for name in todo},
            {name: record.info for name, record in records.items()},
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
                error = DependencyFailedError(info.name, dep.name)
                error.__cause__ = other.error if other is not None else None
                self._fail(record, error)
                return
        try:
            target = record.target
            if inspect.isclass(target):
                record.instance = target()
            else:
                record.instance = FunctionPlugin(cast("Callable[..., Any]", target))
            record.state = PluginState.LOADED
            setup = getattr(record.instance, "setup", None)
            if setup is not None:
                setup(PluginContext(info, MappingProxyType(deps), _EMPTY))
        except Exception as exc:
            error = PluginSetupError(info.name, exc)
            error.__cause__ = exc
            record.instance = None
            self._fail(record, error)
            log.warning("%s", error)
            return
        record.state = PluginState.ACTIVE
        record.error = None
        self._started.append(info.name)
        self._set_call(record)

    def _fail(self, record: _Record, error: PluginError) -> None:
        record.state = PluginState.FAILED
        record.error = error
        self._set_call(record)

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


def _no_execute(name: str) -> Callable[..., Any]:
    def refuse(data: Any = None) -> Any:
        raise PluginError(f"plugin {name!r} has no execute() method", plugin=name)

    return refuse
