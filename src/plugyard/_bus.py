"""The bus that delivers events: synchronously, in subscription order, from any thread.

An :class:`EventBus` delivers each published event to every handler
subscribed to its class, a base class of it, or to all events.
Coroutine-function handlers are handed to an asyncio event loop and never
awaited by the publisher.

A manager publishes while holding its lock only inside :meth:`EventBus.deferred`,
which holds the events back until the outermost block of the thread ends, so
handlers always run without the manager's lock and may call back into it.

The event classes (``_events.py``, attrs classes) are imported only when
something subscribes: publishers ask :meth:`EventBus.wanted` by name first,
so a process with no subscriber never builds an event nor imports them.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import _log
from ._public import present_top_level as _present_top_level

if TYPE_CHECKING:
    # asyncio is imported where a coroutine handler needs it: it is slow to import.
    import asyncio
    from concurrent.futures import Future

    from ._events import Event

__all__ = ["EventBus", "Subscription"]

log = _log.Logger("plugyard.events")

E = TypeVar("E", bound="Event")


def _handler_name(handler: Callable[..., object]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def _is_coroutine_function(handler: Callable[..., object]) -> bool:
    # inspect sees through functools.partial but not through an object whose
    # __call__ is ``async def``. (Imported here: subscribing is not on the call path.)
    import inspect

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

    def wanted(self, name: str) -> type[Event] | None:
        """The event class named ``name`` if any handler would receive one now, else ``None``.

        Publishers call it before building an event: with no subscription it
        returns at once, without importing the event classes.
        """
        if not self._subs:
            return None
        from ._events import BY_NAME

        event_type = BY_NAME[name]
        return event_type if self.has_subscribers(event_type) else None

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its handlers now, or at the end of a :meth:`deferred` block.

        Raises:
            TypeError: ``event`` is not an :class:`Event`.
        """
        from ._events import Event  # imported already: the event was built from it

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
        if isinstance(result, CoroutineType):
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
    from ._events import BY_NAME, Event

    if event is None:
        return Event
    if isinstance(event, str):
        found = BY_NAME.get(event)
        if found is None:
            names = ", ".join(sorted(BY_NAME))
            raise ValueError(f"no event is named {event!r}; the events are: {names}")
        return found
    if isinstance(event, type) and issubclass(event, Event):
        return event
    raise TypeError(f"subscribe to an Event subclass, an event name or None, not {event!r}")


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
