"""What callers hold: a :class:`PluginHandle`, and the gates its ``execute`` reaches.

A handle call takes no lock. Its ``execute`` attribute *is* the callable the
call should reach, replaced (atomically) as the plugin changes state. While
the plugin is active that callable is a bound method of a :class:`Gate`: it
keeps the number of calls in flight in a list (``append`` and ``pop`` are
atomic), so that a teardown can wait for them; once a teardown starts, a
call that picked up the old callable is sent to whatever the handle holds
by then instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast

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


class Gate:
    """What an active plugin's handle calls: its instance's methods, each call counted.

    The handle's ``execute`` and ``_call`` are this gate's bound methods for
    as long as this activation lasts. A call is kept in ``calls`` while it
    runs (``append`` and ``pop`` are atomic), so that a teardown can wait for
    it. Once :attr:`closed` is set (after the handle was pointed elsewhere),
    a call that picked up these methods is passed on to whatever the handle
    holds by then, so that no new call reaches the instance.

    One object per activation holds what the calls read, rather than a
    closure and its cells per callable: a loaded plugin holds a third of the
    objects it did, for the collector to walk and for memory.

    Args:
        handle: The handle whose calls this gate answers.
        instance: The plugin's active instance (what :meth:`call` looks methods up on).
        method: What :meth:`execute` calls: the instance's ``execute``.
        calls: Where the calls in flight are counted.
    """

    __slots__ = ("calls", "closed", "handle", "instance", "method")

    def __init__(
        self, handle: PluginHandle, instance: object, method: Callable[..., Any], calls: list[None]
    ) -> None:
        self.handle = handle
        self.instance = instance
        self.method = method
        self.calls = calls
        self.closed = False

    def execute(self, data: Any = MISSING, /) -> Any:
        """Call the instance's ``execute`` with ``data`` (or with nothing)."""
        calls = self.calls
        calls.append(None)
        if self.closed:
            calls.pop()
            return self._redirect(data)
        method = self.method  # read, then called: a slot's value is no method to bind
        try:
            return method() if data is MISSING else method(data)
        finally:
            calls.pop()

    def _redirect(self, data: Any) -> Any:
        execute = self.handle.execute
        return execute() if data is MISSING else execute(data)

    async def _redirect_awaited(self, data: Any) -> Any:
        """:meth:`_redirect` from an ``async def`` gate: what the handle holds now may be sync."""
        result = self._redirect(data)
        return (await result) if isawaitable(result) else result

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the instance's method ``method`` (what :meth:`PluginHandle.call` runs)."""
        calls = self.calls
        calls.append(None)
        if self.closed:
            calls.pop()
            return self.handle.call(method, *args, **kwargs)
        fn = self._method(method)
        if iscoroutinefunction(fn):
            calls.pop()
            return self._awaited(method, fn, args, kwargs)
        try:
            return self._run(fn, args, kwargs)
        finally:
            calls.pop()

    def _method(self, method: str) -> Callable[..., Any]:
        """The instance's public method ``method``; the call is counted until it raises."""
        fn = getattr(self.instance, method, None) if not method.startswith("_") else None
        if fn is None or not callable(fn):
            self.calls.pop()
            name = self.handle.name
            raise PluginError(f"plugin {name!r} has no method {method}()", plugin=name)
        return cast("Callable[..., Any]", fn)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return fn(*args, **kwargs)

    async def _awaited(
        self, method: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Counted from when it runs: a teardown may have closed the gate since.
        calls = self.calls
        calls.append(None)
        if self.closed:
            calls.pop()
            result = self.handle.call(method, *args, **kwargs)
            return (await result) if isawaitable(result) else result
        try:
            return await self._run(fn, args, kwargs)
        finally:
            calls.pop()


class AsyncGate(Gate):
    """A :class:`Gate` for an instance whose ``execute`` is ``async def``: it gives an awaitable."""

    __slots__ = ()

    async def execute(self, data: Any = MISSING, /) -> Any:
        """Await the instance's ``execute`` with ``data`` (or with nothing)."""
        calls = self.calls
        calls.append(None)
        if self.closed:
            calls.pop()
            return await self._redirect_awaited(data)
        method = self.method
        try:
            return await (method() if data is MISSING else method(data))
        finally:
            calls.pop()


class MeteredGate(Gate):
    """A :class:`Gate` that records each call in a plugin's metrics too.

    Every call is counted once it returns or raises; one that raises (any
    :class:`BaseException`) counts as an error and becomes the last error.
    A call passed on after the gate closed counts nowhere here.

    Args:
        handle: As for :class:`Gate`.
        instance: As for :class:`Gate`.
        method: As for :class:`Gate`.
        calls: As for :class:`Gate`.
        recorder: The metrics the calls are recorded in.
    """

    __slots__ = ("clock", "local", "recorder")

    def __init__(
        self,
        handle: PluginHandle,
        instance: object,
        method: Callable[..., Any],
        calls: list[None],
        recorder: PluginMetrics,
    ) -> None:
        super().__init__(handle, instance, method, calls)
        self.recorder = recorder
        self.clock = recorder._clock
        # The recorder's thread-local store is made by the first call, not
        # here: a thousand plugins loaded and not called hold none. Until then
        # ``local`` is None, whose missing ``slot`` takes the path of a
        # thread's first call.
        self.local = recorder._local

    def execute(self, data: Any = MISSING, /) -> Any:
        """Call the instance's ``execute`` with ``data`` (or with nothing), recording the call."""
        # The slot layout (see _metrics) is spelt with literal indexes, the
        # bucket index is inlined and the bookkeeping is written out twice
        # rather than in a finally block: each saves a measurable part of the
        # overhead. A call is counted (its bucket) before its error, so that
        # a copy of the slot never holds more errors than calls. ``calls``
        # holds the call from before the closed check to after the
        # bookkeeping, so a drain sees it whole.
        calls = self.calls
        calls.append(None)
        if self.closed:
            calls.pop()
            return self._redirect(data)
        try:
            slot = self.local.slot  # type: ignore[union-attr]
        except AttributeError:
            slot = self._thread_slot()
        method, clock = self.method, self.clock
        slot[0] += 1
        start = clock()
        try:
            result = method() if data is MISSING else method(data)
        except BaseException as exc:
            elapsed = clock() - start
            slot[2] += elapsed
            slot[(elapsed - 1).bit_length() + 3] += 1
            slot[1] += 1
            calls.pop()
            self.recorder._note_error(exc)
            raise
        elapsed = clock() - start
        slot[2] += elapsed
        slot[(elapsed - 1).bit_length() + 3] += 1
        calls.pop()
        return result

    def _thread_slot(self) -> list[int]:
        """This thread's first call: its slot, made."""
        recorder = self.recorder
        slot = recorder._new_slot()
        self.local = recorder._local
        return slot

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.recorder.measure(fn, args, kwargs)


class AsyncMeteredGate(MeteredGate):
    """A :class:`MeteredGate` for an ``async def`` ``execute``: the awaited call is measured."""

    __slots__ = ()

    async def execute(self, data: Any = MISSING, /) -> Any:
        """Await the instance's ``execute`` with ``data`` (or with nothing), recording the call."""
        calls = self.calls
        calls.append(None)
        if self.closed:
            calls.pop()
            return await self._redirect_awaited(data)
        try:
            slot = self.local.slot  # type: ignore[union-attr]
        except AttributeError:
            slot = self._thread_slot()
        method, clock = self.method, self.clock
        slot[0] += 1
        start = clock()
        try:
            result = await (method() if data is MISSING else method(data))
        except BaseException as exc:
            elapsed = clock() - start
            slot[2] += elapsed
            slot[(elapsed - 1).bit_length() + 3] += 1
            slot[1] += 1
            calls.pop()
            self.recorder._note_error(exc)
            raise
        elapsed = clock() - start
        slot[2] += elapsed
        slot[(elapsed - 1).bit_length() + 3] += 1
        calls.pop()
        return result


class _NoExecuteGate(MeteredGate):
    """A :class:`MeteredGate` for an instance without ``execute``: refused, uncounted."""

    __slots__ = ()

    execute = Gate.execute


def open_gate(
    handle: PluginHandle, instance: object, calls: list[None], recorder: PluginMetrics | None
) -> Gate:
    """The gate of one activation of ``instance``, recording in ``recorder`` unless ``None``."""
    method = getattr(instance, "execute", None)
    if method is None:
        name = handle.name

        def no_execute(data: Any = MISSING, /) -> Any:
            raise PluginError(f"plugin {name!r} has no execute() method", plugin=name)

        if recorder is None:
            return Gate(handle, instance, no_execute, calls)
        return _NoExecuteGate(handle, instance, no_execute, calls, recorder)
    if recorder is None:
        kind: type[Gate] = AsyncGate if iscoroutinefunction(method) else Gate
        return kind(handle, instance, method, calls)
    metered = AsyncMeteredGate if iscoroutinefunction(method) else MeteredGate
    return metered(handle, instance, method, calls, recorder)


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
