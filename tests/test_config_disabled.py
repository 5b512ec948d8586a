"""Disabled records under concurrent writers and damage; the byte-level config API.

Also what the manager's configure transaction builds on: ``encode`` refusing
what a config cannot hold, and ``freeze`` and ``plain``.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import msgpack
import pytest

from plugyard._configstore import ConfigError, ConfigStore, DisabledState
from plugyard._configtypes import decode, encode, freeze, plain

WRITERS = 8
ROUNDS = 20


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> ConfigStore:
    return ConfigStore(tmp_path / "config")


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def record(store: ConfigStore, group: str, name: str) -> Path:
    """Where the layout puts plugin ``name``'s disabled record."""
    return store.directory / group / f"{name}.disabled"


# -- concurrent writers --------------------------------------------------------------


def disable_in_every_round(directory: Path, slot: int, barrier: Any) -> None:
    """One writer process: in each round, wait for the others, then disable its plugin."""
    store = ConfigStore(directory)
    for round_number in range(ROUNDS):
        barrier.wait(timeout=60)
        store.set_disabled(f"round{round_number}", f"plugin{slot}")


def lost_updates(store: ConfigStore) -> dict[str, set[str]]:
    """Per round's group, the plugins whose disabling was lost."""
    wanted = {f"plugin{slot}" for slot in range(WRITERS)}
    groups = (f"round{number}" for number in range(ROUNDS))
    lost = {group: wanted - store.disabled(group) for group in groups}
    return {group: names for group, names in lost.items() if names}


@pytest.mark.slow
def test_eight_processes_disabling_at_the_same_moment_lose_nothing(tmp_path: Path) -> None:
    """Eight spawned processes each disable their own plugin of one group, released at once.

    Repeated over 20 groups: every time all eight stay disabled. (With one
    list per group, read, changed and written back, most of them are lost.)
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    writers = [
        context.Process(target=disable_in_every_round, args=(tmp_path, slot, barrier))
        for slot in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    assert lost_updates(ConfigStore(tmp_path)) == {}


@pytest.mark.parametrize("stores", ["one store each", "one shared store"])
def test_eight_threads_disabling_at_the_same_moment_lose_nothing(
    tmp_path: Path, stores: str
) -> None:
    """As with processes, in-process: separate stores share no lock, and need none."""
    shared = ConfigStore(tmp_path)
    barrier = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def writer(slot: int) -> None:
        store = shared if stores == "one shared store" else ConfigStore(tmp_path)
        try:
            for round_number in range(ROUNDS):
                barrier.wait(timeout=60)
                store.set_disabled(f"round{round_number}", f"plugin{slot}")
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(slot,)) for slot in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert lost_updates(shared) == {}


def test_enabling_one_plugin_leaves_the_others_disabled(store: ConfigStore) -> None:
    for name in ("a", "b", "c"):
        store.set_disabled("g", name)
    store.set_disabled("g", "b", False)
    assert store.disabled("g") == {"a", "c"}
    assert not record(store, "g", "b").exists()


# -- what is a record ------------------------------------------------------------------


def test_a_record_is_the_msgpack_map_disabled_true(store: ConfigStore) -> None:
    store.set_disabled("g", "p")
    path = record(store, "g", "p")
    assert msgpack.unpackb(path.read_bytes()) == {"disabled": True}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_record_written_by_hand_in_another_msgpack_encoding_is_valid(
    store: ConfigStore,
) -> None:
    path = record(store, "g", "p")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x81\xd9\x08disabled\xc3")  # str8 instead of fixstr: the same map
    assert store.is_disabled("g", "p")


def test_files_that_are_not_records_are_ignored(store: ConfigStore) -> None:
    """Configs, temporary files, names no plugin can have, and the old per-group list."""
    store.save("g", "p", {"a": 1})
    store.set_disabled("g", "q")
    directory = store.directory / "g"
    (directory / ".r.disabled.12345.abcd.tmp").write_bytes(b"\x81")
    (directory / "not a name.disabled").write_bytes(b"junk")
    (directory / "_disabled.msgpack").write_bytes(msgpack.packb({"disabled": ["p", "s"]}))
    state = store.disabled_state("g")
    assert state == DisabledState(names=frozenset({"q"}), broken=MappingProxyType({}))
    assert store.disabled("g") == {"q"}
    assert not store.is_disabled("g", "p")
    assert not store.is_disabled("g", "s")


def test_a_group_without_a_directory_has_nothing_disabled(store: ConfigStore) -> None:
    state = store.disabled_state("g")
    assert state.names == frozenset()
    assert dict(state.broken) == {}
    assert not store.directory.exists()


def test_a_group_directory_that_cannot_be_listed_raises(store: ConfigStore) -> None:
    store.directory.mkdir()
    (store.directory / "g").write_bytes(b"a file where the group's directory belongs")
    with pytest.raises(ConfigError, match="cannot be listed") as exc:
        store.disabled_state("g")
    assert exc.value.path == store.directory / "g"
    assert exc.value.group == "g"
    assert isinstance(exc.value.__cause__, NotADirectoryError)


# -- damaged records ----------------------------------------------------------------


def write_content(content: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(content)

    return make


def make_directory(path: Path) -> None:
    path.mkdir()


def make_unreadable(path: Path) -> None:
    path.write_bytes(msgpack.packb({"disabled": True}))
    path.chmod(0)
    try:
        path.read_bytes()
    except PermissionError:
        return
    pytest.skip("this user reads files whatever their mode (root does)")


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


DAMAGE = [
    pytest.param(write_content(b"\xc1\xc1\xc1"), "not valid msgpack", id="garbage"),
    pytest.param(write_content(b""), "not valid msgpack", id="empty"),
    pytest.param(write_content(msgpack.packb({"disabled": False})), "holds dict", id="false"),
    pytest.param(write_content(msgpack.packb({"disabled": 1})), "holds dict", id="one"),
    pytest.param(
        write_content(msgpack.packb({"disabled": True, "x": 1})), "holds dict", id="extra-key"
    ),
    pytest.param(write_content(msgpack.packb([True])), "where a map was expected", id="list"),
    pytest.param(write_content(b"\x00" * 5000), "larger than 4096 bytes", id="huge"),
    pytest.param(make_directory, "is a directory", id="directory"),
    pytest.param(make_unreadable, "Permission denied", id="unreadable"),
    pytest.param(
        make_fifo,
        "not a regular file",
        id="fifo",
        marks=pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here"),
    ),
]


@pytest.mark.parametrize(("damage", "reason"), DAMAGE)
def test_a_damaged_record_is_reported_by_path_and_hides_no_other(
    store: ConfigStore, damage: Callable[[Path], None], reason: str
) -> None:
    store.set_disabled("g", "good")
    path = record(store, "g", "bad")
    damage(path)

    state = store.disabled_state("g")
    assert state.names == {"good"}
    assert list(state.broken) == ["bad"]
    error = state.broken["bad"]
    assert error.path == path
    assert error.plugin == "bad"
    assert error.group == "g"
    assert reason in error.reason
    assert str(path) in str(error)

    with pytest.raises(ConfigError) as exc:
        store.is_disabled("g", "bad")
    assert exc.value.path == path
    assert reason in exc.value.reason
    with pytest.raises(ConfigError) as exc:
        store.disabled("g")
    assert exc.value.path == path
    assert store.is_disabled("g", "good")
    assert os.path.lexists(path), "a damaged record is left as it is"


@pytest.mark.parametrize("disabled", [True, False], ids=["by-disabling", "by-enabling"])
@pytest.mark.parametrize(("damage", "reason"), DAMAGE)
def test_set_disabled_repairs_a_damaged_record(
    store: ConfigStore, damage: Callable[[Path], None], reason: str, disabled: bool
) -> None:
    path = record(store, "g", "bad")
    path.parent.mkdir(parents=True)
    damage(path)
    store.set_disabled("g", "bad", disabled)
    assert store.is_disabled("g", "bad") is disabled
    assert store.disabled_state("g") == DisabledState(
        names=frozenset({"bad"} if disabled else ()), broken=MappingProxyType({})
    )


def test_disabled_raises_for_the_first_damaged_record_in_name_order(
    store: ConfigStore,
) -> None:
    for name in ("zeta", "alpha", "mid"):
        path = record(store, "g", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xc1")
    assert sorted(store.disabled_state("g").broken) == ["alpha", "mid", "zeta"]
    with pytest.raises(ConfigError) as exc:
        store.disabled("g")
    assert exc.value.path == record(store, "g", "alpha")
    assert exc.value.plugin == "alpha"


def test_a_directory_with_files_in_a_records_place_is_never_removed(store: ConfigStore) -> None:
    path = record(store, "g", "p")
    path.mkdir(parents=True)
    (path / "keep").write_bytes(b"someone's file")
    with pytest.raises(ConfigError, match="Remove it by hand") as exc:
        store.set_disabled("g", "p")
    assert exc.value.path == path
    assert (path / "keep").read_bytes() == b"someone's file"


def test_a_record_that_cannot_be_removed_raises_naming_it(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set_disabled("g", "p")

    def fail(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", fail)
    with pytest.raises(ConfigError, match="cannot remove it: Permission denied") as exc:
        store.set_disabled("g", "p", False)
    monkeypatch.undo()
    assert exc.value.path == record(store, "g", "p")
    assert store.is_disabled("g", "p")


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
