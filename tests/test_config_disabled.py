"""Config bytes in and out, and what they are made with: ``encode``, ``freeze``, ``plain``."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import pytest

from plugyard._configstore import ConfigError, ConfigStore
from plugyard._configtypes import decode, encode, freeze, plain


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> ConfigStore:
    return ConfigStore(tmp_path / "config")


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# -- bytes in, bytes out ----------------------------------------------------------------


def test_read_bytes_of_a_missing_config_is_none(store: ConfigStore) -> None:
    assert store.read_bytes("g", "p") is None
    assert not store.directory.exists()


def test_write_bytes_stores_exactly_what_it_is_given(store: ConfigStore) -> None:
    store.write_bytes("g", "p", b"\xc1 not even msgpack")
    assert store.read_bytes("g", "p") == b"\xc1 not even msgpack"
    assert stat.S_IMODE(store.path("g", "p").stat().st_mode) == 0o600
    data = encode({"key": b"\x00", "n": [1, 2.5]})
    store.write_bytes("g", "p", data)
    assert store.read_bytes("g", "p") == data
    assert store.load("g", "p") == {"key": b"\x00", "n": [1, 2.5]}


def test_restore_puts_the_previous_bytes_back(store: ConfigStore) -> None:
    """The manager's transaction: keep the old bytes, write the new, undo on failure."""
    store.save("g", "p", {"version": 1})
    before = store.read_bytes("g", "p")
    store.write_bytes("g", "p", encode({"version": 2}))
    assert store.load("g", "p") == {"version": 2}
    store.restore("g", "p", before)
    assert store.read_bytes("g", "p") == before
    assert files_in(store.directory / "g") == ["p.msgpack"]


def test_restore_of_none_removes_the_file(store: ConfigStore) -> None:
    before = store.read_bytes("g", "p")
    store.write_bytes("g", "p", encode({"new": True}))
    store.restore("g", "p", before)
    assert not store.path("g", "p").exists()
    store.restore("g", "p", None)  # already gone: nothing to do
    assert store.load("g", "p") == {}


def test_read_bytes_raises_naming_the_file_it_cannot_read(store: ConfigStore) -> None:
    path = store.path("g", "p")
    path.mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot be read") as exc:
        store.read_bytes("g", "p")
    assert exc.value.path == path
    assert exc.value.plugin == "p"
    assert isinstance(exc.value.__cause__, OSError)


def test_a_failed_write_bytes_keeps_the_old_file(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_bytes("g", "p", b"old")

    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(ConfigError, match="No space left") as exc:
        store.write_bytes("g", "p", b"new")
    monkeypatch.undo()
    assert exc.value.path == store.path("g", "p")
    assert store.read_bytes("g", "p") == b"old"
    assert files_in(store.directory / "g") == ["p.msgpack"]


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
