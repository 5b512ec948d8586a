"""Interface contracts: a host's protocol or ABC, checked before each plugin is set up."""

from __future__ import annotations

import abc
from typing import Any, Protocol

import pytest
from typing_extensions import assert_type

from plugyard import PluginHandle, PluginManager, PluginState, Registry
from plugyard.exceptions import PluginInterfaceError


class Exporter(Protocol):
    def export(self, rows: list[str], /) -> str: ...

    async def flush(self) -> None: ...


class Store(abc.ABC):
    @abc.abstractmethod
    def put(self, key: str, value: bytes) -> None: ...

    def describe(self) -> str:
        """Not abstract: plugins need not define it."""
        return "store"


class GoodExporter:
    def export(self, rows: list[str]) -> str:
        return ",".join(rows)

    async def flush(self) -> None:
        return None


BAD_EXPORTERS: dict[str, tuple[type, list[str]]] = {
    "missing": (
        type("NoFlush", (), {"export": lambda self, rows: ""}),
        ["it has no method flush()"],
    ),
    "sync-for-async": (
        type("SyncFlush", (), {"export": lambda self, rows: "", "flush": lambda self: None}),
        ["flush() must be async def, as the interface declares it"],
    ),
    "too-few-arguments": (
        type("Nullary", (), {"export": lambda self: "", "flush": GoodExporter.flush}),
        ["export() takes 0 positional arguments; the interface passes 1"],
    ),
    "too-many-required": (
        type("Binary", (), {"export": lambda self, rows, extra: "", "flush": GoodExporter.flush}),
        ["export() takes 2 positional arguments; the interface passes 1"],
    ),
}


def test_a_plugin_that_fits_is_set_up_and_its_handle_is_typed(registry: Registry) -> None:
    registry.register(GoodExporter, name="csv")
    manager = PluginManager(registry, interface=Exporter)
    handle = manager.get("csv")
    assert_type(handle, PluginHandle[Exporter])
    assert_type(handle.instance, Exporter)
    assert handle.instance.export(["a", "b"]) == "a,b"


def test_without_an_interface_handles_are_untyped(registry: Registry) -> None:
    registry.register(GoodExporter, name="csv")
    handle = PluginManager(registry).get("csv")
    assert_type(handle, PluginHandle[Any])


@pytest.mark.parametrize(("plugin", "expected"), BAD_EXPORTERS.values(), ids=BAD_EXPORTERS.keys())
def test_a_plugin_that_does_not_fit_fails_alone_listing_what_is_wrong(
    registry: Registry, plugin: type, expected: list[str]
) -> None:
    registry.register(plugin, name="bad")
    registry.register(GoodExporter, name="good")
    manager = PluginManager(registry, interface=Exporter)
    states = manager.load_all()
    assert states == {"bad": PluginState.FAILED, "good": PluginState.ACTIVE}
    error = manager.errors()["bad"]
    assert isinstance(error, PluginInterfaceError)
    assert error.problems == tuple(expected)
    assert error.interface == f"{__name__}:Exporter"
    assert error.plugin == "bad"


def test_nothing_of_a_plugin_that_does_not_fit_runs(registry: Registry) -> None:
    ran: list[str] = []

    @registry.register(name="bad")
    class Bad:
        def __init__(self) -> None:
            ran.append("init")

        def setup(self, ctx: object) -> None:
            ran.append("setup")

    with pytest.raises(PluginInterfaceError):
        PluginManager(registry, interface=Exporter).load("bad")
    assert ran == []


def test_an_abc_requires_its_abstract_methods_only(registry: Registry) -> None:
    @registry.register(name="memory")
    class Memory:
        def put(self, key: str, value: bytes) -> None:
            self.last = (key, value)

    @registry.register(name="nothing")
    class Nothing:
        def describe(self) -> str:
            return "not a store"

    manager = PluginManager(registry, interface=Store)
    manager.load_all()
    assert manager.states()["memory"] is PluginState.ACTIVE
    error = manager.errors()["nothing"]
    assert isinstance(error, PluginInterfaceError)
    assert error.problems == ("it has no method put()",)


def test_a_function_plugin_fits_an_interface_of_execute_alone(registry: Registry) -> None:
    class Runs(Protocol):
        def execute(self, data: object, /) -> object: ...

    registry.register(lambda data: data, name="echo")
    registry.register(lambda: None, name="nullary")
    manager = PluginManager(registry, interface=Runs)
    manager.load_all()
    assert manager.execute("echo", 3) == 3
    error = manager.errors()["nullary"]
    assert isinstance(error, PluginInterfaceError)
    assert error.problems == ("execute() takes 0 positional arguments; the interface passes 1",)


def test_optional_and_star_arguments_accept_what_the_interface_passes(registry: Registry) -> None:
    @registry.register(name="flexible")
    class Flexible:
        def export(self, *tables: list[str]) -> str:
            return ";".join(",".join(rows) for rows in tables)

        async def flush(self, wait: bool = True) -> None:
            return None

    manager = PluginManager(registry, interface=Exporter)
    assert manager.get("flexible").instance.export(["x", "y"]) == "x,y"
