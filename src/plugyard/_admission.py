"""Admitting one installed entry point for import: what the gate cannot verify, then the gate.

The trust gate verifies a ``.dist-info`` directory on disk. An entry point
whose distribution is laid out otherwise (in a zip file on ``sys.path``,
served by a ``sys.meta_path`` finder, an egg, an ``.egg-info`` directory)
cannot be verified at all: under ``require`` it is refused here, before the
gate is asked, with a problem that says so; under ``warn`` it is imported
and logged.
"""

from __future__ import annotations

from . import _log
from ._discovery import EGG, EGG_INFO, FINDER, ZIP, EntryPoint
from ._policy import Gate
from .exceptions import SignatureError

log = _log.Logger("plugyard")

_WHERE = {
    ZIP: "a zip file on sys.path",
    FINDER: "a sys.meta_path finder",
    EGG: "an .egg",
    EGG_INFO: "an .egg-info directory (a legacy or development install)",
}


def unverifiable(ep: EntryPoint, plugin: str) -> SignatureError:
    """The refusal of an entry point whose distribution cannot be verified."""
    from .trust import Problem, ProblemKind

    where = _WHERE.get(ep.layout, f"a {ep.layout}")
    problem = Problem(
        ProblemKind.NOT_FOUND,
        f"is provided by {where}, whose files cannot be verified before import: only a "
        ".dist-info directory on disk can; install it from a signed wheel",
        ep.path,
    )
    return SignatureError(ep.distribution or ep.path, [problem], plugin=plugin)


def admit(gate: Gate, plugin: str, ep: EntryPoint) -> SignatureError | None:
    """Whether ``plugin``'s entry point ``ep`` may be imported under the gate's policy.

    Returns:
        ``None`` to import it; otherwise the error that refuses it.
    """
    try:
        admitted(gate, plugin, ep)
    except SignatureError as error:
        return error
    return None


def admitted(gate: Gate, plugin: str, ep: EntryPoint) -> EntryPoint:
    """Admit ``plugin``'s entry point ``ep``: refuse what cannot be verified, then ask the gate.

    Returns:
        The entry point to import (with the verified version, once verified).

    Raises:
        SignatureError: the policy requires a signature and ``ep`` cannot be,
            or is not, verified.
    """
    mode = gate.policy.mode_for(gate.group, plugin)
    if mode != "off" and not ep.verifiable:
        error = unverifiable(ep, plugin)
        if mode == "require":
            raise error
        log.warning(
            "plugin %r imported unverified (trust mode 'warn'): %s", plugin, error.problems[0]
        )
        return ep
    return gate.admit(plugin, ep)
