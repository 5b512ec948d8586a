"""The manager: lazy loading, dependency order, failures, unload and shutdown."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from plugyard import PluginContext, PluginManager, PluginState, Registry, get_registry
from plugyard.exceptions import (
    DependencyFailedError,
    DependencyVersionError,
    DependentsActiveError,
    MissingDependencyError,
    PluginError,
    PluginNotActiveError,
    PluginNotFoundError,
    PluginSetupError,
)


def chain(registry: Registry, log: list[str]) -> None:
    """Register tokenize <- normalize <- count, each logging setup and teardown."""

    @registry.register(name="tokenize", version="1.2")
    class Tokenize:
        def setup(self, ctx: PluginContext) -> None:
            log.append("setup tokenize")

        def execute(self, text: str) -> list[str]:
            return text.split()

        def teardown(self) -> None:
            log.append("teardown tokenize")

    @registry.register(name="normalize", depends_on={"tokenize": ">=1,<2"})
    class Normalize:
        def setup(self, ctx: PluginContext) -> None:
            log.append("setup normalize")
            self.tokenize = ctx.dependency("tokenize")

        def execute(self, text: str) -> list[str]:
            return [w.lower() for w in self.tokenize.execute(text)]

        def teardown(self) -> None:
            log.append("teardown normalize")

    @registry.register(name="count", depends_on=["normalize"])
    class Count:
        def setup(self, ctx: PluginContext) -> None:
            log.append("setup count")
            self.normalize = ctx.dependency("normalize")

        def execute(self, text: str) -> int:
            return len(set(self.normalize.execute(text)))

        def teardown(self) -> None:
            log.append("teardown count")


def test_execute_loads_lazily_with_dependencies_first(
    registry: Registry, manager: PluginManager
) -> None:
    log: list[str] = []
    chain(registry, log)
    assert log == []
    assert set(manager.states().values()) == {PluginState.DISCOVERED}
    assert manager.execute("count", "A a B") == 2
    assert log == ["setup tokenize", "setup normalize", "setup count"]
    assert manager.execute("count", "x") == 1
    assert log == ["setup tokenize", "setup normalize", "setup count"]


def test_get_returns_the_same_handle_which_executes(
    registry: Registry, manager: PluginManager
) -> None:
    chain(registry, [])
    handle = manager.get("normalize")
    assert handle is manager.get("normalize")
    assert handle.execute("Hello World") == ["hello", "world"]
    assert handle.state is PluginState.ACTIVE
    assert handle.info.name == "normalize"
    assert manager.states()["count"] is PluginState.DISCOVERED
    assert repr(handle) == "<PluginHandle 'normalize' active>"


def test_function_plugin_executes_the_function(registry: Registry, manager: PluginManager) -> None:
    @registry.register
    def double(x: int) -> int:
        return 2 * x

    assert manager.execute("double", 4) == 8
    assert manager.get("double").instance.execute is double


def test_load_all_orders_setup_and_shutdown_reverses(
    registry: Registry, manager: PluginManager
) -> None:
    log: list[str] = []
    chain(registry, log)
    states = manager.load_all()
    assert dict(states) == dict.fromkeys(["count", "normalize", "tokenize"], PluginState.ACTIVE)
    manager.shutdown()
    assert log == [
        "setup tokenize",
        "setup normalize",
        "setup count",
        "teardown count",
        "teardown normalize",
        "teardown tokenize",
    ]
    assert set(manager.states().values()) == {PluginState.UNLOADED}


def test_setup_failure_fails_plugin_and_dependents_rest_active(
    registry: Registry, manager: PluginManager
) -> None:
    @registry.register
    class Broken:
        def setup(self, ctx: PluginContext) -> None:
            raise OSError("disk on fire")

    @registry.register(depends_on=["Broken"])
    class Needs:
        pass

    @registry.register(optional_depends_on=["Broken"])
    class Likes:
        def setup(self, ctx: PluginContext) -> None:
            self.has = ctx.has_dependency("Broken")

    @registry.register
    class Fine:
        pass

    states = manager.load_all()
    assert states == {
        "Broken": PluginState.FAILED,
        "Fine": PluginState.ACTIVE,
        "Likes": PluginState.ACTIVE,
        "Needs": PluginState.FAILED,
    }
    errors = manager.errors()
    assert set(errors) == {"Broken", "Needs"}
    assert isinstance(errors["Broken"], PluginSetupError)
    assert isinstance(errors["Broken"].__cause__, OSError)
    needs = errors["Needs"]
    assert isinstance(needs, DependencyFailedError)
    assert needs.dependency == "Broken"
    assert needs.__cause__ is errors["Broken"]
    assert manager.get("Likes").instance.has is False


def test_load_raises_the_error_and_keeps_it(registry: Registry, manager: PluginManager) -> None:
    @registry.register(depends_on=["ghost"])
    class Lonely:
        pass

    with pytest.raises(MissingDependencyError) as exc:
        manager.load("Lonely")
    assert exc.value.missing == "ghost"
    assert manager.errors()["Lonely"] is exc.value


def test_failed_plugin_call_raises_not_active_with_cause(
    registry: Registry, manager: PluginManager
) -> None:
    @registry.register(version="3")
    class Old:
        pass

    @registry.register(depends_on={"Old": "<3"})
    class Picky:
        def execute(self, data: object) -> object:
            return data

    manager.load_all()
    with pytest.raises(PluginNotActiveError) as exc:
        manager.execute("Picky", 1)
    assert exc.value.state == "failed"
    assert isinstance(exc.value.__cause__, DependencyVersionError)
    with pytest.raises(PluginNotActiveError):
        manager.get("Picky")


def test_load_retries_a_failed_plugin(registry: Registry, manager: PluginManager) -> None:
    @registry.register(depends_on=["late"])
    def early(data: object) -> object:
        return data

    manager.load_all()
    assert manager.states()["early"] is PluginState.FAILED

    @registry.register
    def late(data: object) -> object:
        return data

    assert manager.load("early").execute(7) == 7
    assert manager.errors() == {}


def test_unknown_plugin_raises_not_found(manager: PluginManager) -> None:
    with pytest.raises(PluginNotFoundError) as exc:
        manager.execute("nope")
    assert exc.value.plugin == "nope"
    assert exc.value.group == manager.group
    for call in (manager.get, manager.load, manager.unload, manager.info):
        with pytest.raises(PluginNotFoundError):
            call("nope")


def test_plugin_registered_after_manager_creation_is_found(
    registry: Registry, manager: PluginManager
) -> None:
    assert manager.states() == {}

    @registry.register
    def later(data: int) -> int:
        return data + 1

    assert manager.execute("later", 1) == 2


def test_unload_refuses_while_dependents_are_active(
    registry: Registry, manager: PluginManager
) -> None:
    log: list[str] = []
    chain(registry, log)
    manager.load_all()
    with pytest.raises(DependentsActiveError) as exc:
        manager.unload("tokenize")
    assert exc.value.plugin == "tokenize"
    assert exc.value.dependents == ("count", "normalize")
    assert manager.states()["tokenize"] is PluginState.ACTIVE
    assert "teardown tokenize" not in log


def test_unload_cascade_tears_dependents_down_first(
    registry: Registry, manager: PluginManager
) -> None:
    log: list[str] = []
    chain(registry, log)
    manager.load_all()
    log.clear()
    manager.unload("tokenize", cascade=True)
    assert log == ["teardown count", "teardown normalize", "teardown tokenize"]
    with pytest.raises(PluginNotActiveError) as exc:
        manager.execute("count", "x")
    assert exc.value.state == "unloaded"
    with pytest.raises(PluginNotActiveError):
        manager.unload("count")


def test_unloaded_plugin_loads_again(registry: Registry, manager: PluginManager) -> None:
    log: list[str] = []
    chain(registry, log)
    handle = manager.get("tokenize")
    manager.unload("tokenize")
    assert manager.load("tokenize") is handle
    assert handle.execute("a b") == ["a", "b"]
    assert log == ["setup tokenize", "teardown tokenize", "setup tokenize"]


def test_teardown_error_is_logged_and_plugin_unloaded(
    registry: Registry, manager: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    @registry.register
    class Sloppy:
        def teardown(self) -> None:
            raise RuntimeError("left a mess")

    manager.load("Sloppy")
    with caplog.at_level(logging.ERROR, logger="plugyard"):
        manager.unload("Sloppy")
    assert manager.states()["Sloppy"] is PluginState.UNLOADED
    assert "Sloppy" in caplog.text
    assert "left a mess" in caplog.text


def test_plugin_without_execute_says_so(registry: Registry, manager: PluginManager) -> None:
    @registry.register
    class Quiet:
        pass

    with pytest.raises(PluginError, match="no execute"):
        manager.execute("Quiet")


def test_context_gives_info_logger_config_and_checks_dependencies(
    registry: Registry, manager: PluginManager
) -> None:
    seen: dict[str, Any] = {}

    @registry.register(name="dep")
    def dep(data: object) -> object:
        return data

    @registry.register(name="user", depends_on=["dep"], optional_depends_on=["absent"])
    class User:
        def setup(self, ctx: PluginContext) -> None:
            seen["info"] = ctx.info
            seen["logger"] = ctx.logger.name
            seen["config"] = dict(ctx.config)
            seen["dep"] = ctx.dependency("dep")
            with pytest.raises(MissingDependencyError):
                ctx.dependency("absent")
            with pytest.raises(PluginError, match="not declared"):
                ctx.dependency("stranger")

    manager.load("user")
    assert seen["info"].name == "user"
    assert seen["logger"] == f"plugyard.plugins.{registry.group}.user"
    assert seen["config"] == {}
    assert seen["dep"].execute(5) == 5


def test_instantiation_error_is_a_setup_error(registry: Registry, manager: PluginManager) -> None:
    @registry.register
    class NeedsArgs:
        def __init__(self, required: int) -> None:
            pass

    manager.load_all()
    error = manager.errors()["NeedsArgs"]
    assert isinstance(error, PluginSetupError)
    assert isinstance(error.__cause__, TypeError)


def test_manager_needs_registry_or_matching_group(registry: Registry) -> None:
    with pytest.raises(ValueError, match="needs a registry or a group"):
        PluginManager()
    with pytest.raises(ValueError, match="differs"):
        PluginManager(registry, group="other.group")
    assert PluginManager(group="tests.by-group").registry is get_registry("tests.by-group")
    assert PluginManager(registry, group=registry.group).group == registry.group


def test_context_manager_shuts_down(registry: Registry) -> None:
    log: list[str] = []
    chain(registry, log)
    with PluginManager(registry) as manager:
        manager.load_all()
    assert log[-1] == "teardown tokenize"
