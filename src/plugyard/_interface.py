"""Interface contracts: whether a plugin has the methods a host expects.

A host names an interface (a :class:`typing.Protocol` or an ABC) and each
plugin is checked against it before it is set up: every method the interface
requires is there, ``async def`` where the interface's is and plain where it
is not, and takes the positional arguments the interface passes. Nothing is
called; the check reads signatures only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
# Names every class has, or that typing adds to protocols: never part of a contract.
_IGNORED = frozenset(dir(object)) | {"__init__", "__init_subclass__", "__class_getitem__"}


def required_methods(interface: type[Any]) -> dict[str, Callable[..., Any]]:
    """The methods ``interface`` requires, by name, as the interface defines them.

    For a protocol: every public method defined on it or its protocol bases.
    For any other class (an ABC): its abstract methods.
    """
    found: dict[str, Callable[..., Any]] = {}
    if getattr(interface, "_is_protocol", False):
        for base in reversed(interface.__mro__):
            if base is object or not getattr(base, "_is_protocol", False):
                continue
            if base.__module__ == "typing":
                continue  # Protocol and Generic themselves
            for name, value in vars(base).items():
                if name.startswith("_") or name in _IGNORED:
                    continue
                function = (
                    value.__func__ if isinstance(value, classmethod | staticmethod) else value
                )
                if callable(function):
                    found[name] = function
        return found
    for name in sorted(getattr(interface, "__abstractmethods__", ())):
        value = inspect.getattr_static(interface, name)
        function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        if callable(function):
            found[name] = function
    return found


def _positional(function: Callable[..., Any], *, bound: bool) -> tuple[int, float] | None:
    """How many positional arguments ``function`` takes: (required, at most); None if unknown."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if bound and params and params[0].kind in _POSITIONAL:
        params = params[1:]  # self
    positional = [p for p in params if p.kind in _POSITIONAL]
    required = sum(1 for p in positional if p.default is p.empty)
    most: float = len(positional)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        most = float("inf")
    return required, most


def problems(target: object, interface: type[Any]) -> list[str]:
    """What keeps the plugin ``target`` (a class, or a function plugin) from fitting ``interface``.

    A function plugin has one method, ``execute``: the function itself.

    Returns:
        One line per problem, in the order of the interface's methods; empty
        when the plugin fits.
    """
    found: list[str] = []
    is_class = inspect.isclass(target)
    for name, wanted in required_methods(interface).items():
        if is_class:
            have = inspect.getattr_static(target, name, None)
            if isinstance(have, classmethod | staticmethod):
                bound_have, have = isinstance(have, classmethod), have.__func__
            else:
                bound_have = True
        else:
            have = target if name == "execute" else None
            bound_have = False
        if have is None or not callable(have):
            found.append(f"it has no method {name}()")
            continue
        if inspect.iscoroutinefunction(wanted) != inspect.iscoroutinefunction(have):
            kind = "async def" if inspect.iscoroutinefunction(wanted) else "a plain def (not async)"
            found.append(f"{name}() must be {kind}, as the interface declares it")
        passes = _positional(wanted, bound=True)
        takes = _positional(have, bound=bound_have)
        if passes is None or takes is None:
            continue
        if takes[0] > passes[0] or takes[1] < passes[1]:
            found.append(
                f"{name}() takes {_count(takes)} positional arguments; "
                f"the interface passes {_count(passes)}"
            )
    return found


def _count(span: tuple[int, float]) -> str:
    low, high = span
    if high == float("inf"):
        return f"{low} or more"
    return str(low) if low == high else f"{low} to {int(high)}"
