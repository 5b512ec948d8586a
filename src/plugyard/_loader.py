"""Importing what a candidate names, after the trust gate has admitted it.

Each function takes a candidate (or an entry point) and returns a new value,
or raises the error that fails it; none keeps state.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable

import attrs

from ._candidate import Candidate
from ._discovery import EntryPoint
from ._model import PluginInfo
from ._policy import Gate
from ._registry import Registry, info_for
from ._sources import ZERO, load_error, parse_version
from .exceptions import PluginConflictError


def import_module(ep: EntryPoint, gate: Gate) -> None:
    """Verify and import a module entry point's module, whose import registers plugins.

    Raises:
        SignatureError: the trust policy refuses its distribution.
        PluginLoadError: the import raised.
    """
    refused = gate.check(ep.name, ep.distribution, ep.path)
    if refused is not None:
        raise refused
    try:
        importlib.import_module(ep.module)
    except Exception as exc:
        raise load_error(ep, f"{type(exc).__name__}: {exc}") from exc


def _import_object(ep: EntryPoint) -> object:
    try:
        obj: object = importlib.import_module(ep.module)
        for part in (ep.attr or "").split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise load_error(ep, f"{type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise load_error(ep, f"it names a {type(obj).__name__}, not a class or function")
    return obj


def load(
    candidate: Candidate,
    registry: Registry,
    gate: Gate,
    record_import: Callable[[float], None] | None = None,
) -> Candidate:
    """Import an entry point's class or function; the candidate with its target and info.

    The entry point's name is the plugin's name and its distribution gives
    the version; a ``@register`` on the object may add dependencies.

    Raises:
        SignatureError: the trust policy refuses its distribution.
        PluginLoadError: the import failed, or it names something that is no plugin.
        PluginConflictError: code registered another plugin under this name.
        InvalidPluginError: its declaration is invalid.
    """
    ep = candidate.entry_point
    assert ep is not None  # noqa: S101 - only entry points are loaded
    refused = gate.check(candidate.name, ep.distribution, ep.path)
    if refused is not None:
        raise refused
    started = time.perf_counter()
    target = _import_object(ep)
    if record_import is not None:
        record_import(time.perf_counter() - started)
    name = candidate.name
    if name in registry and registry.target(name) is not target:
        raise PluginConflictError(
            name, candidate.group, [f"{ep.distribution} {ep.version}", registry.info(name).origin]
        )
    declared = registry.find(target)
    if declared is None:
        declared = info_for(target, group=candidate.group, name=name)
    elif declared.name != name:
        raise load_error(
            ep,
            f"the object is registered as {declared.name!r}; an entry point's "
            "name must be the plugin's name",
        )
    return attrs.evolve(candidate, info=bind(declared, ep), target=target)


def bind(info: PluginInfo, ep: EntryPoint) -> PluginInfo:
    """``info`` credited to the distribution of ``ep``, with that distribution's version.

    Raises:
        PluginLoadError: the plugin declares a version other than its distribution's.
    """
    version = parse_version(ep.version) or ZERO
    if info.version != ZERO and info.version != version:
        raise load_error(
            ep,
            f"the plugin declares version {info.version}, but its distribution is "
            f"{ep.distribution} {ep.version}; drop version= from register()",
        )
    return attrs.evolve(info, version=version, distribution=ep.distribution)


def bind_registered(candidate: Candidate, ep: EntryPoint) -> Candidate:
    """A registered candidate credited to the module entry point whose import registered it.

    Raises:
        PluginLoadError: as :func:`bind`.
    """
    info = bind(candidate.info, ep)
    return attrs.evolve(
        candidate, info=info, version=str(info.version), distribution=ep.distribution
    )
