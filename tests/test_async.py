"""The async API: coroutine lifecycle methods are awaited on the caller's loop.

Each test runs its coroutine with ``asyncio.run``; the sync API refuses
coroutine lifecycle methods rather than leave a coroutine un-awaited.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from lifecycle_helpers import WAIT, Worker, register_recorder
from plugyard import PluginContext, PluginManager, PluginState, Registry, exceptions
from plugyard.exceptions import PluginError


def test_aexecute_loads_lazily_and_awaits_an_async_execute(
    registry: Registry, manager: PluginManager
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    @registry.register(name="double")
    class Double:
        async def setup(self, ctx: PluginContext) -> None:
            loops.append(asyncio.get_running_loop())

        async def execute(self, data: int) -> int:
            await asyncio.sleep(0)
            return data * 2

    async def main() -> None:
        assert manager.states()["double"] is PluginState.DISCOVERED
        assert await manager.aexecute("double", 21) == 42
        assert loops == [asyncio.get_running_loop()]
        assert await manager.aexecute("double", 1) == 2
        assert len(loops) == 1

    asyncio.run(main())
    assert manager.states()["double"] is PluginState.ACTIVE


def test_aexecute_calls_a_sync_execute(registry: Registry, manager: PluginManager) -> None:
    @registry.register
    def echo(data: object) -> object:
        return data

    async def main() -> tuple[object, object]:
        return await manager.aexecute("echo", 4), await manager.aexecute("echo")

    assert asyncio.run(main()) == (4, None)


def test_aload_awaits_an_async_setup_on_the_callers_loop(
    registry: Registry, manager: PluginManager
) -> None:
    seen: list[tuple[str, asyncio.AbstractEventLoop]] = []

    @registry.register(name="a")
    class A:
        async def setup(self, ctx: PluginContext) -> None:
            await asyncio.sleep(0)
            seen.append((ctx.info.name, asyncio.get_running_loop()))

        def execute(self, data: object) -> object:
            return data

    async def main() -> asyncio.AbstractEventLoop:
        await manager.aload("a")
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert seen == [("a", loop)]
    assert manager.states()["a"] is PluginState.ACTIVE
    assert manager.execute("a", 3) == 3


def test_aload_all_sets_up_in_dependency_order_on_the_callers_loop(
    registry: Registry, manager: PluginManager
) -> None:
    log: list[tuple[str, asyncio.AbstractEventLoop | None]] = []

    @registry.register(name="base")
    class Base:
        async def setup(self, ctx: PluginContext) -> None:
            await asyncio.sleep(0)
            log.append(("base", asyncio.get_running_loop()))

    @registry.register(name="top", depends_on=["base"])
    class Top:
        async def setup(self, ctx: PluginContext) -> None:
            self.base = ctx.dependency("base")
            log.append(("top", asyncio.get_running_loop()))

    @registry.register(name="plain", depends_on=["top"])
    class Plain:
        def setup(self, ctx: PluginContext) -> None:
            log.append(("plain", None))

    async def main() -> asyncio.AbstractEventLoop:
        await manager.aload_all()
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert log == [("base", loop), ("top", loop), ("plain", None)]
    assert set(manager.states().values()) == {PluginState.ACTIVE}


def async_teardowns(registry: Registry, log: list[tuple[str, asyncio.AbstractEventLoop]]) -> None:
    """Register base <- top, both with an async teardown that logs the loop it runs on."""

    @registry.register(name="base")
    class Base:
        async def teardown(self) -> None:
            await asyncio.sleep(0)
            log.append(("base", asyncio.get_running_loop()))

    @registry.register(name="top", depends_on=["base"])
    class Top:
        async def teardown(self) -> None:
            log.append(("top", asyncio.get_running_loop()))


def test_aunload_awaits_async_teardowns_dependents_first(registry: Registry) -> None:
    log: list[tuple[str, asyncio.AbstractEventLoop]] = []
    async_teardowns(registry, log)
    manager = PluginManager(registry)

    async def main() -> asyncio.AbstractEventLoop:
        try:
            await manager.aload("top")
            await manager.aunload("base", cascade=True)
            return asyncio.get_running_loop()
        finally:
            await manager.ashutdown()

    loop = asyncio.run(main())
    assert log == [("top", loop), ("base", loop)]
    assert manager.states() == {"base": PluginState.UNLOADED, "top": PluginState.UNLOADED}


def test_ashutdown_awaits_every_async_teardown_in_reverse_order(registry: Registry) -> None:
    log: list[tuple[str, asyncio.AbstractEventLoop]] = []
    async_teardowns(registry, log)
    manager = PluginManager(registry)

    async def main() -> asyncio.AbstractEventLoop:
        await manager.aload_all()
        await manager.ashutdown()
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert log == [("top", loop), ("base", loop)]
    assert manager.closed is True


def test_aunload_that_times_out_raises_busy_and_tears_nothing_down(
    registry: Registry, manager: PluginManager
) -> None:
    slow = register_recorder(registry, "slow")
    handle = manager.load("slow")
    call = Worker(lambda: handle.execute("block"), name="blocked call").start()
    try:
        assert slow.gate.entered.wait(WAIT), "the call never reached the plugin"
        with pytest.raises(exceptions.PluginBusyError) as exc:
            asyncio.run(manager.aunload("slow", timeout=0.2))
        assert (exc.value.plugin, exc.value.calls, exc.value.timeout) == ("slow", 1, 0.2)
        assert manager.states()["slow"] is PluginState.ACTIVE
        assert slow.teardowns == 0
    finally:
        slow.gate.open()
    assert call.value() == (1, "block")


def test_aconfigure_awaits_an_async_configure(registry: Registry, manager: PluginManager) -> None:
    received: list[tuple[dict[str, Any], asyncio.AbstractEventLoop]] = []

    @registry.register(name="tunable")
    class Tunable:
        async def configure(self, config: Any) -> None:
            await asyncio.sleep(0)
            received.append((dict(config), asyncio.get_running_loop()))

    manager.load("tunable")

    async def main() -> asyncio.AbstractEventLoop:
        await manager.aconfigure("tunable", {"level": 3})
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert received == [({"level": 3}, loop)]
    assert dict(manager.config("tunable")) == {"level": 3}


def test_async_with_shuts_the_manager_down_on_exit(registry: Registry) -> None:
    log: list[tuple[str, asyncio.AbstractEventLoop]] = []
    async_teardowns(registry, log)
    manager = PluginManager(registry)

    async def main() -> asyncio.AbstractEventLoop:
        async with manager:
            await manager.aload_all()
            assert log == []
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert log == [("top", loop), ("base", loop)]
    assert manager.closed is True


SYNC_STARTS: dict[str, Callable[[PluginManager], Any]] = {
    "load": lambda manager: manager.load("later"),
    "get": lambda manager: manager.get("later"),
    "execute": lambda manager: manager.execute("later", 1),
}


@pytest.mark.parametrize("start", SYNC_STARTS.values(), ids=SYNC_STARTS.keys())
def test_the_sync_api_refuses_an_async_setup_and_aload_starts_it_later(
    registry: Registry, manager: PluginManager, start: Callable[[PluginManager], Any]
) -> None:
    """The plugin fails pointing at aload; no coroutine is created to be left un-awaited."""
    loops: list[asyncio.AbstractEventLoop] = []

    @registry.register(name="later")
    class Later:
        async def setup(self, ctx: PluginContext) -> None:
            loops.append(asyncio.get_running_loop())

        def execute(self, data: object) -> object:
            return data

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The refusal names the async call that does the same: aload, or aexecute.
        with pytest.raises(PluginError, match=r"aload|aexecute") as exc:
            start(manager)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert exc.value.plugin == "later"
    assert manager.states()["later"] is PluginState.FAILED
    assert loops == []

    async def main() -> asyncio.AbstractEventLoop:
        await manager.aload("later")
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert loops == [loop]
    assert manager.states()["later"] is PluginState.ACTIVE
    assert manager.errors() == {}


def test_load_all_fails_an_async_setup_pointing_at_aload(
    registry: Registry, manager: PluginManager
) -> None:
    @registry.register(name="later")
    class Later:
        async def setup(self, ctx: PluginContext) -> None:
            pass

    @registry.register
    def ready(data: object) -> object:
        return data

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        states = manager.load_all()
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert states == {"later": PluginState.FAILED, "ready": PluginState.ACTIVE}
    error = manager.errors()["later"]
    assert isinstance(error, PluginError)
    assert "aload" in str(error)


def test_sync_shutdown_refuses_an_async_teardown_and_tears_nothing_down(
    registry: Registry,
) -> None:
    log: list[str] = []

    @registry.register(name="plain")
    class Plain:
        def execute(self, data: object) -> object:
            return data

        def teardown(self) -> None:
            log.append("plain")

    @registry.register(name="coro")
    class Coro:
        async def teardown(self) -> None:
            log.append("coro")

    manager = PluginManager(registry)
    manager.load("coro")
    manager.load("plain")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PluginError, match="ashutdown"):
            manager.shutdown()
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert log == []
    assert manager.states() == {"coro": PluginState.ACTIVE, "plain": PluginState.ACTIVE}
    assert manager.execute("plain", 1) == 1
    asyncio.run(manager.ashutdown())
    assert sorted(log) == ["coro", "plain"]
    assert manager.closed is True
