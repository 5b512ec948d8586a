"""Config files (msgpack, atomic saves) and typed configs."""

from __future__ import annotations

import enum
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import attrs
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from plugyard._configstore import ConfigError, ConfigStore, unstructure, validate
from plugyard.exceptions import InvalidPluginError, PluginError

# -- strategies ------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
configs = st.dictionaries(st.text(), values, max_size=8)


def same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (``1 == 1.0 == True`` does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> ConfigStore:
    return ConfigStore(tmp_path / "config")


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- load and save -----------------------------------------------------------------


def test_a_missing_config_loads_as_an_empty_dict(store: ConfigStore) -> None:
    assert store.load("myapp", "csv") == {}
    assert not store.directory.exists(), "loading creates nothing"


def test_a_config_lives_in_group_slash_name_dot_msgpack(store: ConfigStore) -> None:
    store.save("myapp.exporters", "csv", {"a": 1})
    path = store.directory / "myapp.exporters" / "csv.msgpack"
    assert store.path("myapp.exporters", "csv") == path
    assert msgpack.unpackb(path.read_bytes()) == {"a": 1}
    assert files_in(path.parent) == ["csv.msgpack"]


def test_config_files_are_readable_by_their_owner_only(store: ConfigStore) -> None:
    store.save("g", "p", {"secret": b"\x00key"})
    mode = stat.S_IMODE(store.path("g", "p").stat().st_mode)
    assert mode == 0o600


def test_bytes_and_nested_values_round_trip_exactly(store: ConfigStore) -> None:
    config = {
        "key": b"\x00\xff binary",
        "text": "naïve",
        "nested": {"list": [1, 2.5, None, True, b"", ""], "empty": {}},
        "big": 2**64 - 1,
        "small": -(2**63),
    }
    store.save("g", "p", config)
    loaded = store.load("g", "p")
    assert same(loaded, config)
    assert type(loaded["key"]) is bytes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs)
def test_any_storable_config_round_trips_with_its_types(
    tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any]
) -> None:
    store = ConfigStore(tmp_path_factory.getbasetemp() / "roundtrip")
    store.save("g", "p", config)
    assert same(store.load("g", "p"), config)


def test_saving_again_replaces_the_whole_config(store: ConfigStore) -> None:
    store.save("g", "p", {"a": 1, "b": 2})
    store.save("g", "p", {"c": 3})
    assert store.load("g", "p") == {"c": 3}


class Level(enum.IntEnum):
    LOW = 1


class Name(str, enum.Enum):
    FIRST = "first"


@pytest.mark.parametrize(
    ("given_value", "stored"),
    [
        ((1, (2, b"x")), [1, [2, b"x"]]),
        (bytearray(b"ab"), b"ab"),
        (MappingProxyType({"k": 1}), {"k": 1}),
        (Level.LOW, 1),
        (Name.FIRST, "first"),
    ],
    ids=[
        "tuples-become-lists",
        "bytearray-becomes-bytes",
        "mappings-become-dicts",
        "int-enum",
        "str-enum",
    ],
)
def test_values_are_stored_as_their_plain_types(
    store: ConfigStore, given_value: object, stored: object
) -> None:
    store.save("g", "p", {"v": given_value})
    assert same(store.load("g", "p")["v"], stored)


@pytest.mark.parametrize(
    ("config", "field", "reason"),
    [
        ({"a": {1: "x"}}, "a", "keys must be strings"),
        ({"a": {b"k": "x"}}, "a", "keys must be strings"),
        ({"a": [1, {2, 3}]}, "a[1]", "cannot store set"),
        ({"a": {"b": object()}}, "a.b", "cannot store object"),
        ({"odd key": {"x": 2**64}}, "['odd key'].x", "outside what msgpack stores"),
        ({"a": -(2**63) - 1}, "a", "outside what msgpack stores"),
    ],
)
def test_values_a_config_cannot_hold_are_refused_naming_where(
    store: ConfigStore, config: dict[str, Any], field: str, reason: str
) -> None:
    store.save("g", "p", {"old": True})
    with pytest.raises(ConfigError, match=reason) as exc:
        store.save("g", "p", config)
    assert exc.value.field == field
    assert exc.value.path == store.path("g", "p")
    assert exc.value.plugin == "p"
    assert exc.value.group == "g"
    assert store.load("g", "p") == {"old": True}
    assert files_in(store.directory / "g") == ["p.msgpack"]


def test_a_non_str_top_level_key_and_a_non_mapping_are_refused(store: ConfigStore) -> None:
    with pytest.raises(ConfigError, match="keys must be strings") as exc:
        store.save("g", "p", {1: "x"})  # type: ignore[dict-item]
    assert exc.value.field is None
    with pytest.raises(ConfigError, match="a mapping with str keys"):
        store.save("g", "p", [("a", 1)])  # type: ignore[arg-type]
    assert not store.path("g", "p").exists()


def test_a_string_msgpack_cannot_encode_is_refused(store: ConfigStore) -> None:
    with pytest.raises(ConfigError, match="cannot be encoded as msgpack") as exc:
        store.save("g", "p", {"lone surrogate": "\ud800"})
    assert isinstance(exc.value.__cause__, UnicodeEncodeError)
    assert not store.path("g", "p").exists()


def test_a_self_containing_config_is_refused(store: ConfigStore) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ConfigError, match="contains itself"):
        store.save("g", "p", {"loop": loop})


@pytest.mark.parametrize(
    ("group", "name"), [("../etc", "p"), ("g", "../p"), ("g", "a/b"), ("g", "_disabled"), ("", "p")]
)
def test_names_that_could_escape_the_directory_are_refused(
    store: ConfigStore, group: str, name: str
) -> None:
    with pytest.raises(InvalidPluginError):
        store.save(group, name, {})
    with pytest.raises(InvalidPluginError):
        store.load(group, name)


# -- corrupt and unreadable files ------------------------------------------------------


CORRUPT = {
    "garbage": b"\xc1\xc1\xc1",
    "truncated": msgpack.packb({"key": "a long enough value"})[:-3],
    "empty": b"",
    "trailing-data": msgpack.packb({"a": 1}) + b"\x01",
    "not-a-map": msgpack.packb([1, 2]),
    "bytes-key": msgpack.packb({b"k": 1}, use_bin_type=True),
    "extension-type": msgpack.packb({"k": msgpack.ExtType(5, b"x")}),
    "invalid-utf8": b"\x81\xa1a\xa2\xff\xfe",
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_config_raises_naming_the_file_and_is_left_alone(
    store: ConfigStore, content: bytes
) -> None:
    path = store.path("g", "p")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        store.load("g", "p")
    error = exc.value
    assert isinstance(error, PluginError)
    assert error.path == path
    assert error.plugin == "p"
    assert str(path) in str(error)
    assert "left as it is" in str(error)
    assert path.read_bytes() == content


def test_a_decoding_error_is_chained_as_the_cause(store: ConfigStore) -> None:
    path = store.path("g", "p")
    path.parent.mkdir(parents=True)
    path.write_bytes(CORRUPT["truncated"])
    with pytest.raises(ConfigError, match="not valid msgpack") as exc:
        store.load("g", "p")
    assert isinstance(exc.value.__cause__, ValueError)


def test_an_unreadable_config_raises_with_the_os_error_as_cause(store: ConfigStore) -> None:
    path = store.path("g", "p")
    path.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(ConfigError, match="cannot be read") as exc:
        store.load("g", "p")
    assert exc.value.path == path
    assert isinstance(exc.value.__cause__, IsADirectoryError)


# -- atomic saves --------------------------------------------------------------


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_a_failed_save_keeps_the_old_file_and_leaves_no_temp_file(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    store.save("g", "p", {"version": 1, "blob": b"old"})
    before = store.path("g", "p").read_bytes()

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", fail)
    elif failing == "replace":
        monkeypatch.setattr(Path, "replace", fail)
    else:
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: FailingFile(fd))
    with pytest.raises(ConfigError, match="No space left on device") as exc:
        store.save("g", "p", {"version": 2, "blob": b"new"})
    assert exc.value.path == store.path("g", "p")
    assert isinstance(exc.value.__cause__, OSError)
    monkeypatch.undo()
    assert store.path("g", "p").read_bytes() == before
    assert store.load("g", "p") == {"version": 1, "blob": b"old"}
    assert files_in(store.directory / "g") == ["p.msgpack"]


class FailingFile:
    """A file object whose writes fail halfway, as on a full disk."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> FailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> int:
        os.write(self.fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temp_files_of_dead_writers_are_ignored_by_load_and_swept_by_save(
    store: ConfigStore,
) -> None:
    store.save("g", "p", {"version": 1})
    directory = store.directory / "g"
    dead = directory / f".p.msgpack.{dead_pid()}.abcd1234.tmp"
    dead.write_bytes(b"\x81\xa7version")  # half a config
    alive = directory / f".p.msgpack.{os.getppid()}.efgh5678.tmp"
    alive.write_bytes(b"\x81")
    other = directory / f".q.msgpack.{dead_pid()}.ijkl9012.tmp"
    other.write_bytes(b"\x81")
    assert store.load("g", "p") == {"version": 1}
    store.save("g", "p", {"version": 2})
    assert not dead.exists()
    assert alive.exists(), "a live process may still be writing it"
    assert other.exists(), "only the saved file's temp files are swept"
    assert store.load("g", "p") == {"version": 2}


def test_delete_removes_the_config(store: ConfigStore) -> None:
    store.save("g", "p", {"a": 1})
    assert store.delete("g", "p") is True
    assert store.delete("g", "p") is False
    assert store.load("g", "p") == {}


# -- disabled plugins -------------------------------------------------------------


def test_plugins_are_enabled_until_disabled(store: ConfigStore) -> None:
    assert not store.is_disabled("g", "p")
    assert store.disabled("g") == frozenset()
    store.set_disabled("g", "p")
    store.set_disabled("g", "a")
    assert store.is_disabled("g", "p")
    assert not store.is_disabled("other", "p")
    assert store.disabled("g") == {"a", "p"}
    store.set_disabled("g", "p", False)
    store.set_disabled("g", "never-disabled", False)
    assert store.disabled("g") == {"a"}


def test_each_disabled_plugin_persists_as_its_own_record(store: ConfigStore) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.set_disabled("g", name)
    directory = store.directory / "g"
    assert files_in(directory) == ["alpha.disabled", "mid.disabled", "zeta.disabled"]
    for name in ("zeta", "alpha", "mid"):
        assert msgpack.unpackb((directory / f"{name}.disabled").read_bytes()) == {"disabled": True}
    assert ConfigStore(store.directory).disabled("g") == {"alpha", "mid", "zeta"}


def test_a_corrupt_record_raises_and_is_not_overwritten_by_other_plugins(
    store: ConfigStore,
) -> None:
    path = store.directory / "g" / "p.disabled"
    path.parent.mkdir(parents=True)
    path.write_bytes(msgpack.packb({"disabled": "p"}))
    store.set_disabled("g", "q")
    with pytest.raises(ConfigError, match="where a disabled record") as exc:
        store.is_disabled("g", "p")
    assert exc.value.path == path
    assert exc.value.group == "g"
    with pytest.raises(ConfigError):
        store.disabled("g")
    assert store.is_disabled("g", "q")
    assert msgpack.unpackb(path.read_bytes()) == {"disabled": "p"}


def test_disabling_from_many_threads_loses_no_update(store: ConfigStore) -> None:
    names = [f"plugin{i}" for i in range(16)]
    threads = [threading.Thread(target=store.set_disabled, args=("g", n)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.disabled("g") == set(names)


# -- typed configs ---------------------------------------------------------------------


class Mode(enum.Enum):
    FAST = "fast"
    SAFE = "safe"


@attrs.frozen
class Retry:
    limit: int = 3
    backoff: float = 0.5


@attrs.frozen
class ExporterConfig:
    path: str
    token: bytes = b""
    enabled: bool = True
    retry: Retry = Retry()
    hosts: list[str] = attrs.Factory(list)
    headers: dict[str, str] = attrs.Factory(dict)
    timeout: float | None = None
    mode: Mode = Mode.FAST
    size: tuple[int, int] = (0, 0)
    tags: tuple[str, ...] = ()
    level: Literal["debug", "info"] = "info"
    extra: Any = None
    scale: int = attrs.field(default=1, validator=attrs.validators.gt(0))
    _secret: bytes = b""
    _pin: str = attrs.field(default="0000", validator=attrs.validators.matches_re(r"\d{4}"))
    derived: int = attrs.field(init=False, default=0)


def test_validate_builds_the_attrs_instance() -> None:
    config = validate(
        ExporterConfig,
        {
            "path": "out/data.csv",
            "token": bytearray(b"\x01"),
            "retry": {"limit": 5, "backoff": 2},
            "hosts": ("a", "b"),
            "headers": {"x": "y"},
            "timeout": 1,
            "mode": "safe",
            "size": [640, 480],
            "tags": ["t"],
            "level": "debug",
            "extra": {"anything": [1, b"2"]},
            "secret": b"s",
        },
    )
    assert config == ExporterConfig(
        path="out/data.csv",
        token=b"\x01",
        retry=Retry(limit=5, backoff=2.0),
        hosts=["a", "b"],
        headers={"x": "y"},
        timeout=1.0,
        mode=Mode.SAFE,
        size=(640, 480),
        tags=("t",),
        level="debug",
        extra={"anything": [1, b"2"]},
        secret=b"s",
    )
    assert type(config.token) is bytes
    assert type(config.retry.backoff) is float
    assert type(config.timeout) is float


def test_validate_applies_defaults_for_missing_optional_fields() -> None:
    assert validate(ExporterConfig, {"path": "p"}) == ExporterConfig(path="p")


@pytest.mark.parametrize(
    ("config", "field", "reason"),
    [
        ({}, "path", "required but missing"),
        ({"path": 1}, "path", "expected str, got int 1"),
        ({"path": "p", "enabled": 1}, "enabled", "expected bool"),
        ({"path": "p", "retry": {"limit": True}}, "retry.limit", "expected int, got bool"),
        ({"path": "p", "retry": {"limit": 1, "tries": 2}}, "retry.tries", "unknown field 'tries'"),
        ({"path": "p", "retry": 3}, "retry", "expected a mapping for Retry"),
        ({"path": "p", "hosts": ["a", 2]}, "hosts[1]", "expected str"),
        ({"path": "p", "hosts": "a"}, "hosts", "expected a list"),
        ({"path": "p", "headers": {"x": b"y"}}, "headers.x", "expected str"),
        ({"path": "p", "timeout": "soon"}, "timeout", "expected float | None"),
        ({"path": "p", "mode": "slow"}, "mode", "expected one of 'fast', 'safe'"),
        ({"path": "p", "size": [1]}, "size", "expected 2 items, got 1"),
        ({"path": "p", "tags": [1]}, "tags[0]", "expected str"),
        ({"path": "p", "level": "trace"}, "level", "expected one of 'debug', 'info'"),
        ({"path": "p", "extra": {"s": {1, 2}}}, "extra.s", "cannot store set"),
        ({"path": "p", "scale": 0}, "scale", "refused by ExporterConfig"),
        ({"path": "p", "pin": "12ab"}, "pin", "must match regex"),
        ({"path": "p", "derived": 1}, "derived", "unknown field"),
        ({"path": "p", "_secret": b""}, "_secret", "unknown field"),
        ({"path": "p", "token": "text"}, "token", "expected bytes"),
        ({"path": "p", "size": 3}, "size", "expected a list"),
        ({"path": "p", "headers": ["x"]}, "headers", "expected a map"),
        ({"path": "p", "headers": {1: "x"}}, "headers", "keys must be strings"),
    ],
)
def test_validate_names_the_field_that_is_wrong(
    config: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        validate(ExporterConfig, config)
    assert exc.value.field == field
    assert reason in exc.value.reason
    assert repr(field) in str(exc.value)


def test_validate_lists_every_unknown_field_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as exc:
        validate(Retry, {"limit": 1, "zz": 1, "aa": 2})
    assert exc.value.field == "aa"
    assert "unknown fields 'aa', 'zz'" in exc.value.reason
    assert "'limit', 'backoff'" in exc.value.reason


def test_validate_names_the_plugin_when_told() -> None:
    with pytest.raises(ConfigError, match="config of plugin 'csv', field 'path'") as exc:
        validate(ExporterConfig, {"path": 3}, plugin="csv")
    assert exc.value.plugin == "csv"


def test_an_attrs_validator_error_is_chained() -> None:
    with pytest.raises(ConfigError) as exc:
        validate(ExporterConfig, {"path": "p", "scale": -1})
    assert isinstance(exc.value.__cause__, ValueError)


def test_validate_refuses_what_is_not_an_attrs_class() -> None:
    with pytest.raises(TypeError, match="attrs class"):
        validate(dict, {})


@attrs.frozen
class Unsupported:
    callback: Sequence[set[int]] = ()


@attrs.frozen
class IntKeys:
    table: Mapping[int, str] = attrs.Factory(dict)


@pytest.mark.parametrize(
    ("config_type", "config", "message"),
    [
        (Unsupported, {"callback": [[1]]}, "cannot check values of type"),
        (IntKeys, {"table": {}}, "str keys"),
    ],
)
def test_validate_refuses_annotations_it_cannot_check(
    config_type: type[Any], config: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        validate(config_type, config)


def test_unstructure_is_the_inverse_of_validate(store: ConfigStore) -> None:
    config = ExporterConfig(
        path="p",
        token=b"\x00",
        retry=Retry(limit=1),
        hosts=["h"],
        mode=Mode.SAFE,
        size=(1, 2),
        tags=("a", "b"),
        secret=b"k",
    )
    plain = unstructure(config)
    assert plain["retry"] == {"limit": 1, "backoff": 0.5}
    assert plain["mode"] == "safe"
    assert plain["size"] == [1, 2]
    assert plain["secret"] == b"k"
    assert "derived" not in plain
    assert validate(ExporterConfig, plain) == config
    store.save("g", "p", plain)
    assert validate(ExporterConfig, store.load("g", "p")) == config


def test_unstructure_refuses_what_is_not_an_attrs_instance() -> None:
    with pytest.raises(TypeError, match="attrs instance"):
        unstructure({"a": 1})
