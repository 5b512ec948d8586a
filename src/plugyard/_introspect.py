"""inspect's answers to what a first call asks, without importing inspect.

``import inspect`` brings ast, dis, tokenize and linecache: about 8 ms of a
cold start, a sixth of a first call. A first call asks three things of a
plugin: is this method ``async def``, is this result awaitable, and what is
the first line of its docstring. For what plugins are made of (functions,
bound methods, partials of them, classes) they are answered here the way
inspect answers them; anything else is handed to inspect itself, so the
answer is always inspect's.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Awaitable
from typing import Any

# inspect.CO_COROUTINE and inspect.CO_ITERABLE_COROUTINE (the code flags).
_CO_COROUTINE = 0x80
_CO_ITERABLE_COROUTINE = 0x100


def iscoroutinefunction(obj: object) -> bool:
    """``inspect.iscoroutinefunction(obj)``."""
    imported = sys.modules.get("inspect")
    if imported is None:
        # Unimported, inspect cannot have marked a function as a coroutine
        # function (markcoroutinefunction), so the code's flag decides.
        function = obj
        while isinstance(function, types.MethodType):
            function = function.__func__
        while isinstance(function, functools.partial):
            function = function.func
        if isinstance(function, types.FunctionType):
            return bool(function.__code__.co_flags & _CO_COROUTINE)
        if isinstance(function, type | types.BuiltinFunctionType):
            return False
    import inspect

    return bool(inspect.iscoroutinefunction(obj))


def isawaitable(obj: object) -> bool:
    """``inspect.isawaitable(obj)``: a coroutine, a generator-based coroutine, or an awaitable."""
    return (
        isinstance(obj, types.CoroutineType)
        or (
            isinstance(obj, types.GeneratorType)
            and bool(obj.gi_code.co_flags & _CO_ITERABLE_COROUTINE)
        )
        or isinstance(obj, Awaitable)
    )


def summary(obj: Any) -> str:
    """The first line of the docstring of a class or routine, cleaned as ``inspect.cleandoc``.

    ``""`` when it has none, or when ``obj`` is neither a class nor a routine
    (an instance's docstring is its class's, which says nothing of it).
    """
    if isinstance(obj, type | types.FunctionType):
        doc = obj.__doc__
    else:
        import inspect

        doc = obj.__doc__ if inspect.isroutine(obj) else None
    if not isinstance(doc, str) or not doc:
        return ""
    # cleandoc keeps the first line, its leading spaces removed, whenever it
    # has text; which other leading whitespace it removes differs by version.
    first = doc.partition("\n")[0].expandtabs().lstrip(" ")
    if first and not first[0].isspace():
        return first
    import inspect

    return inspect.cleandoc(doc).partition("\n")[0]
