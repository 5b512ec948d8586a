"""Registries and the ``register`` decorator."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._introspect import summary
from ._model import ZERO, DependsOn, PluginInfo, check_name, parse_depends_on, parse_version
from ._public import present_top_level as _present_top_level
from ._value import Value
from .exceptions import DuplicatePluginError, InvalidPluginError, PluginNotFoundError

if TYPE_CHECKING:
    from packaging.version import Version

T = TypeVar("T")

#: The group decorated plugins land in when ``register`` names none.
DEFAULT_GROUP = "plugyard.default"


class _Entry(Value):
    __slots__ = ("info", "registrant", "target")

    info: PluginInfo
    target: object
    registrant: str | None

    def __init__(self, info: PluginInfo, target: object, registrant: str | None = None) -> None:
        object.__setattr__(self, "info", info)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "registrant", registrant)


def _registrant() -> str | None:
    """The module whose code is calling ``register``: the first frame outside plugyard."""
    try:
        frame: FrameType | None = sys._getframe(2)
    except ValueError:  # called from the bottom of the stack
        return None
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if not isinstance(name, str) or not (name == "plugyard" or name.startswith("plugyard.")):
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None


def origin_of(obj: object) -> str:
    """``module:qualname`` of a class or function, as errors and listings show it."""
    module = getattr(obj, "__module__", None) or "?"
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{qualname}"


def info_for(
    obj: object,
    *,
    group: str,
    name: str | None = None,
    version: str | Version | None = None,
    depends_on: DependsOn | None = None,
    optional_depends_on: DependsOn | None = None,
    distribution: str | None = None,
    origin: str | None = None,
) -> PluginInfo:
    """Validate a plugin declaration and build its :class:`PluginInfo`.

    ``origin`` is the object's ``module:qualname``, given when the caller
    has that string already (to keep one, not two); computed otherwise.

    Raises:
        InvalidPluginError: the object is neither a class nor a callable, or a
            name, version or dependency is invalid.
    """
    if not callable(obj):
        raise InvalidPluginError(obj, "a plugin is a class or a function")
    plugin_name = check_name(name if name is not None else getattr(obj, "__name__", None))
    required = parse_depends_on(depends_on, plugin=plugin_name)
    optional = parse_depends_on(optional_depends_on, plugin=plugin_name, optional=True)
    both = {d.name for d in required} & {d.name for d in optional}
    if both:
        raise InvalidPluginError(
            sorted(both), "named in both depends_on and optional_depends_on", plugin=plugin_name
        )
    if plugin_name in {d.name for d in required + optional}:
        raise InvalidPluginError(
            plugin_name, "a plugin cannot depend on itself", plugin=plugin_name
        )
    return PluginInfo(
        name=plugin_name,
        group=check_name(group, what="group name"),
        version=ZERO if version is None else parse_version(version, plugin=plugin_name),
        depends_on=tuple(sorted(required + optional, key=lambda d: d.name)),
        origin=origin_of(obj) if origin is None else origin,
        summary=summary(obj),
        distribution=distribution,
    )


class Registry:
    """The plugins of one group, as declared in code.

    Framework authors embed one per extension point; app developers decorate
    with :meth:`register`. Registering validates the declaration and stores
    it: nothing is instantiated or run until a :class:`PluginManager` loads it.
    Registries are safe to use from several threads.

    Args:
        group: The namespace, e.g. ``"myapp.exporters"``; also the entry-point
            group a manager searches for this registry's installed plugins.
    """

    def __init__(self, group: str) -> None:
        self.group = check_name(group, what="group name")
        self._lock = threading.Lock()
        # Changed in place under the lock (registering ten thousand plugins
        # must not copy the mapping ten thousand times); lookups need no
        # lock, iteration copies under it.
        self._entries: dict[str, _Entry] = {}
        self._names_by_target: dict[int, str] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """A number that changes whenever a plugin is registered or unregistered.

        Managers compare it to see whether anything changed since they looked.
        """
        return self._generation

    def __repr__(self) -> str:
        return f"<Registry {self.group!r}: {len(self._entries)} plugins>"

    @overload
    def register(
        self,
        obj: T,
        /,
        *,
        name: str | None = None,
        version: str | None = None,
        depends_on: DependsOn | None = None,
        optional_depends_on: DependsOn | None = None,
        replace: bool = False,
    ) -> T: ...

    @overload
    def register(
        self,
        obj: None = None,
        /,
        *,
        name: str | None = None,
        version: str | None = None,
        depends_on: DependsOn | None = None,
        optional_depends_on: DependsOn | None = None,
        replace: bool = False,
    ) -> Callable[[T], T]: ...

    def register(
        self,
        obj: Any = None,
        /,
        *,
        name: str | None = None,
        version: str | None = None,
        depends_on: DependsOn | None = None,
        optional_depends_on: DependsOn | None = None,
        replace: bool = False,
    ) -> Any:
        """Register a class or function: ``@register``, ``@register(...)``, ``register(obj, ...)``.

        A class is instantiated without arguments when the plugin loads; a
        function becomes a plugin whose ``execute`` is the function. The
        object is returned unchanged.

        Args:
            obj: The class or function, when used without parentheses.
            name: The plugin's name; defaults to the object's ``__name__``.
            version: A PEP 440 version; defaults to ``"0"``.
            depends_on: Required dependencies: ``{"name": ">=1,<2"}`` or
                ``["name>=1,<2", "other"]``.
            optional_depends_on: Dependencies that, when present, are set up
                first and must be in range; absent ones are fine.
            replace: Replace a plugin already registered under this name.
                Registering again from the same ``module:qualname`` (a
                re-imported module) always replaces.

        Raises:
            InvalidPluginError: a name, version or dependency is invalid.
            DuplicatePluginError: the name is taken and ``replace`` is false.
        """

        def decorate(target: T) -> T:
            info = info_for(
                target,
                group=self.group,
                name=name,
                version=version,
                depends_on=depends_on,
                optional_depends_on=optional_depends_on,
            )
            self._add(_Entry(info, target, _registrant()), replace=replace)
            return target

        if obj is None:
            return decorate
        return decorate(obj)

    def _add(self, entry: _Entry, *, replace: bool) -> None:
        name = entry.info.name
        with self._lock:
            old = self._entries.get(name)
            if old is not None and not replace and old.info.origin != entry.info.origin:
                raise DuplicatePluginError(name, self.group, old.info.origin, entry.info.origin)
            if old is not None:
                self._names_by_target.pop(id(old.target), None)
            self._entries[name] = entry
            self._names_by_target[id(entry.target)] = name
            self._generation += 1

    def unregister(self, name: str) -> None:
        """Remove a plugin; managers that loaded it keep their instance.

        Raises:
            PluginNotFoundError: nothing is registered under ``name``.
        """
        with self._lock:
            entry = self._entries.pop(name, None)
            if entry is None:
                raise PluginNotFoundError(name, self.group)
            self._names_by_target.pop(id(entry.target), None)
            self._generation += 1

    def info(self, name: str) -> PluginInfo:
        """The :class:`PluginInfo` registered under ``name``.

        Raises:
            PluginNotFoundError: nothing is registered under ``name``.
        """
        return self._entry(name).info

    def target(self, name: str) -> object:
        """The class or function registered under ``name``.

        Raises:
            PluginNotFoundError: nothing is registered under ``name``.
        """
        return self._entry(name).target

    def registrant(self, name: str) -> str | None:
        """The module whose code registered ``name`` (``__name__`` of its caller), if known.

        The trust gate asks it: code admitted unverified may not register
        plugins that must be verified.

        Raises:
            PluginNotFoundError: nothing is registered under ``name``.
        """
        return self._entry(name).registrant

    def find(self, obj: object) -> PluginInfo | None:
        """The info of the plugin whose class or function is ``obj``, if registered."""
        entry = self._entries.get(self._names_by_target.get(id(obj), ""))
        return entry.info if entry is not None and entry.target is obj else None

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise PluginNotFoundError(name, self.group) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[PluginInfo]:
        """Iterate the registered plugins' infos, sorted by name."""
        with self._lock:
            entries = dict(self._entries)
        return iter([entries[k].info for k in sorted(entries)])

    def entries(self) -> list[tuple[PluginInfo, object]]:
        """Each registered plugin's info and class or function, sorted by name."""
        with self._lock:
            entries = dict(self._entries)
        return [(entries[k].info, entries[k].target) for k in sorted(entries)]

    def __len__(self) -> int:
        return len(self._entries)


_defaults: dict[str, Registry] = {}
_defaults_lock = threading.Lock()


def get_registry(group: str = DEFAULT_GROUP) -> Registry:
    """Return the process-wide registry of ``group``, creating it on first use.

    This is where the module-level :func:`register` puts plugins, and what a
    :class:`PluginManager` built with ``group=`` reads.
    """
    registry = _defaults.get(group)
    if registry is None:
        with _defaults_lock:
            registry = _defaults.setdefault(group, Registry(group))
    return registry


@overload
def register(
    obj: T,
    /,
    *,
    group: str = DEFAULT_GROUP,
    name: str | None = None,
    version: str | None = None,
    depends_on: DependsOn | None = None,
    optional_depends_on: DependsOn | None = None,
    replace: bool = False,
) -> T: ...


@overload
def register(
    obj: None = None,
    /,
    *,
    group: str = DEFAULT_GROUP,
    name: str | None = None,
    version: str | None = None,
    depends_on: DependsOn | None = None,
    optional_depends_on: DependsOn | None = None,
    replace: bool = False,
) -> Callable[[T], T]: ...


def register(
    obj: Any = None,
    /,
    *,
    group: str = DEFAULT_GROUP,
    name: str | None = None,
    version: str | None = None,
    depends_on: DependsOn | None = None,
    optional_depends_on: DependsOn | None = None,
    replace: bool = False,
) -> Any:
    """Register a class or function in the process-wide registry of ``group``.

    The same as ``get_registry(group).register(...)``; see
    :meth:`Registry.register` for the arguments. Works as ``@register``,
    ``@register()`` and ``@register(name=..., version=..., ...)``.
    """
    decorate = get_registry(group).register(
        name=name,
        version=version,
        depends_on=depends_on,
        optional_depends_on=optional_depends_on,
        replace=replace,
    )
    return decorate if obj is None else decorate(obj)


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
