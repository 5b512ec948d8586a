"""Typed lifecycle events and the bus that delivers them.

Every event is a frozen attrs class deriving from :class:`Event`, so a handler
can match on its type and read its fields with a type checker's help. An
:class:`EventBus` delivers each published event synchronously, in subscription
order, to every handler subscribed to its class, a base class of it, or to all
events. Coroutine-function handlers are handed to an asyncio event loop and
never awaited by the publisher.

A manager publishes while holding its lock only inside :meth:`EventBus.deferred`,
which holds the events back until the outermost block of the thread ends, so
handlers always run without the manager's lock and may call back into it.

:class:`PluginReloaded` and :class:`ReloadFailed` are published by
:meth:`PluginManager.reload`; :class:`PluginCrashed` by the sandbox
(:mod:`plugyard.runtime`) when an isolated plugin's process dies.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from . import _log
from ._public import present_top_level as _present_top_level

if TYPE_CHECKING:
    # asyncio is imported where a coroutine handler needs it: it is slow to import.
    import asyncio
    from concurrent.futures import Future

__all__ = [
    "ConfigChanged",
    "ConfigRejected",
    "Event",
    "EventBus",
    "PluginActivated",
    "PluginCrashed",
    "PluginDiscovered",
    "PluginFailed",
    "PluginLoaded",
    "PluginReloaded",
    "PluginUnloaded",
    "ReloadFailed",
    "SignatureRejected",
    "Subscription",
]

log = _log.Logger("plugyard.events")

E = TypeVar("E", bound="Event")


def _readonly(value: Mapping[str, Any]) -> Mapping[str, Any]:
    # A copy behind a read-only view: a handler can neither change the
    # manager's config through the event nor see later changes to it.
    return MappingProxyType(dict(value))


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Event:
    """Base class of every plugyard event; subscribe to it to receive them all.

    Attributes:
        plugin: The plugin the event is about.
        group: The plugin's group.
        version: The plugin's version, as a string (a ``Version`` is converted).
    """

    plugin: str
    group: str
    version: str = attrs.field(converter=str)


@attrs.frozen
class PluginDiscovered(Event):
    """A plugin became known (decorator, entry point, plugin directory); nothing of it ran."""


@attrs.frozen
class PluginLoaded(Event):
    """A plugin's code was imported and its instance created; ``setup`` comes next."""


@attrs.frozen
class PluginActivated(Event):
    """A plugin's ``setup`` succeeded; it is active and callable."""


@attrs.frozen
class PluginFailed(Event):
    """A plugin could not start or was failed by the manager.

    Attributes:
        error: The error that failed it, as :meth:`PluginManager.errors` holds it.
    """

    error: BaseException


@attrs.frozen
class PluginUnloaded(Event):
    """A plugin was torn down."""


@attrs.frozen
class ConfigChanged(Event):
    """A plugin accepted new configuration.

    Attributes:
        old: The configuration before, as a read-only copy.
        new: The configuration now in force, as a read-only copy.
    """

    old: Mapping[str, Any] = attrs.field(converter=_readonly)
    new: Mapping[str, Any] = attrs.field(converter=_readonly)


@attrs.frozen
class ConfigRejected(Event):
    """A configuration was refused (invalid, or the plugin raised); the old one stays.

    Attributes:
        config: The refused configuration, as a read-only copy.
        error: Why it was refused.
    """

    config: Mapping[str, Any] = attrs.field(converter=_readonly)
    error: BaseException


@attrs.frozen
class SignatureRejected(Event):
    """A plugin's distribution failed the trust gate and was not imported.

    Attributes:
        distribution: The distribution that provides the plugin.
        problems: Each reason it was refused (a missing signature, a file
            whose hash differs...).
    """

    distribution: str
    problems: tuple[str, ...] = attrs.field(converter=_strings)


@attrs.frozen
class PluginReloaded(Event):
    """A plugin was replaced by a new instance, possibly of a new version.

    ``version`` is the version now active, the same as :attr:`new_version`.
    A reload publishes one for the plugin (and each plugin of its
    distribution) and one for each dependent that was set up again beside it.

    Attributes:
        old_version: The version that was replaced.
        reason: Why: ``"requested"``, ``"a new version in a plugin
            directory"``, or, for a dependent, that its dependency was reloaded.
    """

    old_version: str = attrs.field(converter=str)
    reason: str = ""

    @property
    def new_version(self) -> str:
        """The version now active."""
        return self.version


@attrs.frozen
class ReloadFailed(Event):
    """A reload failed and was undone: the old version still answers every call.

    ``version`` is the version still active, the same as :attr:`old_version`.

    Attributes:
        new_version: The version the reload tried to switch to, if known.
        stage: Where it failed (see :class:`~plugyard.exceptions.ReloadError`).
        reason: What went wrong, for people.
        error: The exception that failed it.
    """

    new_version: str | None
    stage: str
    reason: str
    error: BaseException

    @property
    def old_version(self) -> str:
        """The version that was, and still is, active."""
        return self.version


@attrs.frozen
class PluginCrashed(Event):
    """An isolated plugin's worker process died or stopped answering.

    Attributes:
        returncode: The worker's exit status as :attr:`subprocess.Popen.returncode`
            gives it (negative: killed by that signal), or ``None`` when it
            did not exit (it hung and was killed later, or is being killed).
        reason: What happened, for people: ``"killed by SIGKILL"``,
            ``"call timed out after 5.0 s"``, the last line of its stderr...
        restart_in: Seconds until the worker is restarted, or ``None`` when
            it will not be (restarts exhausted, or it is being unloaded).
    """

    returncode: int | None
    reason: str
    restart_in: float | None = None

    @property
    def signal(self) -> int | None:
        """The number of the signal that killed the worker, if one did."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None


_EVENT_TYPES: Mapping[str, type[Event]] = MappingProxyType(
    {
        cls.__name__: cls
        for cls in (
            Event,
            PluginDiscovered,
            PluginLoaded,
            PluginActivated,
            PluginFailed,
            PluginUnloaded,
            ConfigChanged,
            ConfigRejected,
            SignatureRejected,
            PluginReloaded,
            ReloadFailed,
            PluginCrashed,
        )
    }
)


def _handler_name(handler: Callable[..., object]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def _is_coroutine_function(handler: Callable[..., object]) -> bool:
    # inspect sees through functools.partial but not through an object whose
    # __call__ is ``async def``.
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - the method itself is tested
    )


class Subscription:
    """One handler's subscription, as :meth:`EventBus.subscribe` returns it.

    A subscription is also a context manager that unsubscribes on exit.

    Attributes:
        event_type: The class of events delivered; :class:`Event` for all.
        handler: The subscribed callable.
        is_async: Whether the handler is a coroutine function, run on the
            bus's event loop.
    """

    __slots__ = ("_active", "_bus", "event_type", "handler", "is_async")

    def __init__(
        self,
        bus: EventBus,
        event_type: type[Event],
        handler: Callable[[Any], object],
        is_async: bool,
    ) -> None:
        self._bus = bus
        self._active = True
        self.event_type = event_type
        self.handler = handler
        self.is_async = is_async

    @property
    def active(self) -> bool:
        """Whether the handler still receives events."""
        return self._active

    def unsubscribe(self) -> None:
        """Stop delivering events to the handler; calling it again does nothing.

        Once this returns, the handler is not called again, except by a
        delivery that another thread had already started.
        """
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self._active else "unsubscribed"
        return (
            f"<Subscription {_handler_name(self.handler)} to {self.event_type.__name__} ({state})>"
        )


class EventBus:
    """Delivers events to subscribed handlers, synchronously and in subscription order.

    A handler that raises is logged on the ``plugyard.events`` logger and
    does not stop the handlers after it, nor the publisher. Coroutine-function
    handlers are scheduled on :attr:`loop` with
    :func:`asyncio.run_coroutine_threadsafe`; :meth:`publish` does not wait
    for them, and their exceptions are logged when they finish.

    Subscribing, unsubscribing and publishing are safe from any thread: a
    publish delivers to the handlers subscribed when it started.

    Args:
        loop: The running event loop that coroutine handlers are scheduled on.
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._lock = threading.Lock()
        # Replaced whole on every change, so publish() iterates without a lock.
        self._subs: tuple[Subscription, ...] = ()
        self._loop = loop
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<EventBus: {len(self._subs)} subscriptions>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop coroutine handlers run on; it must be running to run them."""
        return self._loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The active subscriptions, in delivery order."""
        return self._subs

    @overload
    def subscribe(self, event: type[E], handler: Callable[[E], object]) -> Subscription: ...

    @overload
    def subscribe(self, event: str, handler: Callable[[Any], object]) -> Subscription: ...

    @overload
    def subscribe(self, event: None, handler: Callable[[Event], object]) -> Subscription: ...

    def subscribe(
        self, event: type[Event] | str | None, handler: Callable[[Any], object]
    ) -> Subscription:
        """Call ``handler(event)`` for every published event of a class.

        Args:
            event: An event class (its subclasses match too), the name of a
                plugyard event class such as ``"PluginLoaded"``, or ``None``
                (or :class:`Event`) for every event.
            handler: A callable taking the event, or a coroutine function,
                which needs :attr:`loop` to be set.

        Returns:
            The subscription; call its ``unsubscribe()`` to stop.

        Raises:
            ValueError: ``event`` is a name no plugyard event has; the
                message lists the names there are.
            TypeError: ``event`` is not an :class:`Event` subclass, or
                ``handler`` is not callable.
            RuntimeError: ``handler`` is a coroutine function and the bus has
                no open event loop.
        """
        event_type = _event_type(event)
        if not callable(handler):
            raise TypeError(f"an event handler must be callable, not {handler!r}")
        is_async = _is_coroutine_function(handler)
        if is_async:
            loop = self._loop
            if loop is None or loop.is_closed():
                raise RuntimeError(
                    f"{_handler_name(handler)} is a coroutine function, but this EventBus "
                    "has no open event loop to run it on. Create the bus with "
                    "EventBus(loop=...) or set bus.loop before subscribing it, or "
                    "subscribe a plain function."
                )
        subscription = Subscription(self, event_type, handler, is_async)
        with self._lock:
            self._subs = (*self._subs, subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            subscription._active = False
            self._subs = tuple(s for s in self._subs if s is not subscription)

    def has_subscribers(self, event_type: type[Event]) -> bool:
        """Whether any handler would receive an event of ``event_type`` now.

        Publishers use it to skip building events nobody listens to.
        """
        subs = self._subs
        return bool(subs) and any(issubclass(event_type, s.event_type) for s in subs if s._active)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its handlers now, or at the end of a :meth:`deferred` block.

        Raises:
            TypeError: ``event`` is not an :class:`Event`.
        """
        if not isinstance(event, Event):
            raise TypeError(f"only plugyard events can be published, not {event!r}")
        pending: list[Event] | None = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append(event)
            return
        for subscription in self._subs:
            if subscription._active and isinstance(event, subscription.event_type):
                self._call(subscription, event)

    def publish_all(self, events: Iterable[Event]) -> None:
        """Publish each of ``events`` in order, as :meth:`publish` would."""
        for event in events:
            self.publish(event)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold back what this thread publishes until the block ends, then deliver it.

        Blocks nest: events are delivered when the outermost block of the
        thread ends, whether it ends normally or by an exception. A manager
        enters this block *before* taking its lock, so that handlers run
        after the lock is released::

            with bus.deferred(), lock:
                ...
                bus.publish(PluginLoaded(name, group, version))
            # handlers have run here, without the lock
        """
        if getattr(self._local, "pending", None) is not None:
            yield
            return
        pending: list[Event] = []
        self._local.pending = pending
        try:
            yield
        finally:
            self._local.pending = None
            self.publish_all(pending)

    def _call(self, subscription: Subscription, event: Event) -> None:
        handler = subscription.handler
        if subscription.is_async:
            loop = self._loop
            if loop is None or loop.is_closed():
                log.error(
                    "cannot deliver %r to coroutine handler %s: the EventBus has no open "
                    "event loop",
                    event,
                    _handler_name(handler),
                )
                return
        try:
            result = handler(event)
        except Exception:
            log.exception("event handler %s failed on %r", _handler_name(handler), event)
            return
        if inspect.iscoroutine(result):
            self._schedule(result, handler, event)

    def _schedule(
        self, coro: Coroutine[Any, Any, object], handler: Callable[..., object], event: Event
    ) -> None:
        import asyncio

        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("no event loop")
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError as exc:
            coro.close()
            log.error(
                "cannot deliver %r to coroutine handler %s: %s",
                event,
                _handler_name(handler),
                "the EventBus has no open event loop" if loop is None else exc,
            )
            return
        future.add_done_callback(functools.partial(_report, handler, event))


def _report(handler: Callable[..., object], event: Event, future: Future[object]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        log.error("event handler %s failed on %r", _handler_name(handler), event, exc_info=error)


def _event_type(event: type[Event] | str | None) -> type[Event]:
    if event is None:
        return Event
    if isinstance(event, str):
        found = _EVENT_TYPES.get(event)
        if found is None:
            names = ", ".join(sorted(_EVENT_TYPES))
            raise ValueError(f"no event is named {event!r}; the events are: {names}")
        return found
    if isinstance(event, type) and issubclass(event, Event):
        return event
    raise TypeError(f"subscribe to an Event subclass, an event name or None, not {event!r}")


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
