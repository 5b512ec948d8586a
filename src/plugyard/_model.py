"""What a plugin is: its metadata, its dependencies, its states and its context."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from packaging.version import InvalidVersion, Version

from . import _log
from ._public import present_top_level as _present_top_level
from ._value import Value
from .exceptions import InvalidPluginError, MissingDependencyError

if TYPE_CHECKING:
    import logging

    # Imported where ranges are parsed: packaging's specifier and requirement
    # parsers cost more to import than the rest of plugyard.
    from packaging.specifiers import SpecifierSet

#: What ``depends_on`` accepts: ``{"name": ">=1.0,<2"}`` or ``["name>=1.0,<2", "other"]``.
DependsOn: TypeAlias = Mapping[str, str] | Iterable[str]

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


class PluginState(str, enum.Enum):
    """Where a plugin is in its life.

    ``discovered`` (known, nothing of it run) → ``loaded`` (imported and
    instantiated, setting up) → ``active`` (set up, callable). ``failed`` holds
    the error in :meth:`PluginManager.errors`; ``unloaded`` was torn down.
    """

    DISCOVERED = "discovered"
    LOADED = "loaded"
    ACTIVE = "active"
    FAILED = "failed"
    UNLOADED = "unloaded"

    def __str__(self) -> str:
        return self.value


def canonical(name: str | None) -> str:
    """A distribution's name as PEP 503 normalizes it: ``Pd_Tok`` is ``pd-tok``.

    What ``packaging.utils.canonicalize_name`` returns, without importing
    ``packaging.utils``, which brings ``packaging.tags`` (and subprocess,
    sysconfig, logging) into every verified import.
    """
    return _SEPARATORS.sub("-", name or "").lower()


_SEPARATORS = re.compile(r"[-_.]+")


def check_name(name: object, *, what: str = "plugin name") -> str:
    """Return ``name`` if it is a valid plugin name, else raise.

    Names are ASCII letters, digits, ``.``, ``_`` and ``-``, starting and
    ending with a letter or digit: the names packaging allows for
    distributions, so an entry-point name can be a plugin name.

    Raises:
        InvalidPluginError: ``name`` is not such a string.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidPluginError(
            name,
            f"a {what} is ASCII letters, digits, '.', '_' and '-', "
            "starting and ending with a letter or digit",
        )
    return name


#: The version of a plugin that declares none (and of a distribution whose version is invalid).
ZERO = Version("0")


def parse_version(version: object, *, plugin: str | None = None) -> Version:
    """Parse a PEP 440 version, raising :class:`InvalidPluginError` if it is not one."""
    if isinstance(version, Version):
        return version
    if not isinstance(version, str):
        raise InvalidPluginError(version, "a version is a PEP 440 string", plugin=plugin)
    try:
        return Version(version)
    except InvalidVersion:
        raise InvalidPluginError(
            version, "not a PEP 440 version (e.g. '1.2.0')", plugin=plugin
        ) from None


def _specifier(spec: str) -> SpecifierSet:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(spec)


class Dependency(Value):
    """One declared dependency of a plugin.

    Attributes:
        name: The plugin depended on.
        specifier: The accepted versions; empty accepts any. Pre-releases
            are accepted when they fall in the range.
        optional: An optional dependency orders setup after it when it is
            present, and is not required.
    """

    __slots__ = ("name", "optional", "specifier")

    name: str
    specifier: SpecifierSet
    optional: bool

    def __init__(
        self, name: str, specifier: SpecifierSet | None = None, optional: bool = False
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "specifier", _specifier("") if specifier is None else specifier)
        object.__setattr__(self, "optional", optional)

    def accepts(self, version: Version) -> bool:
        """Whether ``version`` is in this dependency's range."""
        return self.specifier.contains(version, prereleases=True)

    def __str__(self) -> str:
        return f"{self.name}{self.specifier}"


def parse_depends_on(
    value: DependsOn | None, *, plugin: str | None = None, optional: bool = False
) -> tuple[Dependency, ...]:
    """Turn what ``depends_on`` accepts into :class:`Dependency` objects, sorted by name.

    Raises:
        InvalidPluginError: a name or specifier is invalid, a requirement
            string has extras, a URL or markers, or a name is listed twice.
    """
    if value is None:
        return ()
    pairs: list[tuple[str, str]] = []
    if isinstance(value, str):
        raise InvalidPluginError(
            value, "depends_on takes a list of requirement strings or a mapping", plugin=plugin
        )
    if isinstance(value, Mapping):
        for name, spec in value.items():
            if not isinstance(spec, str):
                raise InvalidPluginError(
                    spec, f"the range of {name!r} must be a string like '>=1.0,<2'", plugin=plugin
                )
            pairs.append((name, spec))
    else:
        pairs.extend(_split_requirement(item, plugin) for item in value)
    deps: dict[str, Dependency] = {}
    for name, spec in pairs:
        check_name(name, what="dependency name")
        if name in deps:
            raise InvalidPluginError(name, "listed twice in depends_on", plugin=plugin)
        from packaging.specifiers import InvalidSpecifier

        try:
            specifier = _specifier(spec)
        except InvalidSpecifier:
            raise InvalidPluginError(
                spec, f"not a PEP 440 version range for {name!r}", plugin=plugin
            ) from None
        deps[name] = Dependency(name, specifier, optional)
    return tuple(deps[name] for name in sorted(deps))


def _split_requirement(item: object, plugin: str | None) -> tuple[str, str]:
    if not isinstance(item, str):
        raise InvalidPluginError(item, "a dependency is a string like 'name>=1.0'", plugin=plugin)
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(item)
    except InvalidRequirement as exc:
        raise InvalidPluginError(item, f"not a requirement string: {exc}", plugin=plugin) from None
    if req.extras or req.url or req.marker:
        raise InvalidPluginError(
            item, "extras, URLs and markers have no meaning for plugins", plugin=plugin
        )
    return req.name, str(req.specifier)


class PluginInfo(Value):
    """What is known of a plugin without running it.

    Attributes:
        name: Unique within its group.
        group: The registry namespace or entry-point group.
        version: PEP 440 version; ``0`` when none was declared.
        depends_on: Declared dependencies, sorted by name, optional ones included.
        origin: Where it was declared, as ``module:qualname``.
        summary: The first line of its docstring, or ``""``.
        distribution: The installed distribution that provides it, if any.
    """

    __slots__ = ("depends_on", "distribution", "group", "name", "origin", "summary", "version")

    name: str
    group: str
    version: Version
    depends_on: tuple[Dependency, ...]
    origin: str
    summary: str
    distribution: str | None

    def __init__(
        self,
        name: str,
        group: str,
        version: Version,
        depends_on: tuple[Dependency, ...] = (),
        origin: str = "",
        summary: str = "",
        distribution: str | None = None,
    ) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "group", group)
        _set(self, "version", version)
        _set(self, "depends_on", depends_on)
        _set(self, "origin", origin)
        _set(self, "summary", summary)
        _set(self, "distribution", distribution)

    @property
    def requires(self) -> tuple[Dependency, ...]:
        """The dependencies that must be present."""
        return tuple(d for d in self.depends_on if not d.optional)


class Plugin:
    """An optional base class naming the methods a plugin may define.

    Nothing requires subclassing it: any class with some of these methods
    works, and so does a function. Every method is optional.
    """

    def setup(self, ctx: PluginContext) -> None:
        """Prepare the plugin; runs after every dependency is active."""

    def configure(self, config: Mapping[str, Any]) -> None:
        """Apply new configuration; raise to reject it."""

    def teardown(self) -> None:
        """Release what ``setup`` acquired; dependents are torn down first."""


class FunctionPlugin(Value):
    """The instance a function plugin runs as: ``execute`` is the function.

    Attributes:
        execute: The registered function.
    """

    __slots__ = ("execute",)

    execute: Callable[..., Any]

    def __init__(self, execute: Callable[..., Any]) -> None:
        object.__setattr__(self, "execute", execute)


class PluginContext:
    """What a plugin's ``setup`` receives.

    Attributes:
        info: The plugin's own :class:`PluginInfo`.
        config: The plugin's configuration (empty unless a config store is set).
    """

    __slots__ = ("_deps", "config", "info")

    def __init__(
        self, info: PluginInfo, deps: Mapping[str, object], config: Mapping[str, Any]
    ) -> None:
        self.info = info
        self.config = config
        self._deps = deps

    @property
    def logger(self) -> logging.Logger:
        """The plugin's logger, ``plugyard.plugins.<group>.<name>`` (made on first use)."""
        return _log.get(f"plugyard.plugins.{self.info.group}.{self.info.name}")

    def dependency(self, name: str) -> Any:
        """Return the active instance of a declared dependency.

        Raises:
            InvalidPluginError: ``name`` is not in this plugin's ``depends_on``.
            MissingDependencyError: ``name`` is an optional dependency that is
                not present.
        """
        if name in self._deps:
            return self._deps[name]
        if not any(d.name == name for d in self.info.depends_on):
            raise InvalidPluginError(name, "not declared in depends_on", plugin=self.info.name)
        raise MissingDependencyError(self.info.name, name)

    def has_dependency(self, name: str) -> bool:
        """Whether ``name`` is a dependency that is active for this plugin."""
        return name in self._deps


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
