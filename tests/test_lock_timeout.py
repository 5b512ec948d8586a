"""Waiting for the manager's lock gives up after ``lock_timeout``, naming who holds it."""

from __future__ import annotations

import pytest

from lifecycle_helpers import WAIT, Gate, Worker
from plugyard import PluginContext, PluginManager, PluginState, Registry, exceptions
from plugyard.exceptions import PluginError


def register_b(registry: Registry) -> None:
    @registry.register(name="B")
    def b(data: int) -> int:
        return data + 1


def test_a_setup_waiting_on_a_thread_that_needs_the_lock_does_not_deadlock(
    registry: Registry,
) -> None:
    """A's setup joins a thread that lazily loads B: the thread gives up, naming A."""
    register_b(registry)
    outcome: list[Worker[object]] = []
    still_waiting: list[bool] = []

    @registry.register(name="A")
    class A:
        def setup(self, ctx: PluginContext) -> None:
            worker = Worker(lambda: manager.execute("B", 1), name="execute B")
            outcome.append(worker.start())
            worker.thread.join(5)
            still_waiting.append(worker.thread.is_alive())

    with PluginManager(registry, lock_timeout=0.5) as manager:
        manager.load("A")
        assert manager.states()["A"] is PluginState.ACTIVE
        assert still_waiting == [False], "the call waited on the lock for 5 s"
        (worker,) = outcome
        worker.join()
        error = worker.error
        assert isinstance(error, exceptions.ManagerBusyError)
        assert isinstance(error, PluginError)
        assert isinstance(error, TimeoutError)
        assert error.holder == "A"
        assert error.timeout == 0.5
        assert manager.execute("B", 1) == 2


def test_a_load_waiting_behind_a_slow_setup_gives_up_naming_it(registry: Registry) -> None:
    register_b(registry)
    gate = Gate()

    @registry.register(name="A")
    class A:
        def setup(self, ctx: PluginContext) -> None:
            gate.block()

    with PluginManager(registry, lock_timeout=0.5) as manager:
        loading = Worker(lambda: manager.load("A"), name="load A").start()
        try:
            assert gate.entered.wait(WAIT), "A's setup never started"
            with pytest.raises(exceptions.ManagerBusyError) as exc:
                manager.load("B")
            assert exc.value.holder == "A"
            assert exc.value.timeout == 0.5
        finally:
            gate.open()
        loading.value()
        assert manager.states() == {"A": PluginState.ACTIVE, "B": PluginState.DISCOVERED}
        assert manager.execute("B", 1) == 2
