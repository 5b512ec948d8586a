"""A manager that was shut down is closed: it refuses work but still answers questions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from plugyard import (
    Event,
    PluginContext,
    PluginHandle,
    PluginManager,
    PluginState,
    Registry,
    exceptions,
)
from plugyard.exceptions import PluginError


def plugins(registry: Registry, log: list[str]) -> None:
    """``echo`` (logs its teardown), ``idle`` (never used) and ``broken`` (missing dependency)."""

    @registry.register(name="echo")
    class Echo:
        def execute(self, data: object) -> object:
            return data

        def teardown(self) -> None:
            log.append("teardown echo")

    @registry.register(name="idle")
    def idle(data: object) -> object:
        return data

    @registry.register(name="broken", depends_on=["ghost"])
    class Broken:
        def setup(self, ctx: PluginContext) -> None:
            pass


def test_a_manager_is_open_until_shutdown(registry: Registry, manager: PluginManager) -> None:
    plugins(registry, [])
    assert manager.closed is False
    manager.load("echo")
    manager.unload("echo")
    manager.load_all()
    assert manager.closed is False
    manager.shutdown()
    assert manager.closed is True


REFUSED: dict[str, Callable[[PluginManager, PluginHandle], Any]] = {
    "execute": lambda manager, handle: manager.execute("echo", 1),
    "execute-never-loaded": lambda manager, handle: manager.execute("idle", 1),
    "get": lambda manager, handle: manager.get("echo"),
    "load": lambda manager, handle: manager.load("echo"),
    "load_all": lambda manager, handle: manager.load_all(),
    "handle.execute": lambda manager, handle: handle.execute(1),
    "aexecute": lambda manager, handle: asyncio.run(manager.aexecute("echo", 1)),
}


@pytest.mark.parametrize("operation", REFUSED.values(), ids=REFUSED.keys())
def test_a_closed_manager_refuses_work(
    registry: Registry,
    manager: PluginManager,
    operation: Callable[[PluginManager, PluginHandle], Any],
) -> None:
    log: list[str] = []
    plugins(registry, log)
    handle = manager.load("echo")
    manager.shutdown()
    with pytest.raises(exceptions.ManagerClosedError) as exc:
        operation(manager, handle)
    assert exc.value.group == registry.group
    assert isinstance(exc.value, PluginError)
    assert isinstance(exc.value, RuntimeError)
    assert log == ["teardown echo"]
    assert manager.states()["echo"] is PluginState.UNLOADED
    assert manager.states()["idle"] is PluginState.DISCOVERED


def test_a_closed_manager_still_lists_states_errors_and_candidates(
    registry: Registry, manager: PluginManager
) -> None:
    plugins(registry, [])
    manager.load("echo")
    manager.load_all()
    manager.shutdown()
    assert manager.states() == {
        "broken": PluginState.FAILED,
        "echo": PluginState.UNLOADED,
        "idle": PluginState.UNLOADED,
    }
    assert list(manager.errors()) == ["broken"]
    assert {c.name: c.state for c in manager.candidates()} == manager.states()


def test_a_second_shutdown_is_a_no_op(registry: Registry, manager: PluginManager) -> None:
    log: list[str] = []
    plugins(registry, log)
    manager.load("echo")
    manager.shutdown()
    seen: list[Event] = []
    manager.events.subscribe(None, seen.append)
    manager.shutdown()
    assert log == ["teardown echo"]
    assert seen == []
    assert manager.closed is True


def test_leaving_the_with_block_closes_the_manager(registry: Registry) -> None:
    log: list[str] = []
    plugins(registry, log)
    with PluginManager(registry) as manager:
        assert manager.execute("echo", 1) == 1
    assert manager.closed is True
    assert log == ["teardown echo"]
    with pytest.raises(exceptions.ManagerClosedError) as exc:
        manager.execute("echo", 1)
    assert exc.value.group == registry.group
