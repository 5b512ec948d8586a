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

import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from ._candidate import Candidate
from ._events import (
    EventBus,
    PluginActivated,
    PluginFailed,
    PluginLoaded,
    PluginUnloaded,
    SignatureRejected,
)
from ._handles import PluginHandle, counted, no_execute, refusing
from ._metrics import GroupMetrics
from ._model import FunctionPlugin, PluginContext, PluginInfo, PluginState
from .exceptions import (
    ManagerClosedError,
    PluginBusyError,
    PluginError,
    PluginNotActiveError,
    PluginSetupError,
    SignatureError,
)

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("plugyard")
# A library's records go where the application sends them; with no logging
# set up they are not printed (Python's "last resort" handler would print them).
log.addHandler(logging.NullHandler())

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Slot:
    """The mutable runtime state of one plugin; changed only under the manager's lock.

    ``calls`` holds one item per call in flight on the active instance.
    """

    __slots__ = (
        "attempted",
        "calls",
        "candidate",
        "closed",
        "config",
        "error",
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
        # The flag of the counted callable calls reach while active.
        self.closed: list[bool] = [True]
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
        if self.loop is None and inspect.iscoroutinefunction(method):
            raise PluginError(
                f"plugin {plugin!r} has an async {what}(); call it through the async API: "
                f"await manager.{self.call}(...)",
                plugin=plugin,
            )

    def __call__(self, plugin: str, method: Callable[..., Any], what: str, *args: Any) -> Any:
        """Call ``method(*args)``, awaiting it on the loop if it is a coroutine."""
        self.check(plugin, method, what)
        result = method(*args)
        if inspect.isawaitable(result):
            if self.loop is None:
                if inspect.iscoroutine(result):
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
        lazy: Makes the callable of a handle whose plugin is not loaded yet
            (it loads the plugin, then calls it).
    """

    def __init__(
        self,
        group: str,
        events: EventBus,
        metrics: GroupMetrics | None,
        lazy: Callable[[str], Callable[..., Any]],
    ) -> None:
        self.group = group
        self.events = events
        self.metrics = metrics
        self.lazy = lazy
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
        handle.execute = self.lazy(candidate.name)
        return slot

    def transition(self, slot: Slot, state: PluginState, error: PluginError | None = None) -> None:
        """Move ``slot`` to ``state``: the handle, the event, the metrics and the log, once."""
        slot.state = state
        slot.error = error
        name = slot.name
        handle = slot.handle
        if state is PluginState.ACTIVE:
            self.started[name] = slot
            method = getattr(slot.instance, "execute", None)
            if method is None:
                method = no_execute(name)
            elif self.metrics is not None:
                method = self.metrics.plugin(name).wrap_unary(method)
            handle.execute, slot.closed = counted(handle, method, slot.calls)
        else:
            self.started.pop(name, None)
            if state is PluginState.DISCOVERED:
                handle.execute = self.lazy(name)
            elif state is not PluginState.LOADED:
                handle.execute = refusing(slot)
        event: type[Any] = {
            PluginState.LOADED: PluginLoaded,
            PluginState.ACTIVE: PluginActivated,
            PluginState.FAILED: PluginFailed,
            PluginState.UNLOADED: PluginUnloaded,
        }.get(state, type(None))
        if state is PluginState.FAILED:
            assert error is not None  # noqa: S101 - a failure has its error
            log.warning("%s", error)
            if self.metrics is not None:
                self.metrics.plugin(name).record_error(error)
            self.emit(event, slot, error=error)
            if isinstance(error, SignatureError):
                self.emit(
                    SignatureRejected,
                    slot,
                    distribution=error.distribution,
                    problems=tuple(f"{p.kind}: {p}" for p in error.problems),
                )
        elif event is not type(None):
            self.emit(event, slot)

    def emit(self, event: type[Any], slot: Slot, **fields: Any) -> None:
        """Publish ``event`` about ``slot``'s plugin, if anyone listens."""
        if self.events.has_subscribers(event):
            info = slot.info
            self.events.publish(event(info.name, self.group, str(info.version), **fields))

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
            setup = getattr(target, "setup", None) if inspect.isclass(target) else None
            if setup is not None:
                invoke.check(info.name, setup, "setup")
            if inspect.isclass(target):
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
            slot.handle.execute = refusing(slot)
            slot.closed[0] = True

    def reopen(self, slots: Iterable[Slot]) -> None:
        """Let calls reach the instances of ``slots`` again (a drain gave up)."""
        for slot in slots:
            method = getattr(slot.instance, "execute", None)
            if method is None:
                method = no_execute(slot.name)
            elif self.metrics is not None:
                method = self.metrics.plugin(slot.name).wrap_unary(method)
            slot.handle.execute, slot.closed = counted(slot.handle, method, slot.calls)

    def drain(self, slots: Sequence[Slot], timeout: float) -> None:
        """Close ``slots`` and wait until no call is in flight on any of them.

        Raises:
            PluginBusyError: calls were still running after ``timeout``
                seconds; the slots were reopened and nothing is torn down.
        """
        self.close(slots)
        deadline = time.monotonic() + timeout
        pause = 0.0005
        try:
            while True:
                busy = next((slot for slot in slots if slot.calls), None)
                if busy is None:
                    return
                if time.monotonic() >= deadline:
                    raise PluginBusyError(busy.name, len(busy.calls), timeout)
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
        except BaseException:
            # Given up, or interrupted (Ctrl-C while waiting): nothing is torn down.
            self.reopen(slots)
            raise

    def teardown(self, slots: Iterable[Slot], invoke: Invoker) -> None:
        """Tear down ``slots`` in the order given, each even if another raised.

        An :class:`Exception` from a plugin's ``teardown`` is logged; the
        first ``KeyboardInterrupt`` or other :class:`BaseException` is
        raised once every slot is torn down.
        """
        interrupt: BaseException | None = None
        for slot in slots:
            name = slot.name
            instance, slot.instance = slot.instance, None
            slot.config = _EMPTY
            self.transition(slot, PluginState.UNLOADED)
            teardown = getattr(instance, "teardown", None)
            if teardown is None:
                continue
            self.holder = name
            try:
                invoke(name, teardown, "teardown")
            except Exception:
                log.exception("plugin %r raised in teardown(); it is unloaded anyway", name)
            except BaseException as exc:
                interrupt = interrupt or exc
            finally:
                self.holder = None
        if interrupt is not None:
            raise interrupt

    def check_teardown(self, slots: Iterable[Slot], invoke: Invoker) -> None:
        """Refuse, before anything is torn down, a ``teardown`` the caller cannot await.

        Raises:
            PluginError: a plugin's ``teardown`` is a coroutine and ``invoke`` has no loop.
        """
        for slot in slots:
            teardown = getattr(slot.instance, "teardown", None)
            if teardown is not None:
                invoke.check(slot.name, teardown, "teardown")
