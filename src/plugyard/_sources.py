"""Where candidates come from: the registry and the installed entry points.

Nothing here imports a plugin. :class:`Installed` is one reading of a
group's entry points; :func:`registered` and :meth:`Installed.candidate`
turn what the sources say into :class:`Candidate` values, and
:meth:`Installed.error` says, from the metadata alone, why an entry point
cannot become a plugin (a name provided twice, an invalid name or version).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Sequence

from packaging.version import InvalidVersion, Version

from . import _discovery
from ._candidate import Candidate, CandidateKind
from ._discovery import BrokenDistribution, EntryPoint
from ._model import PluginInfo, PluginState, check_name
from .exceptions import InvalidPluginError, PluginConflictError, PluginError, PluginLoadError

ZERO = Version("0")
log = logging.getLogger("plugyard")


@functools.lru_cache(maxsize=4096)
def parse_version(text: str) -> Version | None:
    """A distribution's version, parsed once per distinct string; ``None`` if invalid."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


_reported: set[tuple[str, str]] = set()


def _report(broken: BrokenDistribution) -> None:
    """Log a distribution left out of the listing, once per process."""
    if (broken.path, broken.reason) not in _reported:
        _reported.add((broken.path, broken.reason))
        log.warning(
            "distribution %s is left out of the entry points: %s (%s)",
            broken.distribution,
            broken.reason,
            broken.path,
        )


def load_error(ep: EntryPoint, reason: str) -> PluginLoadError:
    """The error of an entry point that cannot be loaded, naming it and its distribution."""
    return PluginLoadError(
        ep.name, f"{ep.name} = {ep.value}", f"{ep.distribution} {ep.version}", reason
    )


class Installed:
    """The entry points of one group, read once from the installed metadata.

    Args:
        group: The entry-point group.
        path: Where to look; ``sys.path`` by default.
        enabled: ``False`` gives an empty reading (a manager without entry points).
    """

    __slots__ = ("_errors", "broken", "by_name", "group", "modules")

    def __init__(self, group: str, path: Sequence[str] | None, *, enabled: bool = True) -> None:
        index = _discovery.read_index(path) if enabled else None
        found = index.entry_points(group) if index is not None else []
        #: Distributions left out because their entry points cannot be read.
        self.broken = index.problems if index is not None else []
        for broken in self.broken:
            _report(broken)
        self.group = group
        #: Class and function entry points by name, in ``sys.path`` order.
        self.by_name: dict[str, list[EntryPoint]] = {}
        #: Module entry points: importing them registers plugins.
        self.modules: list[EntryPoint] = []
        for ep in found:
            # A colon is what gives an entry point an object (EntryPoint.attr).
            if ":" in ep.value:
                self.by_name.setdefault(ep.name, []).append(ep)
            else:
                self.modules.append(ep)
        self._errors: dict[str, PluginError | None] = {}

    def pending_modules(self) -> list[EntryPoint]:
        """The module entry points whose modules are not imported yet."""
        return [ep for ep in self.modules if ep.module not in sys.modules]

    def error(self, name: str) -> PluginError | None:
        """Why entry point ``name`` cannot become a plugin, found without importing it."""
        if name not in self._errors:
            self._errors[name] = self._check(name)
        return self._errors[name]

    def _check(self, name: str) -> PluginError | None:
        eps = self.by_name[name]
        if len(eps) > 1:
            dists = sorted({f"{e.distribution} {e.version}" for e in eps})
            if len(dists) > 1:
                return PluginConflictError(name, self.group, dists)
        try:
            check_name(name)
        except InvalidPluginError as exc:
            return load_error(eps[0], str(exc))
        if not eps[0].distribution:
            return load_error(
                eps[0], f"its metadata in {eps[0].path} names no distribution (no METADATA?)"
            )
        if parse_version(eps[0].version) is None:
            return load_error(eps[0], f"its distribution's version {eps[0].version!r} is invalid")
        return None

    def candidate(self, name: str, state: PluginState = PluginState.DISCOVERED) -> Candidate:
        """The candidate of entry point ``name``, from its distribution's metadata alone."""
        ep = self.by_name[name][0]
        info = PluginInfo(
            name=name,
            group=self.group,
            version=parse_version(ep.version) or ZERO,
            origin=ep.value,
            distribution=ep.distribution,
        )
        return Candidate(
            name=name,
            group=self.group,
            version=ep.version,
            distribution=ep.distribution,
            value=ep.value,
            kind=CandidateKind.ENTRY_POINT,
            info=info,
            state=state,
            entry_point=ep,
        )

    def provider_of(self, info: PluginInfo) -> EntryPoint | None:
        """The module entry point whose module (or a submodule) registered ``info``."""
        module = info.origin.partition(":")[0]
        for ep in self.modules:
            if module == ep.module or module.startswith(ep.module + "."):
                return ep
        return None


def module_candidate(ep: EntryPoint) -> Candidate:
    """The candidate of a module entry point, listed under the entry point's name."""
    return Candidate(
        name=ep.name,
        group=ep.group,
        version=ep.version,
        distribution=ep.distribution,
        value=ep.value,
        kind=CandidateKind.MODULE,
        info=PluginInfo(ep.name, ep.group, ZERO, origin=ep.value),
        entry_point=ep,
    )


def registered(info: PluginInfo, target: object) -> Candidate:
    """The candidate of a plugin registered in code."""
    return Candidate(
        name=info.name,
        group=info.group,
        version=str(info.version),
        distribution=info.distribution,
        value=info.origin,
        kind=CandidateKind.REGISTERED,
        info=info,
        target=target,
    )
