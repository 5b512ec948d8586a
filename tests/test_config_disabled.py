"""What the store and the manager build on: ``encode``, ``freeze`` and ``plain``."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import attrs
import pytest

from plugyard._configstore import ConfigError
from plugyard._configtypes import decode, encode, freeze, plain

# -- encode --------------------------------------------------------------------------


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


@pytest.mark.parametrize(
    ("config", "field", "reason"),
    [
        ({"n": 2**64}, "n", "outside what msgpack stores"),
        ({"n": -(2**63) - 1}, "n", "outside what msgpack stores"),
        ({"m": {1: "a"}}, "m", "keys must be strings, not int 1"),
        ({1: "a"}, None, "keys must be strings"),
        ({"o": BadRepr()}, "o", "cannot store BadRepr object (its repr() raised RuntimeError)"),
        ({"k": {BadRepr(): 1}}, "k", "not BadRepr object (its repr() raised RuntimeError)"),
        ({"s": {1, 2}}, "s", "cannot store set"),
        ({"deep": [{"x": BadRepr()}]}, "deep[0].x", "cannot store BadRepr"),
    ],
    ids=["2**64", "-2**63-1", "int-key", "top-level-int-key", "bad-repr", "bad-repr-key", "set",
         "nested"],
)  # fmt: skip
def test_encode_refuses_what_a_config_cannot_hold_naming_the_field(
    config: dict[Any, Any], field: str | None, reason: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        encode(config)
    assert exc.value.field == field
    assert reason in exc.value.reason
    assert exc.value.path is None


def test_encode_and_decode_round_trip() -> None:
    config = {"bytes": b"\x00\xff", "list": [1, None, True, 2.5, "x"], "map": {"k": {}}}
    assert decode(encode(config)) == config
    assert decode(encode(MappingProxyType({"t": (1, 2)}))) == {"t": [1, 2]}


# -- freeze and plain -------------------------------------------------------------------


def test_freeze_makes_nested_maps_and_lists_read_only() -> None:
    frozen = freeze({"a": {"b": [1, {"c": 2}]}, "t": (1, [2])})
    assert isinstance(frozen, MappingProxyType)
    assert isinstance(frozen["a"], MappingProxyType)
    assert frozen["a"]["b"] == (1, MappingProxyType({"c": 2}))
    assert isinstance(frozen["a"]["b"][1], MappingProxyType)
    assert frozen["t"] == (1, (2,))
    with pytest.raises(TypeError):
        frozen["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        frozen["a"]["b"][1]["c"] = 3  # type: ignore[index]


def test_changing_the_original_does_not_change_the_frozen_copy() -> None:
    inner: dict[str, Any] = {"c": [1]}
    original: dict[str, Any] = {"a": inner, "list": [inner]}
    frozen = freeze(original)
    inner["c"].append(2)
    inner["d"] = 4
    original["new"] = True
    assert frozen == {"a": {"c": (1,)}, "list": ({"c": (1,)},)}


def test_freeze_copies_mapping_proxies_too() -> None:
    """A proxy is read-only but shows its dict's changes: freeze copies what is behind it."""
    behind = {"k": {"n": 1}}
    proxy = MappingProxyType({"outer": MappingProxyType(behind)})
    frozen = freeze(proxy)
    behind["k"]["n"] = 2
    behind["added"] = {}
    assert frozen == {"outer": {"k": {"n": 1}}}
    assert isinstance(frozen["outer"]["k"], MappingProxyType)


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "s", b"b"])
def test_freeze_returns_scalars_as_they_are(value: object) -> None:
    assert freeze(value) is value


@attrs.frozen
class Settings:
    url: str
    hosts: tuple[str, ...] = ()


def test_plain_gives_a_new_dict_for_a_mapping_or_an_attrs_instance() -> None:
    proxy = MappingProxyType({"a": 1})
    assert plain(proxy) == {"a": 1}
    assert type(plain(proxy)) is dict
    given = {"a": 1}
    assert plain(given) is not given
    assert plain(Settings("u", ("h",))) == {"url": "u", "hosts": ["h"]}
    with pytest.raises(TypeError, match="attrs instance"):
        plain(3)
