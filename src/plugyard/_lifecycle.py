"""The runtime state of each plugin, and every change of it.

A :class:`Slot` holds what changes while a plugin lives: its candidate as
loaded, state, instance, error, config and the calls in flight. Every state
change goes through :meth:`Lifecycle.transition`, which points the handle at
the right callable and reports the change once: the event, the metrics and
the log line. :meth:`Lifecycle.activate`, :meth:`Lifecycle.drain` and
:meth:`Lifecycle.teardown` are the steps the manager composes; they never
call back into the manager.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import CoroutineType, MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from . import _log
from ._candidate import Candidate
from ._handles import MISSING, Gate, PluginHandle, open_gate
from ._introspect import isawaitable, iscoroutinefunction
from ._metrics import GroupMetrics
from ._model import FunctionPlugin, PluginContext, PluginInfo, PluginState
from ._registry import origin_of
from .exceptions import (
    ManagerClosedError,
    PluginBusyError,
    PluginError,
    PluginInterfaceError,
    PluginNotActiveError,
    PluginSetupError,
    SignatureError,
)

if TYPE_CHECKING:
    import asyncio

    from ._bus import EventBus

log = _log.Logger("plugyard")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


#: The event each state change publishes (a failure's carries its error).
_EVENTS: dict[PluginState, str] = {
    PluginState.LOADED: "PluginLoaded",
    PluginState.ACTIVE: "PluginActivated",
    PluginState.UNLOADED: "PluginUnloaded",
}


class Slot:
    """The mutable runtime state of one plugin; changed only under the manager's lock.

    ``calls`` holds one item per call in flight on the active instance. Its
    methods are what the handle calls while the plugin is not active: load
    it first, or refuse.
    """

    __slots__ = (
        "attempted",
        "calls",
        "candidate",
        "config",
        "error",
        "gate",
        "handle",
        "instance",
        "lifecycle",
        "state",
    )

    def __init__(self, candidate: Candidate, handle: PluginHandle, lifecycle: Lifecycle) -> None:
        self.candidate = candidate
        self.handle = handle
        self.lifecycle = lifecycle
        self.state = PluginState.DISCOVERED
        self.instance: Any = None
        self.error: PluginError | None = None
        # The config the active instance runs with: its config_type's instance, or a mapping.
        self.config: Any = _EMPTY
        self.calls: list[None] = []
        # What the handle calls while the plugin is active; None before.
        self.gate: Gate | None = None
        # Whether importing the candidate's entry point was tried (it is not tried twice).
        self.attempted = candidate.imported
        handle._attach(self)

    @property
    def name(self) -> str:
        """The plugin's name."""
        return self.candidate.name

    @property
    def info(self) -> PluginInfo:
        """What is known of the plugin."""
        return self.candidate.info

    def load_then_execute(self, data: Any = MISSING, /) -> Any:
        """Load the plugin, then call its ``execute``: a handle's first call."""
        handle = self.lifecycle.load(self.name)
        return handle.execute() if data is MISSING else handle.execute(data)

    def load_then_call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Load the plugin, then call its method ``method``: a handle's first ``call``."""
        return self.lifecycle.load(self.name).call(method, *args, **kwargs)

    def refuse(self, data: Any = MISSING, /) -> Any:
        """Raise why the plugin cannot be called now: a handle's ``execute`` meanwhile."""
        raise self.refusal()

    def refuse_call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The same refusal, for :meth:`PluginHandle.call`."""
        raise self.refusal()

    def refusal(self) -> PluginError:
        """Why a call cannot reach this plugin now, as the error to raise."""
        name = self.name
        if self.lifecycle.closed:
            return ManagerClosedError(self.candidate.group, plugin=name)
        if self.state is PluginState.FAILED and self.error is not None:
            # The failure's own words: one failure, one wording.
            refused = PluginNotActiveError(str(self.error), plugin=name, state="failed")
            refused.__cause__ = self.error
            return refused
        if self.state is PluginState.ACTIVE:
            return PluginNotActiveError(
                f"plugin {name!r} is being torn down", plugin=name, state="active"
            )
        return PluginNotActiveError(
            f"plugin {name!r} is {self.state.value}; call load({name!r}) to start it",
            plugin=name,
            state=self.state.value,
        )


class Invoker:
    """Calls a plugin's lifecycle methods (``setup``, ``configure``, ``teardown``).

    Without a loop (the sync API) a coroutine method is refused with an error
    saying which async call to use; with one (the async API, running in a
    worker thread) coroutines are run on that loop, the caller's.

    Args:
        loop: The event loop of the async caller, or ``None``.
        call: The async call to name in the refusal, e.g. ``"aload"``.
    """

    __slots__ = ("call", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, call: str = "aload") -> None:
        self.loop = loop
        self.call = call

    def check(self, plugin: str, method: Callable[..., Any], what: str) -> None:
        """Refuse, before calling it, a coroutine method the sync API cannot await.

        Raises:
            PluginError: ``method`` is ``async def`` and there is no loop.
        """
        if self.loop is None and iscoroutinefunction(method):
            raise PluginError(
                f"plugin {plugin!r} has an async {what}(); call it through the async API: "
                f"await manager.{self.call}(...)",
                plugin=plugin,
            )

    def __call__(self, plugin: str, method: Callable[..., Any], what: str, *args: Any) -> Any:
        """Call ``method(*args)``, awaiting it on the loop if it is a coroutine."""
        self.check(plugin, method, what)
        result = method(*args)
        if isawaitable(result):
            if self.loop is None:
                if isinstance(result, CoroutineType):
                    result.close()
                raise PluginError(
                    f"plugin {plugin!r}: {what}() returned an awaitable; call it through the "
                    f"async API: await manager.{self.call}(...)",
                    plugin=plugin,
                )
            import asyncio

            return asyncio.run_coroutine_threadsafe(_awaited(result), self.loop).result()
        return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class Lifecycle:
    """The state changes of one manager's plugins, and how each is reported.

    Args:
        group: The group.
        events: Where events are published.
        metrics: The group's metrics, or ``None`` when they are off.
        load: Loads a plugin by name and returns its handle: what a call of a
            plugin that is not loaded yet does first.
        interface: What every plugin must implement (a protocol or an ABC),
            checked before it is set up.
    """

    def __init__(
        self,
        group: str,
        events: EventBus,
        metrics: GroupMetrics | None,
        load: Callable[[str], PluginHandle],
        interface: type[Any] | None = None,
    ) -> None:
        self.group = group
        self.interface = interface
        self.events = events
        self.metrics = metrics
        self.load = load
        self.closed = False
        # Active plugins in the order they were set up; torn down in reverse.
        self.started: dict[str, Slot] = {}
        # The plugin whose setup or teardown is running, for ManagerBusyError.
        self.holder: str | None = None

    def dependents(self, name: str) -> set[str]:
        """The active plugins that depend on ``name``, directly or not."""
        users: dict[str, list[str]] = {}
        for other, slot in self.started.items():
            for dep in slot.info.depends_on:
                users.setdefault(dep.name, []).append(other)
        found: set[str] = set()
        stack = [name]
        while stack:
            for other in users.get(stack.pop(), ()):
                if other not in found:
                    found.add(other)
                    stack.append(other)
        return found

    def new_slot(self, candidate: Candidate, handle: PluginHandle) -> Slot:
        """A slot for a candidate that has just become known."""
        slot = Slot(candidate, handle, self)
        handle.execute, handle._call = slot.load_then_execute, slot.load_then_call
        return slot

    def transition(self, slot: Slot, state: PluginState, error: PluginError | None = None) -> None:
        """Move ``slot`` to ``state``: the handle, the event, the metrics and the log, once."""
        slot.state = state
        slot.error = error
        name = slot.name
        if state is PluginState.ACTIVE:
            self.started[name] = slot
            self._open(slot)
        else:
            self.started.pop(name, None)
            if state is PluginState.DISCOVERED:
                slot.handle.execute, slot.handle._call = slot.load_then_execute, slot.load_then_call
            elif state is not PluginState.LOADED:
                slot.handle.execute, slot.handle._call = slot.refuse, slot.refuse_call
        if state is PluginState.FAILED:
            assert error is not None  # noqa: S101 - a failure has its error
            log.warning("%s", error)
            if self.metrics is not None:
                self.metrics.plugin(name).record_error(error)
            self.emit("PluginFailed", slot, error=error)
            if isinstance(error, SignatureError):
                self.emit(
                    "SignatureRejected",
                    slot,
                    distribution=error.distribution,
                    problems=tuple(f"{p.kind}: {p}" for p in error.problems),
                )
        elif state in _EVENTS:
            self.emit(_EVENTS[state], slot)

    def emit(self, event: str, slot: Slot, **fields: Any) -> None:
        """Publish the event class named ``event`` about ``slot``'s plugin, if anyone listens."""
        event_type = self.events.wanted(event)
        if event_type is not None:
            info = slot.info
            self.events.publish(event_type(info.name, self.group, str(info.version), **fields))

    def activate(
        self, slot: Slot, deps: Mapping[str, Any], config: Any, invoke: Invoker
    ) -> BaseException | None:
        """Instantiate the plugin and run its ``setup``; it ends active or failed.

        Returns:
            A :class:`BaseException` that is not an :class:`Exception`
            (``KeyboardInterrupt``, ``SystemExit``) raised by the plugin, for
            the caller to raise once the manager is consistent again.
        """
        info = slot.info
        target = slot.candidate.target
        interrupt: BaseException | None = None
        try:
            if self.interface is not None:
                from ._interface import problems  # inspect's signatures: only with an interface

                wrong = problems(target, self.interface)
                if wrong:
                    raise PluginInterfaceError(info.name, origin_of(self.interface), wrong)
            setup = getattr(target, "setup", None) if isinstance(target, type) else None
            if setup is not None:
                invoke.check(info.name, setup, "setup")
            if isinstance(target, type):
                slot.instance = target()
            else:
                slot.instance = FunctionPlugin(cast("Callable[..., Any]", target))
            self.transition(slot, PluginState.LOADED)
            setup = getattr(slot.instance, "setup", None)
            if setup is not None:
                started = time.perf_counter()
                self.holder = info.name
                try:
                    invoke(info.name, setup, "setup", PluginContext(info, deps, config))
                finally:
                    self.holder = None
                if self.metrics is not None:
                    self.metrics.plugin(info.name).record_setup(time.perf_counter() - started)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                interrupt = exc
            if isinstance(exc, PluginError) and exc.plugin == info.name and slot.instance is None:
                failure: PluginError = exc  # refused before anything of it ran
            elif isinstance(exc, SignatureError):
                # The verified importer refused a module the plugin imported lazily.
                exc.plugin = exc.plugin or info.name
                failure = exc
            else:
                failure = PluginSetupError(info.name, exc)
                failure.__cause__ = exc
            slot.instance = None
            self.transition(slot, PluginState.FAILED, failure)
            return interrupt
        slot.config = config
        self.transition(slot, PluginState.ACTIVE)
        return None

    def close(self, slots: Iterable[Slot]) -> None:
        """Stop new calls reaching the instances of ``slots``; calls in flight go on."""
        for slot in slots:
            slot.handle.execute, slot.handle._call = slot.refuse, slot.refuse_call
            if slot.gate is not None:
                slot.gate.closed = True

    def reopen(self, slots: Iterable[Slot]) -> None:
        """Let calls reach the instances of ``slots`` again (a drain gave up)."""
        for slot in slots:
            self._open(slot)

    def _open(self, slot: Slot) -> None:
        """Point the handle of an active slot at its instance's methods, counted."""
        handle = slot.handle
        # Counted per version, so the counts of a reloaded plugin say who served them.
        recorder = None
        if self.metrics is not None:
            version = str(slot.info.version)
            if version == slot.candidate.version:
                version = slot.candidate.version  # one string for both, the index's
            recorder = self.metrics.plugin(slot.name).version(version)
        slot.gate = gate = open_gate(handle, slot.instance, slot.calls, recorder)
        handle.execute, handle._call = gate.execute, gate.call

    def replace(
        self,
        slot: Slot,
        candidate: Candidate,
        instance: Any,
        config: Any,
        calls: list[None] | None = None,
    ) -> list[None]:
        """Point an active slot at another instance at once (a reload, or its undoing).

        Calls from now on reach ``instance``; a call that picked up the old
        callable but had not started is passed on to the new one. The state
        does not change and nothing is published.

        Args:
            slot: The active slot.
            candidate: What ``instance`` was built from.
            instance: The instance, set up.
            config: The config it was set up with.
            calls: The list its calls in flight are counted in, when it had
                one before (an instance switched back to); a new one otherwise.

        Returns:
            The list the replaced instance's calls in flight are counted in:
            wait for it with :meth:`wait` before tearing that instance down.
        """
        replaced, gate = slot.calls, slot.gate
        slot.candidate, slot.instance, slot.config = candidate, instance, config
        slot.calls = [] if calls is None else calls
        self._open(slot)
        if gate is not None:
            gate.closed = True
        return replaced

    def drain(self, slots: Sequence[Slot], timeout: float) -> None:
        """Close ``slots`` and wait until no call is in flight on any of them.

        Raises:
            PluginBusyError: calls were still running after ``timeout``
                seconds; the slots were reopened and nothing is torn down.
        """
        self.close(slots)
        try:
            self.wait([(slot.name, slot.calls) for slot in slots], timeout)
        except BaseException:
            # Given up, or interrupted (Ctrl-C while waiting): nothing is torn down.
            self.reopen(slots)
            raise

    @staticmethod
    def wait(pending: Sequence[tuple[str, list[None]]], timeout: float) -> None:
        """Wait until no call is counted in any of the lists of ``(plugin, calls)``.

        Polls from 0.5 ms, doubling to 10 ms.

        Raises:
            PluginBusyError: calls were still running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            busy = next(((name, calls) for name, calls in pending if calls), None)
            if busy is None:
                return
            if time.monotonic() >= deadline:
                raise PluginBusyError(busy[0], len(busy[1]), timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def teardown(self, slots: Iterable[Slot], invoke: Invoker) -> None:
        """Tear down ``slots`` in the order given, each even if another raised.

        An :class:`Exception` from a plugin's ``teardown`` is logged; the
        first ``KeyboardInterrupt`` or other :class:`BaseException` is
        raised once every slot is torn down.
        """
        interrupt: BaseException | None = None
        for slot in slots:
            instance, slot.instance, slot.gate = slot.instance, None, None
            slot.config = _EMPTY
            self.transition(slot, PluginState.UNLOADED)
            raised = self.run_teardown(slot.name, instance, invoke)
            interrupt = interrupt or raised
        if interrupt is not None:
            raise interrupt

    def run_teardown(self, name: str, instance: Any, invoke: Invoker) -> BaseException | None:
        """Call ``instance.teardown()``, if it has one; an :class:`Exception` from it is logged.

        Returns:
            A :class:`BaseException` that is not an :class:`Exception`, for
            the caller to raise when it is done.
        """
        teardown = getattr(instance, "teardown", None)
        if teardown is None:
            return None
        self.holder = name
        try:
            invoke(name, teardown, "teardown")
        except Exception:
            log.exception("plugin %r raised in teardown(); it is unloaded anyway", name)
        except BaseException as exc:
            return exc
        finally:
            self.holder = None
        return None

    def check_teardown(self, slots: Iterable[Slot], invoke: Invoker) -> None:
        """Refuse, before anything is torn down, a ``teardown`` the caller cannot await.

        Raises:
            PluginError: a plugin's ``teardown`` is a coroutine and ``invoke`` has no loop.
        """
        for slot in slots:
            teardown = getattr(slot.instance, "teardown", None)
            if teardown is not None:
                invoke.check(slot.name, teardown, "teardown")
