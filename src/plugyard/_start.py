"""Starting plugins: the closure of what they need, the plan, then each setup in order.

One function composes the stages for a lifecycle operation that starts
plugins: the table imports what the names need, the disabled state and the
resolver decide what can start, and the lifecycle sets each one up.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import _resolve
from ._configure import Disabled, disabled_error, initial
from ._lifecycle import Invoker, Lifecycle, Slot
from ._model import PluginState
from ._table import Table
from ._value import evolve
from .exceptions import ConfigError, DependencyFailedError, PluginError

if TYPE_CHECKING:
    from ._configstore import ConfigStore


def start(
    names: list[str],
    table: Table,
    lifecycle: Lifecycle,
    disabled: Disabled,
    store: ConfigStore | None,
    invoke: Invoker,
) -> None:
    """Start ``names`` and every dependency they need, each after its dependencies.

    Raises:
        BaseException: a ``KeyboardInterrupt`` or ``SystemExit`` a plugin
            raised in ``setup``, once its slot is failed; the plugins after it
            in the plan stay as they were.
    """
    table.sync_registry()
    slots = table.slots
    # A slot whose import failed never starts; it stays failed and fails
    # its dependents. A disabled plugin keeps its state and fails the
    # plugins that require it.
    closure = table.closure(names)
    off, broken = disabled.of(closure)
    for name, corrupt in broken.items():
        lifecycle.transition(slots[name], PluginState.FAILED, corrupt)
    todo = {n for n in closure if slots[n].candidate.imported and n not in off | broken.keys()}
    failed: dict[str, BaseException] = {
        name: error
        for name in closure - todo
        if slots[name].state is PluginState.FAILED and (error := slots[name].error) is not None
    }
    failed.update({n: disabled_error(n, slots[n].state) for n in off})
    plan = _resolve.plan({n: slots[n].info for n in todo}, table.known(), failed)
    for name, error in plan.failures.items():
        lifecycle.transition(slots[name], PluginState.FAILED, error)
    for name in plan.order:
        interrupt = _activate(slots[name], table, lifecycle, store, invoke)
        if interrupt is not None:
            raise interrupt


def plan(table: Table) -> _resolve.Plan:
    """Import every plugin that is not active and decide, setting none up, what would start."""
    table.find_all()
    slots = table.slots
    todo = table.closure([n for n, s in slots.items() if s.state is not PluginState.ACTIVE])
    failures: dict[str, PluginError] = {}
    startable = {}
    for name in todo:
        slot = slots[name]
        if slot.candidate.imported:
            startable[name] = slot.info
        elif slot.error is not None:
            failures[name] = slot.error
    planned = _resolve.plan(startable, table.known(), failures)
    return evolve(planned, failures={**failures, **planned.failures})


def _activate(
    slot: Slot, table: Table, lifecycle: Lifecycle, store: ConfigStore | None, invoke: Invoker
) -> BaseException | None:
    deps: dict[str, Any] = {}
    for dep in slot.info.depends_on:
        other = table.slots.get(dep.name)
        if other is not None and other.state is PluginState.ACTIVE:
            deps[dep.name] = other.instance
        elif not dep.optional:
            # It was in the plan but failed in its own setup just now.
            error = DependencyFailedError(
                slot.name, dep.name, other.error if other is not None else None
            )
            lifecycle.transition(slot, PluginState.FAILED, error)
            return None
    try:
        config = initial(slot, store)
    except ConfigError as error:
        lifecycle.transition(slot, PluginState.FAILED, error)
        return None
    return lifecycle.activate(slot, MappingProxyType(deps), config, invoke)
