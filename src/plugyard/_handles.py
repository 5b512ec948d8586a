"""What callers hold: a :class:`PluginHandle`, and the callables its ``execute`` becomes.

A handle call takes no lock. Its ``execute`` attribute *is* the callable the
call should reach, replaced (atomically) as the plugin changes state. While
the plugin is active that callable is :func:`counted`: it keeps the number
of calls in flight in a list (``append`` and ``pop`` are atomic), so that a
teardown can wait for them; once a teardown starts, a call that picked up
the old callable is sent to whatever the handle holds by then instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol

from ._introspect import isawaitable, iscoroutinefunction
from ._metrics import NO_ARGUMENT, PluginMetrics
from ._model import PluginInfo, PluginState
from ._public import present_top_level as _present_top_level
from ._value import Value
from .exceptions import PluginError, PluginNotFoundError

#: The argument of a call made without one: the plugin's method is then called with none.
MISSING: Any = NO_ARGUMENT

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    #: What a manager's plugins implement: its ``interface``, or anything.
    T = TypeVar("T", default=Any)
else:
    from typing import TypeVar

    T = TypeVar("T")


class SlotView(Protocol):
    """What a handle reads of the runtime state of its plugin."""

    @property
    def state(self) -> PluginState: ...

    @property
    def info(self) -> PluginInfo: ...

    @property
    def instance(self) -> Any: ...

    def refusal(self) -> PluginError: ...


class PluginHandle(Generic[T]):
    """What callers hold to use one plugin; the same object for the manager's life.

    ``handle.execute(data)`` calls the plugin's ``execute``. The attribute is
    replaced as the plugin changes state rather than checked on each call:
    before the first use it loads the plugin; while active it calls the
    plugin's own method, counting the call (and its metrics, unless the
    manager was made with ``metrics=False``) so that an unload waits for it;
    once failed or unloaded it raises :class:`PluginNotActiveError`; if the
    plugin is gone (uninstalled, then :meth:`PluginManager.rescan`) it raises
    :class:`PluginNotFoundError`. For a plugin whose ``execute`` is
    ``async def``, it returns an awaitable.

    Attributes:
        name: The plugin's name.
        group: The plugin's group.
        execute: Call the plugin with one argument (or none).
    """

    __slots__ = ("_call", "_slot", "execute", "group", "name")

    execute: Callable[..., Any]
    _call: Callable[[str, tuple[Any, ...], dict[str, Any]], Any]

    def __init__(self, name: str, group: str) -> None:
        self.name = name
        self.group = group
        self._slot: SlotView | None = None
        self.execute = self._gone
        self._call = self._gone_call

    def _gone(self, data: Any = MISSING, /) -> Any:
        raise PluginNotFoundError(self.name, self.group)

    def _gone_call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise PluginNotFoundError(self.name, self.group)

    def _attach(self, slot: SlotView | None) -> None:
        """Make ``slot`` the runtime state this handle reads; ``None`` when the plugin is gone."""
        self._slot = slot
        if slot is None:
            self.execute = self._gone
            self._call = self._gone_call

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the plugin's method ``method`` with any arguments, as :attr:`execute` is called.

        The call loads the plugin if needed, counts in its metrics and is
        waited for by an unload, like :attr:`execute`; an ``async def``
        method gives an awaitable.

        Raises:
            PluginError: the plugin has no such method.
            PluginNotActiveError: the plugin failed or was unloaded.
            PluginNotFoundError: the plugin is gone.
        """
        return self._call(method, args, kwargs)

    def _view(self) -> SlotView:
        slot = self._slot
        if slot is None:
            raise PluginNotFoundError(self.name, self.group)
        return slot

    @property
    def state(self) -> PluginState:
        """The plugin's current state.

        Raises:
            PluginNotFoundError: the plugin is gone.
        """
        return self._view().state

    @property
    def info(self) -> PluginInfo:
        """The plugin's :class:`PluginInfo`.

        Raises:
            PluginNotFoundError: the plugin is gone.
        """
        return self._view().info

    @property
    def instance(self) -> T:
        """The plugin's active instance (typed as the manager's ``interface``).

        Raises:
            PluginNotActiveError: the plugin is not active.
            PluginNotFoundError: the plugin is gone.
        """
        slot = self._view()
        if slot.state is not PluginState.ACTIVE:
            raise slot.refusal()
        instance: T = slot.instance
        return instance

    def __repr__(self) -> str:
        slot = self._slot
        return f"<PluginHandle {self.name!r} {'gone' if slot is None else slot.state}>"


def counted(
    handle: PluginHandle,
    method: Callable[..., Any],
    calls: list[None],
    metrics: PluginMetrics | None = None,
) -> tuple[Callable[..., Any], list[bool]]:
    """A callable for ``handle.execute`` that calls ``method``, counted in ``calls``.

    With ``metrics`` the same callable records the call's metrics too (one
    wrapper, not two).

    Returns:
        The callable and its ``closed`` flag. Once the flag's only item is
        true, a call that reaches this callable is passed on to whatever
        ``handle.execute`` is by then (set it before the flag), so that no
        new call reaches ``method``.
    """
    closed = [False]
    redirect = _redirect(handle)
    if metrics is not None:
        return metrics.wrap_guarded(method, calls, closed, redirect), closed
    return _counted(method, calls, closed, redirect), closed


def _redirect(handle: PluginHandle) -> Callable[[Any], Any]:
    """Pass a call on to whatever ``handle.execute`` is when it is made."""

    def redirect(data: Any) -> Any:
        return handle.execute() if data is MISSING else handle.execute(data)

    return redirect


def _counted(
    method: Callable[..., Any],
    calls: list[None],
    closed: list[bool],
    redirect: Callable[[Any], Any],
) -> Callable[..., Any]:
    # A function of its own: the cells of a closure are made when the function
    # that holds them starts, so a wrapper with metrics does not pay for these.
    enter = calls.append
    leave = calls.pop

    if iscoroutinefunction(method):

        async def call_async(data: Any = MISSING, /) -> Any:
            enter(None)
            if closed[0]:
                leave()
                result = redirect(data)
                return (await result) if isawaitable(result) else result
            try:
                return await (method() if data is MISSING else method(data))
            finally:
                leave()

        return call_async

    def call(data: Any = MISSING, /) -> Any:
        enter(None)
        if closed[0]:
            leave()
            return redirect(data)
        try:
            return method() if data is MISSING else method(data)
        finally:
            leave()

    return call


def lazy(
    name: str, load: Callable[[str], PluginHandle]
) -> tuple[Callable[..., Any], Callable[[str, tuple[Any, ...], dict[str, Any]], Any]]:
    """The callables of a handle whose plugin is not loaded: load it with ``load``, then call."""

    def load_then_execute(data: Any = MISSING, /) -> Any:
        handle = load(name)
        return handle.execute() if data is MISSING else handle.execute(data)

    def load_then_call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return load(name).call(method, *args, **kwargs)

    return load_then_execute, load_then_call


def refusing(slot: SlotView) -> Callable[..., Any]:
    """A callable for ``handle.execute`` that raises why the plugin cannot be called."""

    def refuse(data: Any = MISSING, /) -> Any:
        raise slot.refusal()

    return refuse


def refusing_call(slot: SlotView) -> Callable[[str, tuple[Any, ...], dict[str, Any]], Any]:
    """The same refusal, for :meth:`PluginHandle.call`."""

    def refuse(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise slot.refusal()

    return refuse


def method_caller(
    handle: PluginHandle,
    instance: object,
    calls: list[None],
    closed: list[bool],
    metrics: PluginMetrics | None,
) -> Callable[[str, tuple[Any, ...], dict[str, Any]], Any]:
    """What :meth:`PluginHandle.call` runs while the plugin is active: counted, like ``execute``.

    ``closed`` is the flag of the handle's ``execute`` callable: once it is
    set, a call is passed on to whatever the handle holds by then.
    """
    # A partial, not a closure: two objects per loaded plugin for the
    # collector to walk instead of a function and five cells.
    return functools.partial(_invoke, handle, instance, calls, closed, metrics)


def _invoke(
    handle: PluginHandle,
    instance: object,
    calls: list[None],
    closed: list[bool],
    metrics: PluginMetrics | None,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    calls.append(None)
    if closed[0]:
        calls.pop()
        return handle.call(method, *args, **kwargs)
    fn = getattr(instance, method, None) if not method.startswith("_") else None
    if fn is None or not callable(fn):
        calls.pop()
        raise PluginError(f"plugin {handle.name!r} has no method {method}()", plugin=handle.name)
    if iscoroutinefunction(fn):
        calls.pop()
        return _counted_await(handle, method, fn, args, kwargs, calls, closed, metrics)
    try:
        return fn(*args, **kwargs) if metrics is None else metrics.measure(fn, args, kwargs)
    finally:
        calls.pop()


async def _counted_await(
    handle: PluginHandle,
    method: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    calls: list[None],
    closed: list[bool],
    metrics: PluginMetrics | None,
) -> Any:
    # Counted from when it runs: a teardown may have closed the handle since.
    calls.append(None)
    if closed[0]:
        calls.pop()
        result = handle.call(method, *args, **kwargs)
        return (await result) if isawaitable(result) else result
    try:
        if metrics is None:
            return await fn(*args, **kwargs)
        return await metrics.measure(fn, args, kwargs)
    finally:
        calls.pop()


def no_execute(name: str) -> Callable[..., Any]:
    """The method of a plugin without ``execute``: calling it says so."""

    def refuse(data: Any = MISSING, /) -> Any:
        raise PluginError(f"plugin {name!r} has no execute() method", plugin=name)

    return refuse


class MapResult(Value):
    """What one plugin answered to :meth:`PluginManager.map`.

    Attributes:
        plugin: The plugin's name.
        value: What the method returned (``None`` if it raised).
        error: What the method raised, or ``None``.
    """

    __slots__ = ("error", "plugin", "value")

    plugin: str
    value: Any
    error: BaseException | None

    def __init__(self, plugin: str, value: Any = None, error: BaseException | None = None) -> None:
        object.__setattr__(self, "plugin", plugin)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "error", error)

    @property
    def ok(self) -> bool:
        """Whether the method returned."""
        return self.error is None

    def unwrap(self) -> Any:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
