"""Choosing among several versions of one plugin: a pure function over candidates.

Several versions of a plugin may be present: two wheels in plugin
directories, or a directory's beside an installed distribution. The newest
version allowed wins. A pin (``versions={"tokenize": "==1.1"}``) allows only
the versions it names; the ``depends_on`` ranges of the plugins being loaded
narrow the choice further, unless no version satisfies them (the newest
version the pin allows is then chosen, and the resolver reports the range
that fails). Between copies of one version, the first found wins: plugin
directories in the order given, then installed distributions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from ._candidate import Candidate
from ._value import evolve
from .exceptions import InvalidPluginError

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

#: A range a plugin being loaded puts on the version: ``(its name, the specifier)``.
Range = tuple[str, str]


def parse_pins(pins: Mapping[str, str] | None) -> dict[str, str]:
    """Check ``versions=``: plugin names mapped to PEP 440 specifiers.

    Raises:
        InvalidPluginError: a specifier is invalid.
    """
    if not pins:
        return {}
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    checked = {}
    for name, spec in pins.items():
        try:
            SpecifierSet(spec)
        except (InvalidSpecifier, TypeError):
            raise InvalidPluginError(
                spec, f"versions[{name!r}] is not a PEP 440 range like '==1.1'", plugin=name
            ) from None
        checked[name] = spec
    return checked


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def _specifier(spec: str) -> SpecifierSet:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(spec)


def _describe(ranges: Sequence[Range]) -> str:
    return " and ".join(f"the range of {who} ({spec})" for who, spec in ranges)


def choose(
    candidates: Sequence[Candidate], pin: str | None = None, ranges: Sequence[Range] = ()
) -> list[Candidate]:
    """Every candidate, newest first, with ``chosen`` and ``why`` set.

    Args:
        candidates: The versions of one plugin, in the order they were
            found (the first copy of a version wins).
        pin: The specifier ``versions=`` gives the plugin, if any.
        ranges: The ranges the plugins being loaded put on it.

    Returns:
        The candidates sorted newest first (found order among equal
        versions). At most one is chosen: none when the pin allows none.
        With a single candidate and no pin it is returned as it is.
    """
    if len(candidates) == 1 and pin is None and not ranges:
        return list(candidates)
    ordered = sorted(candidates, key=lambda c: _version(c.version), reverse=True)
    versions = [_version(c.version) for c in ordered]
    pinned = _specifier(pin) if pin is not None else None
    specs = [(who, spec, _specifier(spec)) for who, spec in ranges if spec]
    in_pin = [pinned is None or pinned.contains(v, prereleases=True) for v in versions]
    fits = [
        [(who, spec) for who, spec, s in specs if not s.contains(v, prereleases=True)]
        for v in versions
    ]
    allowed = [p and not out for p, out in zip(in_pin, fits, strict=True)]
    if any(allowed):
        pick = allowed.index(True)
    elif any(in_pin):
        pick = in_pin.index(True)
    else:
        pick = None
    found: list[Candidate] = []
    for index, candidate in enumerate(ordered):
        if index == pick:
            why = _chosen_why(pin, [(w, s) for w, s, _ in specs], fits[index], index == 0)
        elif not in_pin[index]:
            why = f"excluded by the pin {pin}"
        elif fits[index]:
            why = f"outside {_describe(fits[index])}"
        elif pick is not None and versions[index] == versions[pick]:
            why = (
                f"a copy of {candidate.version}; the first one found ({_place(ordered[pick])}) wins"
            )
        else:
            newer = ordered[pick].version if pick is not None else ordered[0].version
            why = f"older than {newer}"
        found.append(evolve(candidate, chosen=index == pick, why=why))
    return found


def _chosen_why(pin: str | None, ranges: list[Range], broken: list[Range], newest: bool) -> str:
    if broken:
        return (
            f"newest allowed by the pin {pin}; no version is in {_describe(broken)}"
            if pin is not None
            else f"newest; no version is in {_describe(broken)}"
        )
    rules = []
    if pin is not None:
        rules.append(f"the pin {pin}")
    if ranges and not newest:
        rules.append(_describe(ranges))
    if not rules or (newest and pin is None):
        return "newest version"
    return f"newest allowed by {' and '.join(rules)}"


def _place(candidate: Candidate) -> str:
    return candidate.location or f"installed, {candidate.distribution}"
