"""Deciding which plugins can start, and in what order.

Pure functions over :class:`PluginInfo` values: no imports, no state. The
manager hands in what it knows and gets back a :class:`Plan`.
"""

from __future__ import annotations

import graphlib
import heapq
from collections import deque
from collections.abc import Iterable, Mapping

from ._model import PluginInfo
from ._public import present_top_level as _present_top_level
from ._value import Value
from .exceptions import (
    DependencyCycleError,
    DependencyError,
    DependencyFailedError,
    DependencyVersionError,
    MissingDependencyError,
    PluginError,
)


class Plan(Value):
    """The outcome of resolving a set of plugins.

    Attributes:
        order: The plugins that can start, each after all its dependencies;
            ties are broken by name, so the order is the same on every run.
        failures: The plugins that cannot start, with the reason.
        edges: For each plugin in ``order``, the dependencies it will be set
            up after (optional ones only when present).
    """

    __slots__ = ("edges", "failures", "order")

    order: tuple[str, ...]
    failures: Mapping[str, PluginError]
    edges: Mapping[str, tuple[str, ...]]

    def __init__(
        self,
        order: tuple[str, ...],
        failures: Mapping[str, PluginError],
        edges: Mapping[str, tuple[str, ...]],
    ) -> None:
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "failures", failures)
        object.__setattr__(self, "edges", edges)


def plan(
    todo: Mapping[str, PluginInfo],
    known: Mapping[str, PluginInfo],
    failed: Mapping[str, BaseException] | None = None,
) -> Plan:
    """Decide which of ``todo`` can start, and their setup order.

    Args:
        todo: The plugins to start.
        known: Every plugin that exists (active, failed or to start), for
            presence and version checks.
        failed: Plugins outside ``todo`` that failed, with their errors;
            required dependents of these fail too.

    Returns:
        The plan. Every plugin of ``todo`` is in exactly one of
        ``order`` and ``failures``.
    """
    failed = failed or {}
    failures: dict[str, PluginError] = {}
    edges: dict[str, set[str]] = {name: set() for name in todo}
    required_edges: dict[str, set[str]] = {name: set() for name in todo}

    for name in sorted(todo):
        info = todo[name]
        for dep in info.depends_on:
            other = known.get(dep.name)
            error: DependencyError | None = None
            if other is None:
                if not dep.optional:
                    error = MissingDependencyError(name, dep.name)
            elif not dep.accepts(other.version):
                error = DependencyVersionError(
                    name, dep.name, str(dep.specifier) or "any version", str(other.version)
                )
            elif dep.name in failed:
                if not dep.optional:
                    error = DependencyFailedError(name, dep.name, failed[dep.name])
            elif dep.name in todo:
                edges[name].add(dep.name)
                if not dep.optional:
                    required_edges[name].add(dep.name)
            if error is not None and name not in failures:
                failures[name] = error

    for component in _cycles(edges):
        for name in sorted(component):
            if name not in failures:
                failures[name] = DependencyCycleError(
                    _ring_through(name, component, edges), plugin=name
                )
    # Every plugin on a cycle fails, so its edges, optional or not, carry the
    # failure to whoever is behind it.
    for name in failures:
        required_edges[name] |= edges[name]

    _propagate(failures, required_edges, edges)

    live = {
        name: tuple(sorted(edges[name] - failures.keys())) for name in todo if name not in failures
    }
    return Plan(order=_ordered(live), failures=failures, edges=live)


def _propagate(
    failures: dict[str, PluginError],
    required_edges: Mapping[str, set[str]],
    edges: Mapping[str, set[str]],
) -> None:
    """Fail the required dependents of every failure, transitively."""
    dependents: dict[str, list[str]] = {name: [] for name in edges}
    for name in sorted(required_edges):
        for dep in sorted(required_edges[name]):
            dependents[dep].append(name)
    queue = deque(sorted(failures))
    while queue:
        dep = queue.popleft()
        for name in dependents[dep]:
            if name not in failures:
                error = DependencyFailedError(name, dep, failures[dep])
                failures[name] = error
                queue.append(name)


def _ordered(edges: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Topological order of an acyclic graph, dependencies first, ties by name."""
    if not any(edges.values()):
        return tuple(sorted(edges))  # the usual case: nothing depends on anything
    sorter = graphlib.TopologicalSorter(edges)
    sorter.prepare()
    ready = list(sorter.get_ready())
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        sorter.done(name)
        for nxt in sorter.get_ready():
            heapq.heappush(ready, nxt)
    return tuple(order)


def _cycles(edges: Mapping[str, set[str]]) -> list[set[str]]:
    """The strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    counter = 0
    # A plugin that depends on nothing is on no cycle: it is visited only if
    # reachable from one that depends on something.
    for root in sorted(name for name, deps in edges.items() if deps):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(component)
    return found


def _ring_through(start: str, component: set[str], edges: Mapping[str, set[str]]) -> list[str]:
    """The shortest cycle from ``start`` back to itself inside ``component``."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node] & component):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{start!r} is not on a cycle")  # pragma: no cover


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
