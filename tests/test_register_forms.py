"""``register(obj, ...)`` keeps every keyword, and names and groups are matched whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from packaging.version import Version

import plugyard
from lifecycle_helpers import unique_group
from plugyard import PluginManager, Registry, get_registry
from plugyard.exceptions import DuplicatePluginError, InvalidPluginError


def target(data: object) -> object:
    return data


def other(data: object) -> object:
    return data


def test_module_level_register_called_with_the_object_keeps_every_keyword() -> None:
    group = unique_group("tests.forms")
    returned = plugyard.register(
        target,
        group=group,
        name="x",
        version="1.2",
        depends_on=["y>=1"],
        optional_depends_on=["z"],
    )
    assert returned is target
    registry = get_registry(group)
    assert list(registry) == [registry.info("x")]
    info = registry.info("x")
    assert info.group == group
    assert info.version == Version("1.2")
    assert [(d.name, str(d.specifier), d.optional) for d in info.depends_on] == [
        ("y", ">=1", False),
        ("z", "", True),
    ]
    assert registry.target("x") is target


def test_module_level_register_called_with_the_object_keeps_replace() -> None:
    group = unique_group("tests.forms")
    plugyard.register(target, group=group, name="x")
    with pytest.raises(DuplicatePluginError) as exc:
        plugyard.register(other, group=group, name="x")
    assert exc.value.plugin == "x"
    plugyard.register(other, group=group, name="x", replace=True)
    assert get_registry(group).target("x") is other
    assert [info.name for info in get_registry(group)] == ["x"]


def test_registry_register_called_with_the_object_keeps_every_keyword(
    registry: Registry,
) -> None:
    returned = registry.register(
        target, name="x", version="1.2", depends_on=["y>=1"], optional_depends_on=["z"]
    )
    assert returned is target
    info = registry.info("x")
    assert info.version == Version("1.2")
    assert [(d.name, str(d.specifier), d.optional) for d in info.depends_on] == [
        ("y", ">=1", False),
        ("z", "", True),
    ]
    assert "target" not in registry


REFUSED: dict[str, Callable[[Registry], Any]] = {
    "name-trailing-newline": lambda registry: registry.register(target, name="a\n"),
    "name-trailing-newline-decorator": lambda registry: registry.register(name="a\n")(target),
    "name-trailing-space": lambda registry: registry.register(target, name="a "),
    "name-inner-newline": lambda registry: registry.register(target, name="a\nb"),
    "module-level-name-trailing-newline": lambda registry: plugyard.register(
        target, group=registry.group, name="a\n"
    ),
    "group-trailing-newline": lambda registry: Registry("a\n"),
    "group-trailing-space": lambda registry: Registry("a "),
    "module-level-group-trailing-newline": lambda registry: plugyard.register(target, group="a\n"),
    "module-level-decorator-group-trailing-newline": lambda registry: plugyard.register(
        group="a\n"
    )(target),
    "manager-group-trailing-newline": lambda registry: PluginManager(group="a\n"),
}


@pytest.mark.parametrize("attempt", REFUSED.values(), ids=REFUSED.keys())
def test_names_and_groups_are_matched_whole(
    registry: Registry, attempt: Callable[[Registry], Any]
) -> None:
    with pytest.raises(InvalidPluginError) as exc:
        attempt(registry)
    assert exc.value.value in ("a\n", "a ", "a\nb")
    assert len(registry) == 0
    assert len(get_registry(registry.group)) == 0
