"""Per-call overhead: every contender timed with ``timeit`` in this one process.

Run by ``run.py`` as ``python percall.py GROUP PLUGGY_GROUP NAME`` with the
synthetic site on ``PYTHONPATH``; prints ``BENCH`` and a JSON object on its
last line: ``samples`` maps each contender to its samples, in nanoseconds per
call; ``metrics`` says how metrics were turned on and off.
Each contender's loop count is calibrated first so that one sample takes
``--min-time`` seconds; then the contenders are timed in rounds, one sample
of each per round, so that a slow spell of the machine spreads over all of
them. ``empty`` times the ``timeit`` loop itself: ``run.py`` subtracts its
median from the others.

To add a row, write a function returning a :class:`Case` and decorate it
with :func:`contender`; then name its key in a row of ``run.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy
import stevedore

import plugyard


@dataclass(frozen=True)
class Target:
    """What the contenders call: the group, pluggy's group and one plugin's name."""

    group: str
    pluggy_group: str
    name: str


@dataclass(frozen=True)
class Case:
    """A statement to time, the names it uses, and what one run of it must return."""

    stmt: str
    names: dict[str, Any] = field(default_factory=dict)
    expected: Any = 42


CONTENDERS: dict[str, Callable[[Target], Case]] = {}


def contender(key: str) -> Callable[[Callable[[Target], Case]], Callable[[Target], Case]]:
    """Register a contender under ``key``."""

    def add(setup: Callable[[Target], Case]) -> Callable[[Target], Case]:
        CONTENDERS[key] = setup
        return setup

    return add


def _plugin_class(target: Target) -> Any:
    (ep,) = entry_points(group=target.group, name=target.name)
    return ep.load()


@contender("empty")
def _empty(target: Target) -> Case:
    return Case("pass", expected=None)


@contender("direct")
def _direct(target: Target) -> Case:
    return Case("plugin.execute(x)", {"plugin": _plugin_class(target)(), "x": 42})


@contender("direct-bound")
def _direct_bound(target: Target) -> Case:
    return Case("execute(x)", {"execute": _plugin_class(target)().execute, "x": 42})


def metrics_switch() -> str:
    """How this run turns metrics on and off, for the report."""
    return "`PluginManager(group=G, metrics=True)` / `metrics=False`"


def _manager(target: Target, *, metrics: bool) -> plugyard.PluginManager:
    manager = plugyard.PluginManager(group=target.group, metrics=metrics)
    manager.load(target.name)
    return manager


def _handle(target: Target, *, metrics: bool) -> Case:
    handle = _manager(target, metrics=metrics).get(target.name)
    return Case("handle.execute(x)", {"handle": handle, "x": 42})


def _execute(target: Target, *, metrics: bool) -> Case:
    manager = _manager(target, metrics=metrics)
    return Case("manager.execute(name, x)", {"manager": manager, "name": target.name, "x": 42})


@contender("plugyard-handle")
def _plugyard_handle(target: Target) -> Case:
    return _handle(target, metrics=False)


@contender("plugyard-handle-metrics")
def _plugyard_handle_metrics(target: Target) -> Case:
    return _handle(target, metrics=True)


@contender("plugyard-execute")
def _plugyard_execute(target: Target) -> Case:
    return _execute(target, metrics=False)


@contender("plugyard-execute-metrics")
def _plugyard_execute_metrics(target: Target) -> Case:
    return _execute(target, metrics=True)


@contender("pluggy-hook")
def _pluggy_hook(target: Target) -> Case:
    marker = pluggy.HookspecMarker("plugbench")

    class Spec:
        @marker
        def plugbench_execute(self, data: Any) -> Any:
            """The synthetic plugins' one hook."""

    pm = pluggy.PluginManager("plugbench")
    pm.add_hookspecs(Spec)
    pm.load_setuptools_entrypoints(target.pluggy_group, name=target.name)
    return Case("pm.hook.plugbench_execute(data=x)", {"pm": pm, "x": 42}, expected=[42])


def _driver(target: Target) -> Any:
    return stevedore.DriverManager(target.group, target.name, invoke_on_load=True)


@contender("stevedore-driver")
def _stevedore_driver(target: Target) -> Case:
    return Case("mgr.driver.execute(x)", {"mgr": _driver(target), "x": 42})


@contender("stevedore-call")
def _stevedore_call(target: Target) -> Case:
    def call(ext: Any, data: Any) -> Any:
        return ext.obj.execute(data)

    return Case("mgr(call, x)", {"mgr": _driver(target), "call": call, "x": 42})


def _calibrate(timer: timeit.Timer, min_time: float) -> int:
    number = 1
    while True:
        if timer.timeit(number) >= min_time:
            return number
        number *= 4


def measure(target: Target, repeat: int, min_time: float) -> dict[str, list[float]]:
    """Samples of every contender, in nanoseconds per call."""
    timers: dict[str, tuple[timeit.Timer, int]] = {}
    for key, setup in CONTENDERS.items():
        case = setup(target)
        got = eval(case.stmt, dict(case.names)) if case.stmt != "pass" else None  # noqa: S307
        assert got == case.expected, f"{key}: {case.stmt} returned {got!r}"
        timer = timeit.Timer(case.stmt, globals=case.names)
        timers[key] = (timer, _calibrate(timer, min_time))
    samples: dict[str, list[float]] = {key: [] for key in timers}
    keys = list(timers)
    for round_ in range(repeat):
        shift = round_ % len(keys)
        for key in keys[shift:] + keys[:shift]:
            timer, number = timers[key]
            samples[key].append(timer.timeit(number) / number * 1e9)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("group")
    parser.add_argument("pluggy_group")
    parser.add_argument("name")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.1)
    args = parser.parse_args()
    target = Target(args.group, args.pluggy_group, args.name)
    samples = measure(target, args.repeat, args.min_time)
    medians = {key: statistics.median(values) for key, values in samples.items()}
    assert all(value > 0 for value in medians.values()), medians
    print("BENCH " + json.dumps({"samples": samples, "metrics": metrics_switch()}))


if __name__ == "__main__":
    main()
