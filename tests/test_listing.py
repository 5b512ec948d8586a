"""Listing and queries are reads: no events, no state, and no waiting on a setup."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from lifecycle_helpers import WAIT, Gate, Worker, unique_group
from plugyard import (
    Event,
    PluginContext,
    PluginDiscovered,
    PluginInfo,
    PluginManager,
    PluginState,
    Registry,
)
from plugyard.testing import MakeDistribution

PLUGINS = """
import plugyard

def base(data):
    return data + 1

@plugyard.register(group={group!r}, name="top", depends_on=["base"])
class Top:
    def setup(self, ctx):
        self.base = ctx.dependency("base")

    def execute(self, data):
        return self.base.execute(data) * 2
"""


def registered(registry: Registry, make_distribution: MakeDistribution) -> PluginManager:
    """Plugins ``base`` and ``top`` (which depends on it), registered in code."""

    @registry.register(name="base")
    def base(data: int) -> int:
        return data + 1

    @registry.register(name="top", depends_on=["base"])
    class Top:
        def setup(self, ctx: PluginContext) -> None:
            self.base = ctx.dependency("base")

        def execute(self, data: int) -> int:
            return int(self.base.execute(data)) * 2

    return PluginManager(registry)


def installed(registry: Registry, make_distribution: MakeDistribution) -> PluginManager:
    """Plugins ``base`` and ``top`` (which depends on it), from an installed distribution."""
    group = unique_group("tests.listing")
    module = group.replace(".", "_")
    dist_info = make_distribution(
        f"{module}-dist",
        "1.0",
        entry_points={group: {"base": f"{module}:base", "top": f"{module}:Top"}},
        files={f"{module}.py": PLUGINS.format(group=group)},
    )
    return PluginManager(group=group, path=[str(dist_info.parent)])


SOURCES: dict[str, Callable[[Registry, MakeDistribution], PluginManager]] = {
    "registered": registered,
    "installed": installed,
}


@pytest.mark.parametrize("source", SOURCES.values(), ids=SOURCES.keys())
def test_listing_publishes_nothing_and_the_first_load_announces_discovery(
    registry: Registry,
    make_distribution: MakeDistribution,
    source: Callable[[Registry, MakeDistribution], PluginManager],
) -> None:
    with source(registry, make_distribution) as manager:
        seen: list[Event] = []
        manager.events.subscribe(None, seen.append)
        assert [c.name for c in manager.candidates()] == ["base", "top"]
        assert manager.states() == {"base": PluginState.DISCOVERED, "top": PluginState.DISCOVERED}
        assert [c.name for c in manager.candidates()] == ["base", "top"]
        assert seen == []
        assert manager.execute("top", 1) == 4
        discovered = [e.plugin for e in seen if isinstance(e, PluginDiscovered)]
        assert sorted(discovered) == ["base", "top"]


def test_queries_answer_while_a_setup_blocks(registry: Registry, manager: PluginManager) -> None:
    """While A's setup waits in one thread, states, errors, info and metrics return in 2 s."""
    gate = Gate()

    @registry.register(name="A")
    class A:
        def setup(self, ctx: PluginContext) -> None:
            gate.block()

    @registry.register(name="B")
    def b(data: object) -> object:
        return data

    loading = Worker(lambda: manager.load("A"), name="load A").start()
    queries: dict[str, Worker[Any]] = {}
    try:
        assert gate.entered.wait(WAIT), "A's setup never started"
        queries = {
            "states": Worker(manager.states, name="states"),
            "errors": Worker(manager.errors, name="errors"),
            "info": Worker(lambda: manager.info("B"), name="info"),
            "metrics": Worker(manager.metrics, name="metrics"),
        }
        for query in queries.values():
            query.start()
        stuck = [name for name, query in queries.items() if not query.done.wait(2)]
        assert stuck == [], f"blocked behind A's setup: {stuck}"
    finally:
        gate.open()
        loading.join()
        for query in queries.values():
            query.join()
    assert queries["states"].value()["B"] is PluginState.DISCOVERED
    assert queries["errors"].value() == {}
    info = queries["info"].value()
    assert isinstance(info, PluginInfo)
    assert info.name == "B"
    assert isinstance(queries["metrics"].value(), Mapping)
    assert manager.states()["A"] is PluginState.ACTIVE
