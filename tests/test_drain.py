"""Unload and shutdown drain: new calls are refused, calls in flight finish, then teardown."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lifecycle_helpers import WAIT, Recorder, Worker, register_recorder, wait_until
from plugyard import PluginContext, PluginHandle, PluginManager, PluginState, Registry, exceptions
from plugyard.exceptions import PluginNotActiveError, PluginStateError


@pytest.fixture(name="slow")
def fixture_slow(registry: Registry) -> Iterator[Recorder]:
    """Plugin ``slow``, whose ``execute("block")`` waits at ``slow.gate``; opened after the test."""
    slow = register_recorder(registry, "slow")
    yield slow
    slow.gate.open()


def start_blocked_call(handle: PluginHandle, slow: Recorder) -> Worker[Any]:
    """A call to ``handle`` in another thread, returned once it is inside the plugin."""
    call = Worker(lambda: handle.execute("block"), name="blocked call").start()
    assert slow.gate.entered.wait(WAIT), "the call never reached the plugin"
    return call


def wait_for_refusal(manager: PluginManager, name: str = "slow") -> None:
    """Wait until calls to ``name`` are refused: the unload in another thread has begun."""

    def refused() -> bool:
        try:
            manager.execute(name, "probe")
        except PluginNotActiveError:
            return True
        return False

    assert wait_until(refused), f"calls to {name!r} were never refused"


CALLS: dict[str, Callable[[PluginManager, PluginHandle], Any]] = {
    "manager.execute": lambda manager, handle: manager.execute("slow", "after"),
    "manager.get().execute": lambda manager, handle: manager.get("slow").execute("after"),
    "a handle got earlier": lambda manager, handle: handle.execute("after"),
}


def test_unload_waits_for_the_call_in_flight_then_tears_down(
    manager: PluginManager, slow: Recorder
) -> None:
    """The call inside finishes on the old instance; teardown runs only after it returned."""
    handle = manager.load("slow")
    call = start_blocked_call(handle, slow)
    unload = Worker(lambda: manager.unload("slow"), name="unload").start()
    try:
        wait_for_refusal(manager)
        assert not slow.torn_down.is_set(), "teardown ran while a call was inside"
        assert unload.thread.is_alive(), "unload returned while a call was inside"
    finally:
        slow.gate.open()
    assert call.value() == (1, "block")
    unload.value()
    assert slow.teardowns == 1
    assert slow.inside_at_teardown == [0]
    assert slow.after_teardown == []
    assert manager.states()["slow"] is PluginState.UNLOADED


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_calls_made_while_unloading_are_refused_and_never_reach_the_instance(
    manager: PluginManager, slow: Recorder, call: Callable[[PluginManager, PluginHandle], Any]
) -> None:
    handle = manager.load("slow")
    blocked = start_blocked_call(handle, slow)
    unload = Worker(lambda: manager.unload("slow"), name="unload").start()
    try:
        wait_for_refusal(manager)
        with pytest.raises(PluginNotActiveError) as exc:
            call(manager, handle)
        assert exc.value.plugin == "slow"
        assert "after" not in slow.received
    finally:
        slow.gate.open()
    blocked.value()
    unload.value()
    assert "after" not in slow.received


def test_shutdown_waits_for_the_call_in_flight_then_tears_down(
    manager: PluginManager, slow: Recorder
) -> None:
    handle = manager.load("slow")
    call = start_blocked_call(handle, slow)
    shutdown = Worker(manager.shutdown, name="shutdown").start()
    try:
        wait_for_refusal(manager)
        assert not slow.torn_down.is_set(), "teardown ran while a call was inside"
        assert shutdown.thread.is_alive(), "shutdown returned while a call was inside"
    finally:
        slow.gate.open()
    assert call.value() == (1, "block")
    shutdown.value()
    assert slow.inside_at_teardown == [0]
    assert manager.states()["slow"] is PluginState.UNLOADED


def check_busy(error: BaseException, plugin: str, timeout: float) -> None:
    """``error`` is the PluginBusyError of one call still running in ``plugin``."""
    assert isinstance(error, exceptions.PluginBusyError)
    assert isinstance(error, PluginStateError)
    assert isinstance(error, TimeoutError)
    assert (error.plugin, error.calls, error.timeout) == (plugin, 1, timeout)
    assert plugin in str(error)
    assert re.search(r"\b1\b", str(error)), f"the number of calls is not in {str(error)!r}"


def test_unload_that_times_out_raises_busy_and_leaves_the_plugin_working(
    manager: PluginManager, slow: Recorder
) -> None:
    handle = manager.load("slow")
    call = start_blocked_call(handle, slow)
    try:
        with pytest.raises(exceptions.PluginBusyError) as exc:
            manager.unload("slow", timeout=0.2)
        check_busy(exc.value, "slow", 0.2)
        assert not slow.torn_down.is_set()
        assert manager.states()["slow"] is PluginState.ACTIVE
        assert handle.execute("again") == (1, "again")
        assert manager.execute("slow", "again") == (1, "again")
    finally:
        slow.gate.open()
    assert call.value() == (1, "block")
    assert slow.teardowns == 0


def test_drain_timeout_is_the_default_of_unload_and_shutdown(
    registry: Registry, slow: Recorder
) -> None:
    with PluginManager(registry, drain_timeout=0.2) as manager:
        handle = manager.load("slow")
        call = start_blocked_call(handle, slow)
        try:
            with pytest.raises(exceptions.PluginBusyError) as unload:
                manager.unload("slow")
            check_busy(unload.value, "slow", 0.2)
            with pytest.raises(exceptions.PluginBusyError) as shutdown:
                manager.shutdown()
            check_busy(shutdown.value, "slow", 0.2)
            assert manager.states()["slow"] is PluginState.ACTIVE
        finally:
            slow.gate.open()
        call.value()
    assert slow.teardowns == 1


def test_cascade_unload_that_times_out_tears_nothing_down(
    registry: Registry, manager: PluginManager, slow: Recorder
) -> None:
    """A busy dependency keeps its idle dependents up too: all or nothing."""
    log: list[str] = []

    @registry.register(name="top", depends_on=["slow"])
    class Top:
        def setup(self, ctx: PluginContext) -> None:
            self.slow = ctx.dependency("slow")

        def execute(self, data: object) -> object:
            return data

        def teardown(self) -> None:
            log.append("teardown top")

    manager.load("top")
    call = start_blocked_call(manager.get("slow"), slow)
    try:
        with pytest.raises(exceptions.PluginBusyError) as exc:
            manager.unload("slow", cascade=True, timeout=0.2)
        check_busy(exc.value, "slow", 0.2)
        assert log == []
        assert not slow.torn_down.is_set()
        assert manager.states() == {"slow": PluginState.ACTIVE, "top": PluginState.ACTIVE}
        assert manager.execute("top", 1) == 1
        assert manager.execute("slow", "again") == (1, "again")
    finally:
        slow.gate.open()
    call.value()


def test_shutdown_that_times_out_tears_nothing_down(
    registry: Registry, manager: PluginManager, slow: Recorder
) -> None:
    """``slow`` is set up first, so torn down last: ``quick`` must not go before it fails."""
    log: list[str] = []

    @registry.register(name="quick")
    class Quick:
        def execute(self, data: object) -> object:
            return data

        def teardown(self) -> None:
            log.append("teardown quick")

    handle = manager.load("slow")
    manager.load("quick")
    call = start_blocked_call(handle, slow)
    try:
        with pytest.raises(exceptions.PluginBusyError) as exc:
            manager.shutdown(timeout=0.2)
        check_busy(exc.value, "slow", 0.2)
        assert log == []
        assert not slow.torn_down.is_set()
        assert manager.states() == {"quick": PluginState.ACTIVE, "slow": PluginState.ACTIVE}
        assert manager.execute("quick", 1) == 1
        assert handle.execute("again") == (1, "again")
    finally:
        slow.gate.open()
    call.value()
    manager.shutdown()
    assert log == ["teardown quick"]
    assert slow.teardowns == 1


def test_no_call_reaches_an_instance_after_its_teardown(
    registry: Registry, manager: PluginManager
) -> None:
    """8 threads call while a 9th unloads and loads 30 times: each call returns or is refused."""
    churn = register_recorder(registry, "churn")
    handle = manager.load("churn")
    stop = threading.Event()
    unexpected: list[BaseException] = []
    results = [0] * 8
    first_result = [threading.Event() for _ in range(8)]

    def through_manager(data: object) -> Any:
        return manager.execute("churn", data)

    def through_handle(data: object) -> Any:
        return handle.execute(data)

    def caller(slot: int) -> None:
        call = through_handle if slot % 2 else through_manager
        while not stop.is_set():
            try:
                _, data = call(slot)
            except PluginNotActiveError:
                continue
            except BaseException as exc:
                unexpected.append(exc)
                return
            if data != slot:
                unexpected.append(AssertionError(f"caller {slot} got {data!r}"))
                return
            results[slot] += 1
            first_result[slot].set()

    def churner() -> None:
        for _ in range(30):
            manager.unload("churn")
            manager.load("churn")

    callers = [Worker(functools.partial(caller, i), name=f"caller {i}").start() for i in range(8)]
    try:
        for slot, started in enumerate(first_result):
            assert started.wait(WAIT), f"caller {slot} never got a result"
        churning = Worker(churner, name="churner").start()
        churning.value(timeout=60)
    finally:
        stop.set()
        for worker in callers:
            worker.join(timeout=60)
    assert unexpected == []
    assert all(count > 0 for count in results)
    assert churn.teardowns == 30
    assert churn.after_teardown == []
    assert churn.inside_at_teardown == [0] * 30
    assert manager.states()["churn"] is PluginState.ACTIVE


def test_an_interrupt_while_waiting_reopens_the_plugin(registry: Registry) -> None:
    """Ctrl-C during the wait of an unload leaves the plugin active and callable."""
    inside, release = threading.Event(), threading.Event()

    @registry.register(name="slow")
    class Slow:
        def execute(self, data: object) -> object:
            if data == "block":
                inside.set()
                release.wait(5)
            return data

    manager = PluginManager(registry)
    handle = manager.get("slow")
    caller = threading.Thread(target=handle.execute, args=("block",))
    caller.start()
    assert inside.wait(5)
    interrupts = iter([KeyboardInterrupt()])

    def sleep_then_interrupt(seconds: float) -> None:
        raise next(interrupts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("plugyard._lifecycle.time.sleep", sleep_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            manager.unload("slow")
    release.set()
    caller.join(5)
    assert manager.states()["slow"] is PluginState.ACTIVE
    assert handle.execute("after") == "after"
    manager.shutdown()
