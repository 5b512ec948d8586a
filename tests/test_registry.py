"""Registering plugins: the decorator's forms, validation and duplicates."""

from __future__ import annotations

import pytest
from packaging.version import Version

import plugyard
from plugyard import DEFAULT_GROUP, Dependency, Registry, get_registry, register
from plugyard.exceptions import DuplicatePluginError, InvalidPluginError, PluginNotFoundError


def test_bare_decorator_registers_class_under_its_name(registry: Registry) -> None:
    @registry.register
    class Upper:
        """Uppercase text.

        More words.
        """

    info = registry.info("Upper")
    assert info.name == "Upper"
    assert info.group == registry.group
    assert info.version == Version("0")
    assert info.summary == "Uppercase text."
    assert info.origin == f"{__name__}:{Upper.__qualname__}"
    assert registry.target("Upper") is Upper


def test_empty_parentheses_register_function(registry: Registry) -> None:
    @registry.register()
    def shout(text: str) -> str:
        return text.upper()

    assert "shout" in registry
    assert registry.target("shout") is shout
    assert shout("a") == "A"  # the decorator returns the object unchanged


def test_arguments_set_name_version_and_dependencies(registry: Registry) -> None:
    @registry.register(name="base", version="1.4.0")
    class Base:
        pass

    @registry.register(
        name="top", version="2.0rc1", depends_on=["base>=1,<2"], optional_depends_on={"extra": ""}
    )
    class Top:
        pass

    info = registry.info("top")
    assert info.version == Version("2.0rc1")
    assert [d.name for d in info.depends_on] == ["base", "extra"]
    assert info.requires == (Dependency("base", info.depends_on[0].specifier),)
    assert str(info.depends_on[0].specifier) == "<2,>=1"
    assert info.depends_on[1].optional


def test_registering_imports_and_instantiates_nothing(registry: Registry) -> None:
    created = []

    @registry.register
    class Noisy:
        def __init__(self) -> None:
            created.append(self)

    assert created == []


def test_module_level_register_uses_default_registry_of_group() -> None:
    @register(group="tests.module-level", name="thing-one")
    def thing(data: object) -> object:
        return data

    assert get_registry("tests.module-level").target("thing-one") is thing
    assert get_registry("tests.module-level") is get_registry("tests.module-level")
    assert plugyard.get_registry().group == DEFAULT_GROUP


def test_duplicate_name_raises_naming_both_origins(registry: Registry) -> None:
    @registry.register(name="dup")
    class First:
        pass

    with pytest.raises(DuplicatePluginError) as exc:

        @registry.register(name="dup")
        class Second:
            pass

    assert exc.value.plugin == "dup"
    assert exc.value.group == registry.group
    assert exc.value.existing.endswith("First")
    assert exc.value.new.endswith("Second")
    assert registry.target("dup") is First


def test_replace_true_replaces(registry: Registry) -> None:
    @registry.register(name="dup")
    class First:
        pass

    @registry.register(name="dup", replace=True)
    class Second:
        pass

    assert registry.target("dup") is Second


def test_same_origin_registering_again_replaces(registry: Registry) -> None:
    """A re-imported module declares the same plugin again; that is not a conflict."""

    def make() -> type:
        class Again:
            pass

        return Again

    first, second = make(), make()
    registry.register(first)
    registry.register(second)
    assert registry.target("Again") is second


@pytest.mark.parametrize(
    ("kwargs", "bad_value"),
    [
        ({"name": "has space"}, "has space"),
        ({"name": "-leading"}, "-leading"),
        ({"name": ""}, ""),
        ({"version": "not.a.version!"}, "not.a.version!"),
        ({"depends_on": {"x": ">=>1"}}, ">=>1"),
        ({"depends_on": ["x>=1", "x<3"]}, "x"),
        ({"depends_on": ["x[extra]>=1"]}, "x[extra]>=1"),
        ({"depends_on": ["x; python_version>'3'"]}, "x; python_version>'3'"),
        ({"depends_on": ["!!"]}, "!!"),
        ({"depends_on": "x>=1"}, "x>=1"),
        ({"depends_on": {"x": 1}}, 1),
        ({"depends_on": ["x"], "optional_depends_on": ["x"]}, ["x"]),
        ({"name": "me", "depends_on": ["me"]}, "me"),
    ],
)
def test_invalid_declarations_raise_with_value_and_reason(
    registry: Registry, kwargs: dict[str, object], bad_value: object
) -> None:
    def plugin(data: object) -> object:
        return data

    with pytest.raises(InvalidPluginError) as exc:
        registry.register(**kwargs)(plugin)  # type: ignore[call-overload]
    assert exc.value.value == bad_value
    assert exc.value.reason
    assert "plugin" not in registry


def test_non_callable_is_not_a_plugin(registry: Registry) -> None:
    with pytest.raises(InvalidPluginError) as exc:
        registry.register(42)
    assert exc.value.value == 42


def test_group_name_is_validated() -> None:
    with pytest.raises(InvalidPluginError):
        Registry("bad group")


def test_unregister_and_lookup_errors(registry: Registry) -> None:
    @registry.register
    def gone(data: object) -> object:
        return data

    registry.unregister("gone")
    assert "gone" not in registry
    assert len(registry) == 0
    with pytest.raises(PluginNotFoundError) as exc:
        registry.info("gone")
    assert exc.value.plugin == "gone"
    assert exc.value.group == registry.group
    with pytest.raises(PluginNotFoundError):
        registry.unregister("gone")


def test_iteration_is_sorted_and_find_maps_objects_to_info(registry: Registry) -> None:
    @registry.register
    def b(data: object) -> object:
        return data

    @registry.register
    def a(data: object) -> object:
        return data

    assert [info.name for info in registry] == ["a", "b"]
    found = registry.find(b)
    assert found is not None
    assert found.name == "b"
    assert registry.find(object()) is None
