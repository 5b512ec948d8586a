"""Importing what a candidate names, after the trust gate has admitted it.

Each function takes a candidate (or an entry point) and returns a new value,
or raises the error that fails it; none keeps state.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from . import _log
from ._admission import admitted
from ._candidate import Candidate
from ._discovery import EntryPoint
from ._model import ZERO, PluginInfo
from ._policy import Gate
from ._registry import Registry, info_for, origin_of
from ._sources import load_error, parse_version
from ._value import evolve
from .exceptions import PluginConflictError, PluginLoadError, SignatureError

log = _log.Logger("plugyard")


def import_module(ep: EntryPoint, gate: Gate) -> None:
    """Verify and import a module entry point's module, whose import registers plugins.

    Raises:
        SignatureError: the trust policy refuses its distribution, or the
            verified importer refused a module while importing it.
        PluginLoadError: the import raised.
    """
    ep = admitted(gate, ep.name, ep)
    try:
        importlib.import_module(ep.module)
    except SignatureError as exc:
        exc.plugin = ep.name
        raise
    except Exception as exc:
        raise load_error(ep, f"{type(exc).__name__}: {exc}") from exc


def _import_object(ep: EntryPoint, plugin: str) -> object:
    try:
        obj: object = importlib.import_module(ep.module)
        for part in (ep.attr or "").split("."):
            obj = getattr(obj, part)
    except SignatureError as exc:
        # The verified importer refused a module on the way: tampering, not a bug.
        exc.plugin = plugin
        raise
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
    the version (the verified one, when the trust gate verified it); a
    ``@register`` on the object may add dependencies.

    Raises:
        SignatureError: the trust policy refuses its distribution.
        PluginLoadError: the import failed, or it names something that is no plugin.
        PluginConflictError: code registered another plugin under this name.
        InvalidPluginError: its declaration is invalid.
    """
    ep = candidate.entry_point
    assert ep is not None  # noqa: S101 - only entry points are loaded
    ep = admitted(gate, candidate.name, ep)
    started = time.perf_counter()
    target = _import_object(ep, candidate.name)
    if record_import is not None:
        record_import(time.perf_counter() - started)
    name = candidate.name
    if name in registry and registry.target(name) is not target and _counts(registry, name, gate):
        raise PluginConflictError(
            name, candidate.group, [f"{ep.distribution} {ep.version}", registry.info(name).origin]
        )
    declared = registry.find(target)
    if declared is None:
        # Built with the distribution's version and name at once, not bound after.
        origin = origin_of(target)
        info = info_for(
            target,
            group=candidate.group,
            name=name,
            version=parse_version(ep.version) or ZERO,
            distribution=ep.distribution,
            origin=ep.value if origin == ep.value else origin,
        )
    elif declared.name != name:
        raise load_error(
            ep,
            f"the object is registered as {declared.name!r}; an entry point's "
            "name must be the plugin's name",
        )
    else:
        info = bind(declared, ep)
    return evolve(
        candidate,
        info=info,
        target=target,
        version=ep.version,
        entry_point=ep,
    )


def _counts(registry: Registry, name: str, gate: Gate) -> bool:
    """Whether what code registered under ``name`` may stand against an installed plugin.

    Code the trust policy may not credit with the plugin (unverified code
    registering a name that must be verified) cannot displace it.
    """
    try:
        gate.credit(registry.info(name), registry.registrant(name))
    except SignatureError as refused:
        log.warning("ignoring the registration of %r: %s", name, refused)
        return False
    return True


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
    # The entry point's value names the object as its origin does, mostly:
    # then one string serves both.
    origin = ep.value if info.origin == ep.value else info.origin
    return evolve(info, version=version, distribution=ep.distribution, origin=origin)


def credit(candidate: Candidate, distribution: str, version: str | None) -> Candidate:
    """A registered candidate credited to the distribution whose code registered it.

    Raises:
        PluginLoadError: the plugin declares a version other than its distribution's.
    """
    info = candidate.info
    parsed = parse_version(version or "") or ZERO
    if info.version != ZERO and info.version != parsed:
        raise PluginLoadError(
            info.name,
            info.origin,
            f"{distribution} {version}",
            f"the plugin declares version {info.version}, but its distribution is "
            f"{distribution} {version}; drop version= from register()",
        )
    info = evolve(info, version=parsed, distribution=distribution)
    return evolve(candidate, info=info, version=str(parsed), distribution=distribution)


def bind_registered(candidate: Candidate, ep: EntryPoint) -> Candidate:
    """A registered candidate credited to the module entry point whose import registered it.

    Raises:
        PluginLoadError: as :func:`bind`.
    """
    info = bind(candidate.info, ep)
    return evolve(candidate, info=info, version=str(info.version), distribution=ep.distribution)
