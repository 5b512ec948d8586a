"""Typed events and the EventBus."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from packaging.version import Version

import plugyard
from plugyard._bus import EventBus, Subscription
from plugyard._events import (
    ConfigChanged,
    ConfigRejected,
    Event,
    PluginActivated,
    PluginCrashed,
    PluginDiscovered,
    PluginFailed,
    PluginLoaded,
    PluginReloaded,
    PluginUnloaded,
    SignatureRejected,
)

ALL_EVENTS: list[Event] = [
    PluginDiscovered("p", "g", "1.0"),
    PluginLoaded("p", "g", "1.0"),
    PluginActivated("p", "g", "1.0"),
    PluginFailed("p", "g", "1.0", RuntimeError("boom")),
    PluginUnloaded("p", "g", "1.0"),
    ConfigChanged("p", "g", "1.0", {"a": 1}, {"a": 2}),
    ConfigRejected("p", "g", "1.0", {"a": "x"}, ValueError("bad")),
    SignatureRejected("p", "g", "1.0", "p-dist", ["unsigned"]),
    PluginReloaded("p", "g", "2.0", "1.0"),
    PluginCrashed("p", "g", "1.0", -9, "killed by SIGKILL", 0.5),
]


@attrs.frozen
class CustomLoaded(PluginLoaded):
    """An application's own event, derived from a plugyard one."""

    extra: int = 0


@pytest.fixture(name="bus")
def fixture_bus() -> EventBus:
    return EventBus()


@pytest.fixture(name="loop")
def fixture_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as in an async application."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


# -- the events ------------------------------------------------------------


def test_events_are_frozen_and_exported_ones_print_as_plugyard_classes() -> None:
    event = PluginLoaded("p", "g", "1.0")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.plugin = "q"  # type: ignore[misc]
    for each in ALL_EVENTS:
        exported = type(each).__name__ in plugyard.__all__
        assert (type(each).__module__ == "plugyard") is exported
        assert isinstance(each, Event)
        assert not hasattr(each, "__dict__"), "events use slots"


def test_version_accepts_a_packaging_version_and_stores_a_string() -> None:
    event = PluginReloaded("p", "g", Version("2.0"), Version("1.5"))
    assert event.version == "2.0"
    assert event.new_version == "2.0"
    assert event.old_version == "1.5"


def test_config_changed_holds_read_only_copies_of_the_configs() -> None:
    old = {"a": 1}
    new = {"a": 2}
    event = ConfigChanged("p", "g", "1", old, new)
    new["a"] = 3
    assert event.new == {"a": 2}
    assert event.old == {"a": 1}
    with pytest.raises(TypeError):
        event.new["a"] = 4  # type: ignore[index]


def test_signature_rejected_keeps_problems_as_a_tuple() -> None:
    event = SignatureRejected("p", "g", "1", "p-dist", ["unsigned", "bad hash"])
    assert event.problems == ("unsigned", "bad hash")


@pytest.mark.parametrize(
    ("returncode", "signal"), [(-9, 9), (-15, 15), (1, None), (0, None), (None, None)]
)
def test_plugin_crashed_reports_the_killing_signal(
    returncode: int | None, signal: int | None
) -> None:
    assert PluginCrashed("p", "g", "1", returncode, "gone").signal == signal


# -- subscribing -------------------------------------------------------------


def test_a_class_subscription_receives_that_class_and_its_subclasses(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(PluginLoaded, seen.append)
    for event in ALL_EVENTS:
        bus.publish(event)
    custom = CustomLoaded("p", "g", "1", extra=3)
    bus.publish(custom)
    assert seen == [ALL_EVENTS[1], custom]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_a_name_subscription_receives_the_class_of_that_name(bus: EventBus, event: Event) -> None:
    seen: list[Event] = []
    bus.subscribe(type(event).__name__, seen.append)
    for each in ALL_EVENTS:
        bus.publish(each)
    assert seen == [event]


def test_an_unknown_name_is_refused_with_the_valid_names(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="PluginLoadedd") as exc:
        bus.subscribe("PluginLoadedd", print)
    message = str(exc.value)
    for name in ("Event", "PluginLoaded", "PluginCrashed", "SignatureRejected", "ConfigChanged"):
        assert name in message
    assert bus.subscriptions == ()


@pytest.mark.parametrize("everything", [None, Event, "Event"])
def test_none_and_event_receive_every_event(bus: EventBus, everything: Any) -> None:
    seen: list[Event] = []
    bus.subscribe(everything, seen.append)
    for event in ALL_EVENTS:
        bus.publish(event)
    assert seen == ALL_EVENTS


def test_handlers_run_in_subscription_order_across_event_types(bus: EventBus) -> None:
    order: list[str] = []
    bus.subscribe(None, lambda e: order.append("all-1"))
    bus.subscribe(PluginLoaded, lambda e: order.append("loaded"))
    bus.subscribe("PluginLoaded", lambda e: order.append("loaded-by-name"))
    bus.subscribe(Event, lambda e: order.append("all-2"))
    bus.publish(PluginLoaded("p", "g", "1"))
    assert order == ["all-1", "loaded", "loaded-by-name", "all-2"]


def test_subscribing_something_not_an_event_class_is_a_type_error(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="Event subclass"):
        bus.subscribe(int, print)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="callable"):
        bus.subscribe(PluginLoaded, "not callable")  # type: ignore[call-overload]


def test_publishing_something_not_an_event_is_a_type_error(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="plugyard events"):
        bus.publish("PluginLoaded")  # type: ignore[arg-type]


def test_unsubscribe_stops_delivery_and_is_idempotent(bus: EventBus) -> None:
    seen: list[Event] = []
    subscription = bus.subscribe(None, seen.append)
    bus.publish(ALL_EVENTS[0])
    subscription.unsubscribe()
    subscription.unsubscribe()
    bus.publish(ALL_EVENTS[1])
    assert seen == [ALL_EVENTS[0]]
    assert not subscription.active
    assert bus.subscriptions == ()
    assert "unsubscribed" in repr(subscription)


def test_a_subscription_is_a_context_manager_that_unsubscribes(bus: EventBus) -> None:
    seen: list[Event] = []
    with bus.subscribe(None, seen.append) as subscription:
        assert subscription.active
        bus.publish(ALL_EVENTS[0])
    bus.publish(ALL_EVENTS[1])
    assert seen == [ALL_EVENTS[0]]


def test_a_handler_unsubscribed_by_an_earlier_one_is_not_called(bus: EventBus) -> None:
    seen: list[str] = []
    later: list[Subscription] = []

    def first(event: Event) -> None:
        seen.append("first")
        later[0].unsubscribe()

    bus.subscribe(None, first)
    later.append(bus.subscribe(None, lambda e: seen.append("later")))
    bus.publish(ALL_EVENTS[0])
    assert seen == ["first"]


def test_a_handler_subscribed_during_a_publish_gets_only_later_events(bus: EventBus) -> None:
    seen: list[str] = []

    def first(event: Event) -> None:
        seen.append("first")
        if len(seen) == 1:
            bus.subscribe(None, lambda e: seen.append("new"))

    bus.subscribe(None, first)
    bus.publish(ALL_EVENTS[0])
    bus.publish(ALL_EVENTS[1])
    assert seen == ["first", "first", "new"]


# -- failing handlers ----------------------------------------------------------


def test_a_failing_handler_is_logged_and_the_others_still_run(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    bus.subscribe(None, lambda e: seen.append("before"))
    bus.subscribe(PluginLoaded, broken)
    bus.subscribe(None, lambda e: seen.append("after"))
    event = PluginLoaded("myplugin", "g", "1")
    with caplog.at_level(logging.ERROR, logger="plugyard.events"):
        bus.publish(event)
    assert seen == ["before", "after"]
    (record,) = caplog.records
    assert record.name == "plugyard.events"
    assert record.levelno == logging.ERROR
    assert "broken" in record.getMessage()
    assert "PluginLoaded" in record.getMessage()
    assert "myplugin" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_a_handler_raising_base_exception_is_not_swallowed(bus: EventBus) -> None:
    def interrupt(event: Event) -> None:
        raise KeyboardInterrupt

    bus.subscribe(None, interrupt)
    with pytest.raises(KeyboardInterrupt):
        bus.publish(ALL_EVENTS[0])


# -- coroutine handlers -------------------------------------------------------


def test_a_coroutine_handler_without_a_loop_is_refused_at_subscribe(bus: EventBus) -> None:
    async def on_loaded(event: Event) -> None:
        pass  # pragma: no cover

    with pytest.raises(RuntimeError, match="no open event loop") as exc:
        bus.subscribe(PluginLoaded, on_loaded)
    assert "on_loaded" in str(exc.value)
    assert "EventBus(loop=" in str(exc.value)
    assert bus.subscriptions == ()


def test_an_object_with_an_async_call_is_a_coroutine_handler(bus: EventBus) -> None:
    class Handler:
        async def __call__(self, event: Event) -> None:
            pass  # pragma: no cover

    with pytest.raises(RuntimeError, match="no open event loop"):
        bus.subscribe(None, Handler())


def test_a_coroutine_handler_runs_on_the_loop_and_is_not_awaited_by_publish(
    loop: asyncio.AbstractEventLoop,
) -> None:
    bus = EventBus(loop=loop)
    gate = threading.Event()
    done = threading.Event()
    seen: list[tuple[Event, bool]] = []

    async def on_loaded(event: Event) -> None:
        # Blocks the loop thread until publish() has returned in the test thread.
        assert gate.wait(10)
        seen.append((event, threading.current_thread() is not threading.main_thread()))
        done.set()

    subscription = bus.subscribe(PluginLoaded, on_loaded)
    assert subscription.is_async
    event = PluginLoaded("p", "g", "1")
    bus.publish(event)
    assert seen == []
    gate.set()
    assert done.wait(10)
    assert seen == [(event, True)]


def test_bus_loop_can_be_set_after_creation(loop: asyncio.AbstractEventLoop) -> None:
    bus = EventBus()
    bus.loop = loop
    assert bus.loop is loop
    done = threading.Event()

    async def handler(event: Event) -> None:
        done.set()

    bus.subscribe(None, handler)
    bus.publish(ALL_EVENTS[0])
    assert done.wait(10)


def test_publish_from_the_loop_thread_schedules_and_does_not_block(
    loop: asyncio.AbstractEventLoop,
) -> None:
    bus = EventBus(loop=loop)
    order: list[str] = []
    done = threading.Event()

    async def handler(event: Event) -> None:
        order.append("handler")
        done.set()

    bus.subscribe(None, handler)

    def publish_in_loop() -> None:
        bus.publish(ALL_EVENTS[0])
        order.append("published")

    loop.call_soon_threadsafe(publish_in_loop)
    assert done.wait(10)
    assert order == ["published", "handler"]


def test_a_failing_coroutine_handler_is_logged(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    bus = EventBus(loop=loop)

    async def broken_async(event: Event) -> None:
        raise ValueError("async handler bug")

    with caplog.at_level(logging.ERROR, logger="plugyard.events"):
        bus.subscribe(None, broken_async)
        bus.publish(PluginFailed("p", "g", "1", RuntimeError("x")))
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.005)
    (record,) = caplog.records
    assert "broken_async" in record.getMessage()
    assert "PluginFailed" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_a_closed_loop_is_logged_at_publish_and_no_coroutine_is_left_unawaited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    bus = EventBus(loop=loop)
    calls: list[Event] = []

    async def handler(event: Event) -> None:
        calls.append(event)  # pragma: no cover

    bus.subscribe(None, handler)
    loop.close()
    with caplog.at_level(logging.ERROR, logger="plugyard.events"):
        bus.publish(ALL_EVENTS[0])
    gc.collect()
    assert calls == []
    (record,) = caplog.records
    assert "no open event loop" in record.getMessage()


def test_a_plain_handler_returning_a_coroutine_without_a_loop_is_logged_and_closed(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[Event] = []

    async def work(event: Event) -> None:
        ran.append(event)  # pragma: no cover

    bus.subscribe(None, lambda event: work(event))
    with caplog.at_level(logging.ERROR, logger="plugyard.events"):
        bus.publish(ALL_EVENTS[0])
    # An unclosed coroutine would warn "never awaited" here, an error under pytest's config.
    gc.collect()
    assert ran == []
    (record,) = caplog.records
    assert "no open event loop" in record.getMessage()


# -- deferred delivery ---------------------------------------------------------


def test_deferred_holds_events_until_the_block_ends(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)
    with bus.deferred():
        bus.publish(ALL_EVENTS[0])
        bus.publish_all(ALL_EVENTS[1:3])
        assert seen == []
    assert seen == ALL_EVENTS[:3]


def test_nested_deferred_blocks_deliver_when_the_outermost_ends(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)
    with bus.deferred():
        bus.publish(ALL_EVENTS[0])
        with bus.deferred():
            bus.publish(ALL_EVENTS[1])
        assert seen == []
    assert seen == ALL_EVENTS[:2]


def test_deferred_delivers_even_when_the_block_raises(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)

    def failing_lifecycle() -> None:
        with bus.deferred():
            bus.publish(ALL_EVENTS[3])
            raise RuntimeError("lifecycle failed")

    with pytest.raises(RuntimeError, match="lifecycle failed"):
        failing_lifecycle()
    assert seen == [ALL_EVENTS[3]]


def test_deferred_handlers_run_after_the_lock_is_released(bus: EventBus) -> None:
    lock = threading.Lock()
    could_lock: list[bool] = []

    def handler(event: Event) -> None:
        acquired = lock.acquire(blocking=False)
        could_lock.append(acquired)
        if acquired:
            lock.release()

    bus.subscribe(None, handler)
    with bus.deferred(), lock:
        bus.publish(ALL_EVENTS[1])
    assert could_lock == [True]


def test_deferred_does_not_hold_back_other_threads(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)
    with bus.deferred():
        thread = threading.Thread(target=bus.publish, args=(ALL_EVENTS[2],))
        thread.start()
        thread.join()
        assert seen == [ALL_EVENTS[2]]
    assert seen == [ALL_EVENTS[2]]


def test_a_handler_may_publish_while_deferred_events_are_delivered(bus: EventBus) -> None:
    seen: list[Event] = []

    def cascade(event: Event) -> None:
        seen.append(event)
        if isinstance(event, PluginFailed):
            bus.publish(PluginUnloaded(event.plugin, event.group, event.version))

    bus.subscribe(None, cascade)
    failed = PluginFailed("p", "g", "1", RuntimeError("x"))
    with bus.deferred():
        bus.publish(failed)
    assert seen == [failed, PluginUnloaded("p", "g", "1")]


# -- threads ---------------------------------------------------------------------


def test_subscribing_and_unsubscribing_from_threads_while_publishing(bus: EventBus) -> None:
    """Churning subscriptions never disturb delivery to a stable subscriber."""
    stable: list[Event] = []
    bus.subscribe(PluginLoaded, stable.append)
    errors: list[BaseException] = []
    stop = threading.Event()
    churned = [0] * 4

    def churn(slot: int) -> None:
        try:
            while not stop.is_set():
                subscription = bus.subscribe(None, lambda e: None)
                subscription.unsubscribe()
                churned[slot] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    published = [PluginLoaded(f"p{i}", "g", "1") for i in range(5000)]
    try:
        for event in published:
            bus.publish(event)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert stable == published
    assert all(churned)
    assert len(bus.subscriptions) == 1
