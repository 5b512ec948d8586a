"""The one value that flows from the sources to the lifecycle: a :class:`Candidate`."""

from __future__ import annotations

import enum

from ._discovery import EntryPoint
from ._model import PluginInfo, PluginState
from ._public import present_top_level as _present_top_level
from ._value import Value


class CandidateKind(str, enum.Enum):
    """Where a candidate comes from.

    The values are plain strings, so ``candidate.kind == "module"`` works.
    """

    #: An installed entry point naming a class or function.
    ENTRY_POINT = "entry point"
    #: An installed entry point naming a module, whose import registers plugins.
    MODULE = "module"
    #: A plugin registered in code with :func:`register`.
    REGISTERED = "registered"

    def __str__(self) -> str:
        return self.value


class Candidate(Value):
    """A plugin as the sources list it, and as each stage hands it on.

    Listing builds candidates without importing anything; loading returns a
    new candidate (``copy.replace``) that knows the plugin's class or function
    and its declared dependencies. What changes while a plugin runs (its
    state, instance, calls in flight) is not here: :meth:`PluginManager.candidates`
    stamps the state each plugin has at the moment it lists it.

    Attributes:
        name: The plugin's name (for a module entry point, the entry point's).
        group: Its group.
        version: Its version (an installed plugin's is its distribution's).
        distribution: The installed distribution providing it, or ``None``
            for a plugin registered in code.
        value: The entry point's value (``module:object`` or ``module``), or
            the ``module:qualname`` of a plugin registered in code.
        kind: Where it comes from (a :class:`CandidateKind`, equal to
            ``"entry point"``, ``"module"`` or ``"registered"``).
        info: What is known of it: for an installed plugin not imported yet,
            only what its distribution's metadata says (no dependencies).
        state: Its state when it was listed.
        enabled: ``False`` when it was disabled with :meth:`PluginManager.disable`.
        entry_point: The entry point it comes from, if installed.
        target: Its class or function, once imported (``None`` before).
        location: The file in a plugin directory it comes from (a wheel or
            a single-file plugin), or ``None``.
        chosen: Whether this is the version that loads (or is loaded), when
            several versions of the plugin are present.
        why: Why this version is chosen or not (empty when there is no choice).
    """

    __slots__ = (
        "chosen",
        "distribution",
        "enabled",
        "entry_point",
        "group",
        "info",
        "kind",
        "location",
        "name",
        "state",
        "target",
        "value",
        "version",
        "why",
    )
    _uncompared = frozenset({"info", "target", "why"})
    _unshown = frozenset({"info", "entry_point", "target"})

    name: str
    group: str
    version: str
    distribution: str | None
    value: str
    kind: CandidateKind
    info: PluginInfo
    state: PluginState
    enabled: bool
    entry_point: EntryPoint | None
    target: object
    location: str | None
    chosen: bool
    why: str

    def __init__(
        self,
        name: str,
        group: str,
        version: str,
        distribution: str | None,
        value: str,
        kind: CandidateKind,
        info: PluginInfo,
        state: PluginState = PluginState.DISCOVERED,
        enabled: bool = True,
        entry_point: EntryPoint | None = None,
        target: object = None,
        location: str | None = None,
        chosen: bool = True,
        why: str = "",
    ) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "group", group)
        _set(self, "version", version)
        _set(self, "distribution", distribution)
        _set(self, "value", value)
        _set(self, "kind", kind)
        _set(self, "info", info)
        _set(self, "state", state)
        _set(self, "enabled", enabled)
        _set(self, "entry_point", entry_point)
        _set(self, "target", target)
        _set(self, "location", location)
        _set(self, "chosen", chosen)
        _set(self, "why", why)

    @property
    def imported(self) -> bool:
        """Whether its class or function is known (always, for a registered plugin)."""
        return self.target is not None


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
