"""Calls from many threads while lifecycle operations run."""

from __future__ import annotations

import threading

from plugyard import PluginContext, PluginManager, PluginState, Registry


def test_calls_never_fail_while_other_plugins_load_and_unload(
    registry: Registry, manager: PluginManager
) -> None:
    """8 threads execute one plugin while a 9th loads and unloads 20 others."""

    @registry.register(name="hot")
    def hot(data: int) -> int:
        return data + 1

    for i in range(20):

        @registry.register(name=f"churn{i}", depends_on=[f"churn{i - 1}"] if i else None)
        class Churn:
            def setup(self, ctx: PluginContext) -> None:
                self.ready = True

            def execute(self, data: int) -> int:
                return data

    manager.load("hot")
    stop = threading.Event()
    failures: list[BaseException] = []
    calls = [0] * 8

    def caller(slot: int) -> None:
        try:
            while not stop.is_set():
                assert manager.execute("hot", slot) == slot + 1
                calls[slot] += 1
        except BaseException as exc:
            failures.append(exc)

    def churner() -> None:
        try:
            for _ in range(30):
                manager.load("churn19")
                manager.unload("churn0", cascade=True)
        except BaseException as exc:
            failures.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=churner))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck: deadlock"
    assert failures == []
    assert all(count > 0 for count in calls)
    assert manager.states()["hot"] is PluginState.ACTIVE
    assert manager.states()["churn5"] is PluginState.UNLOADED


def test_concurrent_first_calls_set_a_plugin_up_once(
    registry: Registry, manager: PluginManager
) -> None:
    """Lazy loading from 8 threads at once runs setup exactly once."""
    setups: list[int] = []
    barrier = threading.Barrier(8)

    @registry.register(name="lazy")
    class Lazy:
        def setup(self, ctx: PluginContext) -> None:
            setups.append(1)

        def execute(self, data: int) -> int:
            return data * 2

    results: list[int] = []

    def first_call(i: int) -> None:
        barrier.wait()
        results.append(manager.execute("lazy", i))

    threads = [threading.Thread(target=first_call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert setups == [1]
    assert sorted(results) == [2 * i for i in range(8)]
