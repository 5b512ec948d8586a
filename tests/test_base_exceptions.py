"""What a plugin raises in setup and teardown: interrupts propagate after the books are kept.

A ``KeyboardInterrupt`` or ``SystemExit`` out of a plugin must reach the
caller, but only once the manager's states are consistent again. An ordinary
failure is reported once: one log record, one event, and the same error for
every later call.

Each plugin here raises its interrupt once only, so that the ``manager``
fixture's shutdown cannot raise it again after the test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from plugyard import PluginContext, PluginFailed, PluginManager, PluginState, Registry
from plugyard.exceptions import PluginNotActiveError, PluginSetupError

INTERRUPTS = [KeyboardInterrupt, SystemExit]


def add(
    registry: Registry,
    name: str,
    log: list[str],
    *,
    depends_on: Sequence[str] = (),
    in_setup: list[BaseException] | None = None,
    in_teardown: list[BaseException] | None = None,
) -> None:
    """Register ``name``, logging its setup and teardown; each raises what its list holds, once."""

    @registry.register(name=name, depends_on=list(depends_on))
    class Logged:
        def setup(self, ctx: PluginContext) -> None:
            log.append(f"setup {name}")
            if in_setup:
                raise in_setup.pop()

        def execute(self, data: object) -> object:
            return data

        def teardown(self) -> None:
            log.append(f"teardown {name}")
            if in_teardown:
                raise in_teardown.pop()


ENTRIES: dict[str, Callable[[PluginManager], Any]] = {
    "load": lambda manager: manager.load("bad"),
    "load_all": lambda manager: manager.load_all(),
    "execute": lambda manager: manager.execute("bad", 1),
}


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=ENTRIES.keys())
@pytest.mark.parametrize("kind", INTERRUPTS)
def test_an_interrupt_in_setup_fails_the_plugin_then_propagates(
    registry: Registry,
    manager: PluginManager,
    kind: type[BaseException],
    entry: Callable[[PluginManager], Any],
) -> None:
    """``bad`` ends failed, ``first`` (set up before it) stays active, nothing stays loaded."""
    log: list[str] = []
    add(registry, "first", log)
    add(registry, "bad", log, depends_on=["first"], in_setup=[kind("stop")])
    with pytest.raises(kind) as exc:
        entry(manager)
    states = manager.states()
    assert PluginState.LOADED not in states.values()
    assert states == {"bad": PluginState.FAILED, "first": PluginState.ACTIVE}
    error = manager.errors()["bad"]
    assert isinstance(error, PluginSetupError)
    assert error.plugin == "bad"
    assert error.__cause__ is exc.value
    assert manager.execute("first", 2) == 2
    manager.shutdown()
    assert log == ["setup first", "setup bad", "teardown first"]
    assert manager.states()["first"] is PluginState.UNLOADED


@pytest.mark.parametrize("kind", INTERRUPTS)
def test_an_interrupt_in_teardown_still_tears_the_others_down_then_propagates(
    registry: Registry, manager: PluginManager, kind: type[BaseException]
) -> None:
    """With c -> b -> a, b's teardown raises, yet a (torn down after it) is torn down too."""
    log: list[str] = []
    add(registry, "a", log)
    add(registry, "b", log, depends_on=["a"], in_teardown=[kind("stop")])
    add(registry, "c", log, depends_on=["b"])
    manager.load_all()
    log.clear()
    with pytest.raises(kind):
        manager.shutdown()
    assert log == ["teardown c", "teardown b", "teardown a"]
    assert manager.states() == dict.fromkeys("abc", PluginState.UNLOADED)


def test_a_setup_failure_is_reported_once(
    registry: Registry, manager: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    """One warning, one PluginFailed, and later calls raise the first error's text and cause."""

    @registry.register(name="Boom")
    class Boom:
        def setup(self, ctx: PluginContext) -> None:
            raise RuntimeError("boom")

        def execute(self, data: object) -> object:
            return data

    failures: list[PluginFailed] = []
    manager.events.subscribe(PluginFailed, failures.append)
    caplog.set_level(logging.DEBUG, logger="plugyard")
    with pytest.raises(PluginSetupError) as first:
        manager.load("Boom")
    cause = first.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert str(cause) == "boom"
    with pytest.raises(PluginNotActiveError) as later:
        manager.execute("Boom", 1)
    assert str(later.value) == str(first.value)
    assert later.value.__cause__ is first.value
    assert "failed: plugin 'Boom' failed" not in str(later.value)
    reports = [
        record
        for record in caplog.records
        if record.name.partition(".")[0] == "plugyard" and record.levelno >= logging.WARNING
    ]
    assert [record.levelno for record in reports] == [logging.WARNING]
    assert "Boom" in reports[0].getMessage()
    assert [event.plugin for event in failures] == ["Boom"]
    assert failures[0].error is first.value
