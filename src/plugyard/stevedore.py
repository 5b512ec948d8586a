"""stevedore's managers, with plugyard's guarantees: verified, ordered, without conflicts.

Change the import, pass a trust policy, and keep the rest of a stevedore host::

    from plugyard.stevedore import DriverManager

    mgr = DriverManager("myapp.drivers", "fast", invoke_on_load=True, trust=policy)

Each manager here is stevedore's own class (a subclass of it), with stevedore's
arguments and behaviour, and three changes:

- Its entry points come from plugyard's index, through stevedore's public
  ``list_entry_points()``: each keeps its distribution (``ep.dist``), and its
  ``load()`` asks the trust gate first. stevedore calls ``load()`` for exactly
  the entry points it loads (a named or driver manager, only the names it
  was given), so exactly those are verified, each before any of its code runs.
  A refusal is an ordinary load failure: logged, or given to
  ``on_load_failure_callback``; a :class:`DriverManager` raises it.
- A name that two distributions provide is refused (both entry points) before
  anything is imported, naming both (stevedore would load both, or its cache
  would merge identical ones). A :class:`HookManager` is exempt: many
  providers of one name is what a hook is.
- Extensions are ordered by the ``depends_on`` their objects declare with
  :func:`plugyard.register`, through plugyard's resolver: each after its
  dependencies, stevedore's order kept otherwise. One on a dependency cycle,
  or whose required dependency is not installed, fails alone, as a load
  failure.

stevedore's on-disk entry-point cache is not used: it keeps no distribution
(so nothing could be verified), merges identical entry points of two
distributions, and misses a same-version reinstall for about two minutes.

stevedore is imported with this module, never by ``import plugyard``.
"""

from __future__ import annotations

import functools
import heapq
import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import stevedore.dispatch
import stevedore.driver
import stevedore.enabled
import stevedore.exception
import stevedore.extension
import stevedore.hook
import stevedore.named

from . import _admission, _discovery, _resolve
from ._discovery import EntryPoint as IndexEntryPoint
from ._manager import PluginManager
from ._model import ZERO, PluginInfo
from ._policy import Gate, TrustPolicy
from ._registry import Registry, get_registry
from ._sources import parse_version
from ._value import evolve
from .exceptions import PluginConflictError, PluginError

__all__ = [
    "DispatchExtensionManager",
    "DriverManager",
    "EnabledExtensionManager",
    "ExtensionManager",
    "HookManager",
    "Managers",
    "NameDispatchExtensionManager",
    "NamedExtensionManager",
    "Source",
    "VerifiedEntryPoint",
    "bind",
]

_log = logging.getLogger("plugyard.stevedore")

if TYPE_CHECKING:
    # stevedore 5.10 is generic; 5.0 is not, so the bases are not subscripted at run time.
    _Extension = stevedore.extension.Extension[Any]
    _ExtensionManager = stevedore.extension.ExtensionManager[Any]
    _NamedExtensionManager = stevedore.named.NamedExtensionManager[Any]
    _DriverManager = stevedore.driver.DriverManager[Any]
    _HookManager = stevedore.hook.HookManager[Any]
    _EnabledExtensionManager = stevedore.enabled.EnabledExtensionManager[Any]
    _DispatchExtensionManager = stevedore.dispatch.DispatchExtensionManager[Any]
    _NameDispatchExtensionManager = stevedore.dispatch.NameDispatchExtensionManager[Any]
else:
    _Extension = stevedore.extension.Extension
    _ExtensionManager = stevedore.extension.ExtensionManager
    _NamedExtensionManager = stevedore.named.NamedExtensionManager
    _DriverManager = stevedore.driver.DriverManager
    _HookManager = stevedore.hook.HookManager
    _EnabledExtensionManager = stevedore.enabled.EnabledExtensionManager
    _DispatchExtensionManager = stevedore.dispatch.DispatchExtensionManager
    _NameDispatchExtensionManager = stevedore.dispatch.NameDispatchExtensionManager

#: Where a manager's entry points come from: plugyard's index of ``sys.path``
#: (``None``), a :class:`PluginManager` (its path, registry and trust policy),
#: or plugyard entry points listed by hand.
Source = PluginManager | Iterable[IndexEntryPoint] | None


class VerifiedEntryPoint(importlib.metadata.EntryPoint):
    """An ``importlib.metadata.EntryPoint`` that keeps its distribution and is admitted before load.

    It is what stevedore's ``list_entry_points()`` returns here: equal to the
    plain entry point of the same name, value and group, with ``dist`` set,
    and a :meth:`load` that raises the refusal (a :class:`SignatureError`, a
    :class:`PluginConflictError`) instead of importing anything.
    """

    @classmethod
    def of(
        cls, entry: IndexEntryPoint, refusal: Callable[[], PluginError | None]
    ) -> VerifiedEntryPoint:
        """The entry point of index entry ``entry``, admitted by ``refusal``."""
        ep = cls(entry.name, entry.value, entry.group)
        vars(ep).update(_plugyard_entry=entry, _plugyard_refusal=refusal)
        return ep

    @property
    def index_entry(self) -> IndexEntryPoint | None:
        """Its record in plugyard's index: distribution, version, metadata directory, layout."""
        entry: IndexEntryPoint | None = vars(self).get("_plugyard_entry")
        return entry

    @property
    def dist(self) -> importlib.metadata.Distribution | None:  # type: ignore[override]
        """Its distribution, as ``importlib.metadata`` would give it (made when first asked)."""
        found = vars(self).get("_plugyard_dist")
        if found is None and self.index_entry is not None:
            found = _discovery.distribution_of(self.index_entry)
            vars(self)["_plugyard_dist"] = found
        return found

    def load(self) -> Any:
        """Import what it names, once plugyard's checks admit it.

        Raises:
            SignatureError: the trust policy refuses its distribution.
            PluginConflictError: another distribution provides the same name.
            PluginError: it was not listed by a verified manager.
        """
        refusal = vars(self).get("_plugyard_refusal")
        if refusal is None:
            raise PluginError(
                f"entry point {self.name!r} was not listed by a plugyard.stevedore manager, "
                "so nothing admits it; load it through one",
                plugin=self.name,
            )
        refused = refusal()
        if refused is not None:
            raise refused
        return super().load()


def _conflicts(entries: Sequence[IndexEntryPoint], group: str) -> dict[str, PluginConflictError]:
    by_name: dict[str, dict[str, None]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, {})[f"{entry.distribution} {entry.version}"] = None
    return {
        name: PluginConflictError(name, group, sorted(providers))
        for name, providers in by_name.items()
        if len(providers) > 1
    }


class _Admission:
    """What a manager lists, and whether each entry point may be loaded."""

    def __init__(self, namespace: str, trust: TrustPolicy, source: Source, *, hooks: bool) -> None:
        self.namespace = namespace
        self.gate = Gate(trust, namespace)
        if isinstance(source, PluginManager):
            entries = _discovery.entry_points(namespace, source.path)
        elif source is None:
            entries = _discovery.entry_points(namespace)
        else:
            entries = [e for e in source if e.group == namespace]
        self.entries = entries
        self.conflicts = {} if hooks else _conflicts(entries, namespace)

    def refusal(self, entry: IndexEntryPoint) -> PluginError | None:
        conflict = self.conflicts.get(entry.name)
        if conflict is not None:
            return conflict
        return _admission.admit(self.gate, entry.name, entry)

    def listed(self) -> list[importlib.metadata.EntryPoint]:
        return [
            VerifiedEntryPoint.of(entry, functools.partial(self.refusal, entry))
            for entry in self.entries
        ]


class _Known(Mapping[str, PluginInfo]):
    """What the resolver may look up: the loaded extensions, then every entry point listed."""

    def __init__(self, loaded: Mapping[str, PluginInfo], listed: Sequence[IndexEntryPoint]) -> None:
        self._loaded = loaded
        self._listed = {e.name: e for e in reversed(listed)}

    def __getitem__(self, name: str) -> PluginInfo:
        found = self._loaded.get(name)
        if found is not None:
            return found
        entry = self._listed[name]
        version = parse_version(entry.version) or ZERO
        return PluginInfo(name, entry.group, version, origin=entry.value)

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._loaded), **dict.fromkeys(self._listed)})

    def __len__(self) -> int:
        return len({**dict.fromkeys(self._loaded), **dict.fromkeys(self._listed)})


def _info(ext: _Extension, namespace: str, registry: Registry) -> PluginInfo | None:
    """The extension's declared dependencies, versioned by its distribution; ``None`` if none."""
    declared = registry.find(ext.plugin)
    if declared is None or not declared.depends_on:
        return None
    entry = getattr(ext.entry_point, "index_entry", None)
    version = parse_version(entry.version) if entry is not None else None
    return evolve(declared, name=ext.name, version=version or ZERO)


def _ordered(
    extensions: list[_Extension], edges: Mapping[str, tuple[str, ...]]
) -> list[_Extension]:
    """``extensions`` each after its dependencies, in their own order otherwise."""
    position = {ext.name: index for index, ext in enumerate(extensions)}
    waiting = {name: set(deps) for name, deps in edges.items()}
    dependents: dict[str, list[str]] = {}
    for name, deps in waiting.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(name)
    ready = [(position[name], name) for name, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    by_name = {ext.name: ext for ext in extensions}
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(by_name[name])
        for other in dependents.get(name, ()):
            waiting[other].discard(name)
            if not waiting[other]:
                heapq.heappush(ready, (position[other], other))
    return order


class _Verified(_ExtensionManager):
    """What every manager here adds to stevedore's: the listing, the checks, the order."""

    _plugyard_admission: _Admission | None = None
    _plugyard_registry: Registry | None = None
    _plugyard_default_trust: TrustPolicy | None = None
    _plugyard_default_source: Source = None
    _plugyard_hooks = False

    def __init__(
        self, *args: Any, trust: TrustPolicy | None = None, source: Source = None, **kwargs: Any
    ) -> None:
        namespace = args[0] if args else kwargs.get("namespace")
        if not isinstance(namespace, str):
            raise TypeError(f"{type(self).__name__} needs a namespace (an entry-point group)")
        source = source if source is not None else self._plugyard_default_source
        if trust is None:
            trust = self._plugyard_default_trust
        if trust is None and isinstance(source, PluginManager):
            trust = source.trust
        if trust is None:
            raise TypeError(
                f"{type(self).__name__} needs trust=TrustPolicy(...): which distributions "
                "must verify before import (TrustPolicy() verifies nothing)"
            )
        if isinstance(source, PluginManager):
            if source.group != namespace:
                raise ValueError(
                    f"the source manager's group {source.group!r} is not {namespace!r}"
                )
            self._plugyard_registry = source.registry
        self._plugyard_admission = _Admission(namespace, trust, source, hooks=self._plugyard_hooks)
        self._plugyard_listed: list[importlib.metadata.EntryPoint] | None = None
        super().__init__(*args, **kwargs)

    @property
    def trust(self) -> TrustPolicy | None:
        """The trust policy the entry points are admitted by (``None`` for a test instance)."""
        admission = self._plugyard_admission
        return admission.gate.policy if admission is not None else None

    def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
        """The namespace's entry points, each keeping its distribution; nothing is loaded.

        Read from plugyard's index when the manager is made, not from
        stevedore's cache, and not shared with other managers: a manager made
        after an install sees it.
        """
        if self._plugyard_admission is None:
            return []  # a test instance lists nothing
        if self._plugyard_listed is None:
            self._plugyard_listed = self._plugyard_admission.listed()
        return self._plugyard_listed

    # stevedore offers no public hook between loading the extensions and
    # using them; _init_plugins is where its own subclasses (named, driver,
    # dispatch) order and check them, in every 5.x release, and is called by
    # make_test_instance too. Ordering here comes after theirs.
    def _init_plugins(self, extensions: list[_Extension]) -> None:
        super()._init_plugins(extensions)
        if self._plugyard_hooks or not self.extensions:
            return
        namespace = self.namespace
        registry = self._plugyard_registry or get_registry(namespace)
        declared = {ext.name: _info(ext, namespace, registry) for ext in self.extensions}
        if not any(declared.values()):
            return
        todo = {
            ext.name: declared[ext.name] or PluginInfo(ext.name, namespace, ZERO)
            for ext in self.extensions
        }
        listed = self._plugyard_admission.entries if self._plugyard_admission else []
        plan = _resolve.plan(todo, _Known(todo, listed))
        failed = [ext for ext in self.extensions if ext.name in plan.failures]
        self.extensions = _ordered(
            [ext for ext in self.extensions if ext.name not in plan.failures], plan.edges
        )
        # stevedore memoizes the by-name mapping (a private attribute, in
        # every 5.x); extensions that failed must leave it too.
        self._extensions_by_name_cache = None
        if hasattr(self, "by_name"):
            self.by_name = {ext.name: ext for ext in self.extensions}
        for ext in failed:
            self._failed(ext, plan.failures[ext.name])
        if failed and not self.extensions and isinstance(self, stevedore.driver.DriverManager):
            # As stevedore does when its driver failed to load and the callback did not raise.
            raise stevedore.exception.NoMatches(
                f"No {namespace!r} driver left: {failed[0].name!r} failed its dependencies"
            )

    def _failed(self, ext: _Extension, error: PluginError) -> None:
        """Report a dependency failure as stevedore reports a load failure."""
        # The callback stevedore was given (a private attribute in every 5.x):
        # DriverManager's default re-raises the error being handled.
        callback = getattr(self, "_on_load_failure_callback", None)
        try:
            raise error
        except PluginError as exc:
            if callback is not None:
                callback(self, ext.entry_point, exc)
            else:
                _log.error("Could not load %r: %s", ext.name, exc)


class ExtensionManager(_Verified, _ExtensionManager):
    """stevedore's ``ExtensionManager``, verified: every entry point of the namespace.

    Args:
        *args: stevedore's arguments, the namespace first.
        trust: Which distributions must verify before import. Required,
            unless ``source`` is a :class:`PluginManager`, whose policy is used.
        source: Where the entry points come from: plugyard's index of
            ``sys.path`` by default; a :class:`PluginManager` (its path, its
            registry, its trust policy); or plugyard entry points you listed.
        **kwargs: stevedore's keyword arguments.
    """


class NamedExtensionManager(_Verified, _NamedExtensionManager):
    """stevedore's ``NamedExtensionManager``, verified: only the names given are verified.

    Arguments as :class:`ExtensionManager`'s, with stevedore's ``names`` second.
    """


class DriverManager(_Verified, _DriverManager):
    """stevedore's ``DriverManager``, verified: one driver, which raises what refused it.

    Arguments as :class:`ExtensionManager`'s, with stevedore's ``name`` second.
    """


class HookManager(_Verified, _HookManager):
    """stevedore's ``HookManager``, verified: every provider of one name, each verified.

    Many distributions providing the name is the point of a hook, so this
    one is not refused as a conflict; hooks are not ordered by dependencies.
    """

    _plugyard_hooks = True


class EnabledExtensionManager(_Verified, _EnabledExtensionManager):
    """stevedore's ``EnabledExtensionManager``, verified.

    stevedore loads every entry point and then asks ``check_func``, so every
    entry point of the namespace is verified.
    """


class DispatchExtensionManager(_Verified, _DispatchExtensionManager):
    """stevedore's ``DispatchExtensionManager``, verified (it loads every entry point)."""


class NameDispatchExtensionManager(_Verified, _NameDispatchExtensionManager):
    """stevedore's ``NameDispatchExtensionManager``, verified (it loads every entry point)."""


_CLASSES = (
    ExtensionManager,
    NamedExtensionManager,
    DriverManager,
    HookManager,
    EnabledExtensionManager,
    DispatchExtensionManager,
    NameDispatchExtensionManager,
)


@attrs.frozen
class Managers:
    """The seven managers, bound to one trust policy and source (see :func:`bind`).

    Attributes:
        ExtensionManager: :class:`ExtensionManager`, with the bound defaults.
        NamedExtensionManager: :class:`NamedExtensionManager`, likewise.
        DriverManager: :class:`DriverManager`, likewise.
        HookManager: :class:`HookManager`, likewise.
        EnabledExtensionManager: :class:`EnabledExtensionManager`, likewise.
        DispatchExtensionManager: :class:`DispatchExtensionManager`, likewise.
        NameDispatchExtensionManager: :class:`NameDispatchExtensionManager`, likewise.
    """

    ExtensionManager: type[ExtensionManager]
    NamedExtensionManager: type[NamedExtensionManager]
    DriverManager: type[DriverManager]
    HookManager: type[HookManager]
    EnabledExtensionManager: type[EnabledExtensionManager]
    DispatchExtensionManager: type[DispatchExtensionManager]
    NameDispatchExtensionManager: type[NameDispatchExtensionManager]


def bind(trust: TrustPolicy, source: Source = None) -> Managers:
    """The managers with ``trust`` (and ``source``) as their defaults.

    For a host that makes managers in many places: ``sd = bind(policy)`` once,
    then ``sd.DriverManager(namespace, name)`` where it called stevedore's.
    """
    made = {
        cls.__name__: type(
            cls.__name__,
            (cls,),
            {
                "_plugyard_default_trust": trust,
                "_plugyard_default_source": source,
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
            },
        )
        for cls in _CLASSES
    }
    return Managers(**made)
