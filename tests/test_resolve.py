"""Dependency resolution: order, missing, versions, cycles and failure spread."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, strategies as st

from plugyard import PluginInfo
from plugyard._model import parse_depends_on, parse_version
from plugyard._resolve import plan
from plugyard.exceptions import (
    DependencyCycleError,
    DependencyFailedError,
    DependencyVersionError,
    MissingDependencyError,
)


def make(
    name: str, version: str = "1.0", requires: object = (), optional: object = ()
) -> PluginInfo:
    return PluginInfo(
        name=name,
        group="g",
        version=parse_version(version),
        depends_on=parse_depends_on(requires)  # type: ignore[arg-type]
        + parse_depends_on(optional, optional=True),  # type: ignore[arg-type]
    )


def infos(*items: PluginInfo) -> dict[str, PluginInfo]:
    return {i.name: i for i in items}


def test_order_puts_dependencies_first_and_breaks_ties_by_name() -> None:
    known = infos(
        make("c", requires=["a"]),
        make("b"),
        make("a"),
        make("d", requires=["b", "c"]),
    )
    result = plan(known, known)
    assert result.order == ("a", "b", "c", "d")
    assert result.failures == {}
    assert result.edges["d"] == ("b", "c")


def test_diamond_is_not_a_cycle() -> None:
    known = infos(
        make("top", requires=["left", "right"]),
        make("left", requires=["base"]),
        make("right", requires=["base"]),
        make("base"),
    )
    result = plan(known, known)
    assert result.order == ("base", "left", "right", "top")
    assert result.failures == {}


def test_missing_dependency_fails_plugin_and_its_dependents_only() -> None:
    known = infos(
        make("a", requires=["ghost"]),
        make("b", requires=["a"]),
        make("c"),
    )
    result = plan(known, known)
    assert result.order == ("c",)
    missing = result.failures["a"]
    assert isinstance(missing, MissingDependencyError)
    assert (missing.plugin, missing.missing) == ("a", "ghost")
    behind = result.failures["b"]
    assert isinstance(behind, DependencyFailedError)
    assert (behind.plugin, behind.dependency) == ("b", "a")
    assert behind.__cause__ is missing


def test_version_outside_range_names_both_ends() -> None:
    known = infos(make("tok", version="2.1"), make("norm", requires={"tok": ">=1.0,<2"}))
    result = plan(known, known)
    error = result.failures["norm"]
    assert isinstance(error, DependencyVersionError)
    assert (error.plugin, error.dependency, error.found) == ("norm", "tok", "2.1")
    assert error.wanted == "<2,>=1.0"
    assert "tok" in str(error)
    assert "norm" in str(error)
    assert result.order == ("tok",)


def test_prerelease_inside_range_is_accepted() -> None:
    known = infos(make("tok", version="1.5rc1"), make("norm", requires={"tok": ">=1.0,<2"}))
    assert plan(known, known).order == ("tok", "norm")


def test_cycle_lists_ring_in_order_and_spares_the_rest() -> None:
    known = infos(
        make("a", requires=["b"]),
        make("b", requires=["c"]),
        make("c", requires=["a"]),
        make("behind", requires=["a"]),
        make("free"),
    )
    result = plan(known, known)
    assert result.order == ("free",)
    error = result.failures["a"]
    assert isinstance(error, DependencyCycleError)
    assert error.cycle == ["a", "b", "c", "a"]
    b_error = result.failures["b"]
    assert isinstance(b_error, DependencyCycleError)
    assert b_error.cycle == ["b", "c", "a", "b"]
    assert isinstance(result.failures["behind"], DependencyFailedError)


def test_optional_dependency_orders_when_present_and_is_ignored_when_absent() -> None:
    present = infos(make("app", optional=["zeta"]), make("zeta"))
    assert plan(present, present).order == ("zeta", "app")
    absent = infos(make("app", optional=["zeta"]))
    result = plan(absent, absent)
    assert result.order == ("app",)
    assert result.edges["app"] == ()


def test_optional_dependency_out_of_range_fails() -> None:
    known = infos(make("app", optional={"zeta": ">=2"}), make("zeta", version="1"))
    assert isinstance(plan(known, known).failures["app"], DependencyVersionError)


def test_failed_outside_plugin_fails_required_dependents_not_optional_ones() -> None:
    boom = RuntimeError("boom")
    known = infos(make("base"), make("needs", requires=["base"]), make("likes", optional=["base"]))
    todo = {k: v for k, v in known.items() if k != "base"}
    result = plan(todo, known, failed={"base": boom})
    assert result.order == ("likes",)
    assert result.failures["needs"].__cause__ is boom


def test_already_active_dependency_is_not_in_order() -> None:
    known = infos(make("base"), make("top", requires=["base"]))
    result = plan({"top": known["top"]}, known)
    assert result.order == ("top",)


# -- properties over random graphs -----------------------------------------

NAMES = [f"p{i}" for i in range(12)]


@st.composite
def dags(draw: st.DrawFn) -> dict[str, PluginInfo]:
    """Random acyclic graphs: each plugin depends only on plugins before it."""
    count = draw(st.integers(1, len(NAMES)))
    names = draw(st.permutations(NAMES))[:count]
    result = {}
    for i, name in enumerate(names):
        deps = draw(st.sets(st.sampled_from(names[:i]))) if i else set()
        result[name] = make(name, requires=sorted(deps))
    return result


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, PluginInfo]:
    """Random graphs that may contain cycles (no self-loops: registration refuses those)."""
    count = draw(st.integers(2, len(NAMES)))
    names = NAMES[:count]
    return {
        name: make(
            name,
            requires=sorted(
                draw(st.sets(st.sampled_from([n for n in names if n != name]), max_size=3))
            ),
        )
        for name in names
    }


@given(dags())
def test_random_dag_order_respects_every_edge(known: dict[str, PluginInfo]) -> None:
    result = plan(known, known)
    assert result.failures == {}
    assert sorted(result.order) == sorted(known)
    position = {name: i for i, name in enumerate(result.order)}
    for name, info in known.items():
        for dep in info.depends_on:
            assert position[dep.name] < position[name]


def reaches_cycle(known: Mapping[str, PluginInfo]) -> set[str]:
    """Plugins on a cycle or depending on one, computed by brute force."""

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [d.name for d in known[start].depends_on]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(d.name for d in known[node].depends_on)
        return seen

    reachable = {name: reach(name) for name in known}
    on_cycle = {name for name in known if name in reachable[name]}
    return {name for name in known if name in on_cycle or reachable[name] & on_cycle}


@given(graphs())
def test_random_graph_fails_exactly_what_is_on_or_behind_a_cycle(
    known: dict[str, PluginInfo],
) -> None:
    result = plan(known, known)
    doomed = reaches_cycle(known)
    assert set(result.failures) == doomed
    assert set(result.order) == set(known) - doomed
    position = {name: i for i, name in enumerate(result.order)}
    for name in result.order:
        for dep in known[name].depends_on:
            assert position[dep.name] < position[name]
    for name, error in result.failures.items():
        assert isinstance(error, (DependencyCycleError, DependencyFailedError))
        if isinstance(error, DependencyCycleError):
            ring = error.cycle
            assert ring[0] == ring[-1] == name
            for a, b in itertools.pairwise(ring):
                assert b in {d.name for d in known[a].depends_on}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ({}, []),
        ({"b": ">=1", "a": ""}, [("a", ""), ("b", ">=1")]),
        (["tok>=1.0,<2", "norm"], [("norm", ""), ("tok", "<2,>=1.0")]),
        (("x==1.*",), [("x", "==1.*")]),
    ],
)
def test_parse_depends_on_forms(value: object, expected: list[tuple[str, str]]) -> None:
    deps = parse_depends_on(value)  # type: ignore[arg-type]
    assert [(d.name, str(d.specifier)) for d in deps] == expected
