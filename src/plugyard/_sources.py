"""Where candidates come from: the registry, the installed entry points, plugin directories.

Nothing here imports a plugin. :class:`Installed` is one reading of a
group's entry points, those of plugin directories first; :func:`registered`
and :meth:`Installed.candidate` turn what the sources say into
:class:`Candidate` values, and :meth:`Installed.error` says, from the
metadata alone, why an entry point cannot become a plugin (a name provided
by two distributions, an invalid name or version, a pin no version matches).

One distribution present several times (in plugin directories, and
installed) gives several versions of its plugins, not a conflict: the
newest allowed wins (see ``_versions``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence

from packaging.version import InvalidVersion, Version

from . import _discovery, _log, _versions
from ._candidate import Candidate, CandidateKind
from ._discovery import BrokenDistribution, EntryPoint
from ._model import ZERO, PluginInfo, PluginState, canonical, check_name
from ._value import evolve
from .exceptions import (
    InvalidPluginError,
    PluginConflictError,
    PluginError,
    PluginLoadError,
    VersionNotFoundError,
)

log = _log.Logger("plugyard")


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
        enabled: ``False`` gives an empty reading of the installed
            distributions (a manager without entry points).
        directories: The class and function entry points of plugin
            directories, each with its file, in precedence order.
        pins: Version ranges by plugin name (``versions=``).
    """

    __slots__ = ("_errors", "broken", "by_name", "group", "locations", "modules", "pins")

    def __init__(
        self,
        group: str,
        path: Sequence[str] | None,
        *,
        enabled: bool = True,
        directories: Sequence[tuple[EntryPoint, str]] = (),
        pins: Mapping[str, str] | None = None,
    ) -> None:
        index = _discovery.read_index(path) if enabled else None
        #: Distributions left out because their entry points cannot be read.
        self.broken = index.problems if index is not None else []
        for broken in self.broken:
            _report(broken)
        self.group = group
        self.pins = dict(pins or {})
        #: The file each entry point of a plugin directory comes from.
        self.locations = dict(directories)
        rows = index.rows(group) if index is not None else []
        #: Class and function entry points by name: plugin directories', then
        #: ``sys.path``'s; module entry points, whose import registers plugins.
        self.by_name, self.modules = _discovery.by_name([*self.locations, *rows])
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
        if len({canonical(e.distribution) for e in eps}) > 1:
            providers = sorted({f"{e.distribution} {e.version}" for e in eps})
            return PluginConflictError(name, self.group, providers)
        try:
            check_name(name)
        except InvalidPluginError as exc:
            return load_error(eps[0], str(exc))
        if not eps[0].distribution:
            return load_error(
                eps[0], f"its metadata in {eps[0].path} names no distribution (no METADATA?)"
            )
        invalid = next((e for e in eps if parse_version(e.version) is None), None)
        if invalid is not None:
            return load_error(invalid, f"its distribution's version {invalid.version!r} is invalid")
        pin = self.pins.get(name)
        if pin is not None and not any(c.chosen for c in self.versions(name)):
            return VersionNotFoundError(name, self.group, pin, [e.version for e in eps])
        return None

    def versions(self, name: str, ranges: Sequence[_versions.Range] = ()) -> list[Candidate]:
        """Every version of entry point ``name``, newest first, saying which is chosen and why."""
        options = [self.candidate_of(ep) for ep in self.by_name[name]]
        return _versions.choose(options, self.pins.get(name), ranges)

    def candidate(
        self,
        name: str,
        ranges: Sequence[_versions.Range] = (),
        state: PluginState = PluginState.DISCOVERED,
    ) -> Candidate:
        """The chosen version of entry point ``name``, from the metadata alone."""
        eps = self.by_name[name]
        if len(eps) == 1 and name not in self.pins:
            return self.candidate_of(eps[0], state=state)
        found = self.versions(name, ranges)
        chosen = next((c for c in found if c.chosen), found[0])
        return chosen if state is PluginState.DISCOVERED else evolve(chosen, state=state)

    def candidate_of(
        self,
        ep: EntryPoint,
        location: str | None = None,
        state: PluginState = PluginState.DISCOVERED,
    ) -> Candidate:
        """The candidate of one entry point (of a plugin directory's ``location``, if given)."""
        name = ep.name
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
            location=location or self.locations.get(ep),
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
