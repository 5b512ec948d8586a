"""``configure`` is all or nothing: a refused config changes nothing anywhere.

Whatever goes wrong (the plugin's ``configure`` raises, a value msgpack
cannot hold, a value whose ``repr`` raises, a ``config_type`` validation
failure), the config the manager reports, the config the plugin holds and the
file on disk stay as they were, ``ConfigRejected`` is published and
``ConfigError`` raised. A config that was accepted belongs to the manager: the
caller's later changes to what it passed do not reach it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from plugyard import ConfigRejected, PluginContext, PluginManager, PluginState, Registry
from plugyard.exceptions import ConfigError


@attrs.frozen
class SinkConfig:
    url: str
    retries: int = 3
    hosts: list[str] = attrs.Factory(list)
    extra: Any = None


class BadRepr:
    """A value whose ``repr`` raises, as a buggy user class might."""

    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class CustomError(Exception):
    pass


#: What the next ``configure`` of either plugin raises, if anything.
RAISE_NEXT: list[Exception] = []

INITIAL: dict[str, dict[str, Any]] = {
    "plain": {"level": 1, "nested": {"deep": [1, 2]}},
    "typed": {"url": "http://old", "hosts": ["a"]},
}


def register_plugins(registry: Registry) -> None:
    """``plain`` takes a mapping, ``typed`` a SinkConfig; both keep what they were given."""

    @registry.register(name="plain")
    class Plain:
        def setup(self, ctx: PluginContext) -> None:
            self.config: Any = ctx.config

        def configure(self, config: Mapping[str, Any]) -> None:
            if RAISE_NEXT:
                raise RAISE_NEXT.pop()
            self.config = config

        def execute(self, data: object) -> object:
            return data

    @registry.register(name="typed")
    class Typed:
        config_type = SinkConfig

        def setup(self, ctx: PluginContext) -> None:
            self.config: Any = ctx.config

        def configure(self, config: SinkConfig) -> None:
            if RAISE_NEXT:
                raise RAISE_NEXT.pop()
            self.config = config

        def execute(self, data: object) -> object:
            return data


@pytest.fixture(name="configured")
def fixture_configured(registry: Registry, tmp_path: Path) -> Iterator[PluginManager]:
    """A manager with a config directory; ``plain`` and ``typed`` loaded with INITIAL configs."""
    register_plugins(registry)
    RAISE_NEXT.clear()
    with PluginManager(registry, config=tmp_path) as manager:
        for name, config in INITIAL.items():
            manager.configure(name, config)
        manager.load_all()
        yield manager
    RAISE_NEXT.clear()


REFUSED: dict[str, tuple[str, dict[str, Any], Exception | None]] = {
    "plain-raises-ValueError": ("plain", {"level": 2}, ValueError("no")),
    "plain-raises-KeyError": ("plain", {"level": 2}, KeyError("level")),
    "plain-raises-custom": ("plain", {"level": 2}, CustomError("mine")),
    "typed-raises-RuntimeError": ("typed", {"url": "http://new"}, RuntimeError("no")),
    "plain-int-too-big": ("plain", {"level": 2**70}, None),
    "plain-nested-int-too-big": ("plain", {"nested": {"deep": [2**70]}}, None),
    "typed-int-too-big": ("typed", {"url": "http://new", "retries": 2**70}, None),
    "plain-repr-raises": ("plain", {"odd": BadRepr()}, None),
    "typed-repr-raises": ("typed", {"url": "http://new", "extra": {"odd": BadRepr()}}, None),
    "typed-wrong-type": ("typed", {"url": 5}, None),
    "typed-unknown-field": ("typed", {"url": "http://new", "nope": 1}, None),
}


@pytest.mark.parametrize(("name", "config", "raised"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_config_changes_nothing_and_is_announced(
    configured: PluginManager,
    tmp_path: Path,
    name: str,
    config: dict[str, Any],
    raised: Exception | None,
) -> None:
    manager = configured
    path = tmp_path / manager.group / f"{name}.msgpack"
    on_disk = path.read_bytes()
    reported = manager.config(name)
    instance = manager.get(name).instance
    held = instance.config
    rejected: list[ConfigRejected] = []
    manager.events.subscribe(ConfigRejected, rejected.append)
    if raised is not None:
        RAISE_NEXT.append(raised)
    with pytest.raises(ConfigError) as exc:
        manager.configure(name, config)
    assert exc.value.plugin == name
    if raised is not None:
        assert exc.value.__cause__ is raised
    assert manager.config(name) == reported
    assert instance.config == held
    assert path.read_bytes() == on_disk
    assert len(rejected) == 1
    assert rejected[0].plugin == name
    assert rejected[0].error is exc.value


def plain(value: object) -> object:
    """``value`` with attrs instances and mappings as dicts, sequences as lists, all the way down.

    A manager may hand a config out frozen (read-only mappings, tuples): what
    these tests compare is its content.
    """
    cls = type(value)
    if attrs.has(cls):
        return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(cls)}
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


ACCEPTED: dict[str, dict[str, Any]] = {
    "plain": {"level": 7, "hosts": ["x"], "nested": {"deep": [1]}},
    "typed": {"url": "http://new", "retries": 3, "hosts": ["x"], "extra": {"deep": [1]}},
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_changing_what_was_passed_after_configure_changes_nothing(
    configured: PluginManager, name: str
) -> None:
    manager = configured
    expected = ACCEPTED[name]
    passed = copy.deepcopy(expected)
    manager.configure(name, passed)
    held = manager.get(name).instance.config
    assert plain(manager.config(name)) == expected
    assert plain(held) == expected
    nested = passed["nested" if name == "plain" else "extra"]
    passed["hosts"].append("y")
    nested["deep"].append(2)
    nested["more"] = 1
    passed["added"] = True
    passed["retries" if name == "typed" else "level"] = 8
    assert plain(manager.config(name)) == expected
    assert plain(held) == expected


def test_the_mapping_a_plugin_receives_is_read_only(configured: PluginManager) -> None:
    manager = configured
    manager.configure("plain", {"level": 5})
    held = manager.get("plain").instance.config
    with pytest.raises(TypeError):
        held["level"] = 6
    with pytest.raises(TypeError):
        held["new"] = 1
    assert dict(manager.config("plain")) == {"level": 5}
    assert dict(held) == {"level": 5}


def test_a_config_type_that_is_no_attrs_class_fails_the_plugin_with_a_config_error(
    registry: Registry,
) -> None:
    """The plugin's mistake is reported as its own failure, not as a TypeError of plugyard."""

    @registry.register(name="odd")
    class Odd:
        config_type = dict

        def execute(self, data: object) -> object:
            return data

    manager = PluginManager(registry)
    with pytest.raises(ConfigError, match="config_type cannot be used") as exc:
        manager.load("odd")
    assert exc.value.plugin == "odd"
    assert manager.states()["odd"] is PluginState.FAILED
