"""Calling every plugin (map, amap, iteration) and any method of one (handle.call)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from plugyard import MapResult, PluginContext, PluginManager, PluginState, Registry
from plugyard.exceptions import PluginBusyError, PluginError, PluginNotActiveError


def exporters(registry: Registry) -> None:
    @registry.register(name="base")
    class Base:
        def export(self, rows: list[str]) -> str:
            return "base:" + ",".join(rows)

    @registry.register(name="json", depends_on=["base"])
    class Json:
        def setup(self, ctx: PluginContext) -> None:
            self.base = ctx.dependency("base")

        def export(self, rows: list[str], *, indent: int = 0) -> str:
            return " " * indent + "json:" + ",".join(rows)

    @registry.register(name="broken")
    class Broken:
        def export(self, rows: list[str]) -> str:
            raise ValueError("cannot export")

    @registry.register(name="quiet")
    class Quiet:
        def execute(self, data: object) -> object:
            return data

    @registry.register(name="unready")
    class Unready:
        def setup(self, ctx: PluginContext) -> None:
            raise RuntimeError("no")


def test_map_calls_every_active_plugin_in_dependency_order(registry: Registry) -> None:
    exporters(registry)
    manager = PluginManager(registry)
    results = manager.map("export", ["a"])
    assert list(results) == ["base", "broken", "json", "quiet"]
    assert results["base"] == MapResult("base", "base:a")
    assert results["json"].unwrap() == "json:a"
    assert not results["broken"].ok
    assert isinstance(results["broken"].error, ValueError)
    assert isinstance(results["quiet"].error, PluginError)
    assert "has no method export()" in str(results["quiet"].error)
    assert "unready" not in results  # failed to load: in errors(), not called
    assert manager.states()["unready"] is PluginState.FAILED


def test_map_passes_keywords_and_counts_each_call_in_the_plugins_metrics(
    registry: Registry,
) -> None:
    exporters(registry)
    manager = PluginManager(registry)
    manager.map("export", ["b"])
    results = manager.map("export", ["b"], propagate=False)
    assert results["base"].value == "base:b"
    assert manager.metrics("base").calls == 2
    assert manager.metrics("broken").errors == 2


def test_map_with_propagate_raises_the_first_error(registry: Registry) -> None:
    exporters(registry)
    with pytest.raises(ValueError, match="cannot export"):
        PluginManager(registry).map("export", ["c"], propagate=True)


def test_iterating_a_manager_yields_active_handles_in_dependency_order(registry: Registry) -> None:
    exporters(registry)
    manager = PluginManager(registry)
    names = [handle.name for handle in manager]
    assert names == ["base", "broken", "json", "quiet"]


def test_handle_call_reaches_any_method_with_arguments(registry: Registry) -> None:
    exporters(registry)
    manager = PluginManager(registry)
    handle = manager.get("json")
    assert handle.call("export", ["x", "y"], indent=2) == "  json:x,y"
    with pytest.raises(PluginError, match="has no method missing"):
        handle.call("missing")
    with pytest.raises(PluginError, match="has no method _private"):
        handle.call("_private")


def test_handle_call_of_an_unloaded_plugin_is_refused(registry: Registry) -> None:
    exporters(registry)
    manager = PluginManager(registry)
    handle = manager.get("quiet")
    manager.unload("quiet")
    with pytest.raises(PluginNotActiveError) as refused:
        handle.call("execute", 1)
    assert refused.value.state == "unloaded"


def test_an_unload_waits_for_a_handle_call_in_flight(registry: Registry) -> None:
    inside, release = threading.Event(), threading.Event()

    @registry.register(name="slow")
    class Slow:
        def work(self) -> str:
            inside.set()
            release.wait(5)
            return "done"

    manager = PluginManager(registry)
    handle = manager.get("slow")
    results: list[str] = []
    caller = threading.Thread(target=lambda: results.append(handle.call("work")))
    caller.start()
    assert inside.wait(5)
    with pytest.raises(PluginBusyError) as busy:
        manager.unload("slow", timeout=0.05)
    assert busy.value.calls == 1
    release.set()
    caller.join(5)
    manager.unload("slow")
    assert results == ["done"]


def test_amap_awaits_async_methods_in_order(registry: Registry) -> None:
    @registry.register(name="first")
    class First:
        async def ping(self, n: int) -> int:
            await asyncio.sleep(0)
            return n + 1

    @registry.register(name="second", depends_on=["first"])
    class Second:
        def ping(self, n: int) -> int:
            return n + 2

    async def main() -> dict[str, MapResult]:
        async with PluginManager(registry) as manager:
            return await manager.amap("ping", 1)

    results = asyncio.run(main())
    assert {name: r.value for name, r in results.items()} == {"first": 2, "second": 3}


def test_a_map_result_unwraps_to_its_value_or_raises_its_error() -> None:
    assert MapResult("a", 3).unwrap() == 3
    error = ValueError("no")
    with pytest.raises(ValueError, match="no") as raised:
        MapResult("b", error=error).unwrap()
    assert raised.value is error


def test_amap_with_propagate_raises_the_first_error(registry: Registry) -> None:
    @registry.register(name="bad")
    class Bad:
        async def ping(self) -> None:
            raise LookupError("async failure")

    async def main() -> None:
        async with PluginManager(registry) as manager:
            await manager.amap("ping", propagate=True)

    with pytest.raises(LookupError, match="async failure"):
        asyncio.run(main())


@pytest.mark.parametrize("metrics", [True, False])
def test_async_methods_are_counted_across_the_await(registry: Registry, metrics: bool) -> None:
    """handle.call and execute of async methods keep the call in flight until it is awaited."""
    seen: list[int] = []

    @registry.register(name="waits")
    class Waits:
        async def execute(self, data: int) -> int:
            await asyncio.sleep(0)
            seen.append(len(handle._slot.calls))  # type: ignore[union-attr]
            return data * 2

        async def other(self, data: int) -> int:
            await asyncio.sleep(0)
            seen.append(len(handle._slot.calls))  # type: ignore[union-attr]
            return data + 1

    manager = PluginManager(registry, metrics=metrics)
    handle = manager.get("waits")

    async def main() -> tuple[int, int]:
        return await handle.execute(2), await handle.call("other", 2)

    assert asyncio.run(main()) == (4, 3)
    assert seen == [1, 1]
    assert handle._slot.calls == []  # type: ignore[union-attr]
    manager.unload("waits")
    with pytest.raises(PluginNotActiveError):
        asyncio.run(handle.execute(1))
