"""What a config holds: typed configs, plain values and their msgpack encoding.

A config is a map with string keys. Values are what msgpack carries without
extension types: ``None``, ``bool``, ``int`` (-2**63 to 2**64 - 1), ``float``,
``str``, ``bytes``, lists and maps with ``str`` keys. ``bytes`` stay ``bytes``
(msgpack's bin type), so binary values round-trip exactly. Two things are
normalised by :func:`encode` and so do not come back as they went in: tuples
are stored as lists (msgpack has one array type), and ``bytearray``, subclasses
of ``int``, ``float`` and ``str`` (enums, for instance) and non-dict mappings
are stored as the plain type. Keys that are not ``str`` are refused rather
than stringified: ``{1: "a"}`` and ``{"1": "a"}`` are different configs, and
a file with non-string keys could not be decoded back.

:func:`validate` turns a decoded mapping into an instance of a plugin's attrs
config class, checking every field's type; :func:`unstructure` turns the
instance back into a mapping :func:`encode` accepts. :func:`plain` gives either
kind of config as a dict, and :func:`freeze` a deep read-only copy of one.

Nothing here touches the disk: files are :class:`~plugyard.ConfigStore`'s job,
and this module must not import it.
"""

from __future__ import annotations

import contextlib
import enum
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .exceptions import ConfigError

__all__ = ["decode", "describe", "encode", "freeze", "plain", "unstructure", "validate"]

T = TypeVar("T")

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _join(where: str, key: str) -> str:
    if _IDENTIFIER.match(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{str.__repr__(key)}]"


def describe(value: object) -> str:
    """``value``'s type and a short repr, for error messages.

    Never raises: configs come from plugins and users, and an error about a
    value must still be reported when the value's ``__repr__`` itself fails.
    """
    try:
        text = repr(value)
    except Exception as exc:
        return f"{type(value).__name__} object (its repr() raised {type(exc).__name__})"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _storable(value: object, where: str) -> Any:
    """``value`` as the plain types msgpack stores; ConfigError naming ``where`` if impossible."""
    if value is None or type(value) in (bool, str, bytes, float):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ConfigError(
                f"the integer {int.__repr__(value)} is outside what msgpack stores "
                "(-2**63 to 2**64 - 1)",
                field=where or None,
            )
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytearray | bytes):
        return bytes(value)
    if isinstance(value, Mapping):
        stored: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"keys must be strings, not {describe(key)}", field=where or None)
            text = str.__str__(key)
            stored[text] = _storable(item, _join(where, text))
        return stored
    if isinstance(value, list | tuple):
        return [_storable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise ConfigError(
        f"cannot store {describe(value)}: a config holds None, bool, int, float, str, "
        "bytes, lists and maps with str keys",
        field=where or None,
    )


def _check_decoded(value: object, where: str) -> None:
    """Refuse what msgpack decoded but plugyard never writes (extension types, bytes keys)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"has a key that is not a string: {key!r}", field=where or None)
            _check_decoded(item, _join(where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_decoded(item, f"{where}[{index}]")
    elif not (value is None or isinstance(value, bool | int | float | str | bytes)):
        raise ConfigError(
            f"holds {describe(value)}, which plugyard does not store", field=where or None
        )


def encode(config: Mapping[str, Any]) -> bytes:
    """Encode a config mapping as msgpack, checking every value first.

    Args:
        config: A mapping with ``str`` keys, such as :func:`plain` returns.

    Returns:
        The bytes :meth:`ConfigStore.write_bytes` stores and :func:`decode`
        reads back.

    Raises:
        ConfigError: ``config`` is not a mapping, or holds something a config
            cannot: a key that is not a ``str``, an integer outside
            -2**63 to 2**64 - 1, a value of another type (a set, an arbitrary
            object), a structure that contains itself, or a string msgpack
            cannot encode. ``field`` says where (``"retry.limit"``,
            ``"hosts[2]"``; for a bad key, the map that holds it), and is
            ``None`` for the top level. No path is set: nothing was written.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config is a mapping with str keys, not {describe(config)}")
    try:
        stored = _storable(config, "")
    except RecursionError:
        raise ConfigError("is nested too deeply, or contains itself") from None
    try:
        import msgpack  # here, not at the top: only config I/O needs it

        return typing.cast("bytes", msgpack.packb(stored, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"cannot be encoded as msgpack: {exc}") from exc


def decode(data: bytes) -> dict[str, Any]:
    """Decode bytes :func:`encode` produced back into a config dict.

    Returns:
        A new dict the caller may keep and change.

    Raises:
        ConfigError: ``data`` is not msgpack, not a map, or holds what
            :func:`encode` never writes (extension types, keys that are not
            strings). No path is set: the caller knows where the bytes came
            from.
    """
    try:
        import msgpack

        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:
        raise ConfigError(f"is not valid msgpack ({type(exc).__name__}: {exc})") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"holds {describe(value)} where a map was expected")
    _check_decoded(value, "")
    return value


def plain(config: Any) -> dict[str, Any]:
    """A config as a plain dict, for storage, events and output.

    Args:
        config: A mapping (copied deeply: nested mappings become dicts,
            tuples lists, undoing :func:`freeze`) or an attrs config
            instance (given to :func:`unstructure`).

    Raises:
        TypeError: ``config`` is neither.
    """
    if isinstance(config, Mapping):
        return {key: _thawed(value) for key, value in config.items()}
    return unstructure(config)


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thawed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thawed(item) for item in value]
    return value


_EMPTY: Mapping[str, Any] = types.MappingProxyType({})


def freeze(value: Any) -> Any:
    """A deep, read-only copy of a config value, safe to hand to plugins.

    Mappings become :class:`types.MappingProxyType` over a new dict of frozen
    values, lists and tuples become tuples of frozen values, and everything
    else is returned as it is (scalars are immutable already; other objects
    are shared, not copied). Changing ``value`` afterwards does not change the
    copy.
    """
    if isinstance(value, Mapping):
        if not value:
            return _EMPTY  # most plugins have no config: one shared empty mapping
        return types.MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


# -- typed configs ------------------------------------------------------------


def validate(config_type: type[T], config: Mapping[str, Any], *, plugin: str | None = None) -> T:
    """Build an instance of the attrs class ``config_type`` from a config mapping.

    Keys are the fields' ``__init__`` names (``alias``); fields with
    ``init=False`` are not configurable. Each value is checked against the
    field's annotation: ``str``, ``bytes`` (a ``bytearray`` is converted),
    ``bool``, ``int`` (not ``bool``), ``float`` (an ``int`` is converted),
    ``None``, ``Any``, ``Literal[...]``, enums (built from their value), nested attrs classes
    (from a mapping), ``list[X]``, ``Sequence[X]``, ``tuple[X, ...]`` and
    fixed tuples (from a list or tuple), ``dict[str, X]`` and ``Mapping[str, X]``,
    and unions such as ``X | None`` (the first member that fits wins). Any
    other class is checked with ``isinstance``.

    Args:
        config_type: An attrs class.
        config: The mapping, as :meth:`ConfigStore.load` returns it.
        plugin: The plugin the config is for, to name it in errors.

    Raises:
        ConfigError: a key is not a field, a required field is missing, a
            value has the wrong type, or the class' own validators refuse a
            value; ``field`` names the offending field (``"retry.limit"`` in
            a nested class, ``"hosts[2]"`` in a list).
        TypeError: ``config_type`` is not an attrs class, its annotations
            cannot be resolved, or a field has an annotation this function
            cannot check.
    """
    try:
        return _structure(config_type, config, "")
    except ConfigError as exc:
        if plugin is None:
            raise
        error = ConfigError(exc.reason, plugin=plugin, field=exc.field)
        raise error from exc.__cause__


def _hints(config_type: type[Any]) -> dict[str, Any]:
    if not attrs.has(config_type):
        raise TypeError(f"a config type is an attrs class, not {config_type!r}")
    try:
        return typing.get_type_hints(config_type)
    except Exception as exc:
        raise TypeError(
            f"cannot resolve the annotations of {config_type.__qualname__}: {exc}. "
            "Define the config class, and the types it names, at module level."
        ) from exc


def _attrs_class(cls: type[Any]) -> type[attrs.AttrsInstance]:
    # attrs.has() was checked; this only tells the type checker.
    return typing.cast("type[attrs.AttrsInstance]", cls)


def _structure(config_type: type[T], config: object, where: str) -> T:
    hints = _hints(config_type)
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"expected a mapping for {config_type.__qualname__}, got {describe(config)}",
            field=where or None,
        )
    fields = {f.alias: f for f in attrs.fields(_attrs_class(config_type)) if f.init}
    unknown = sorted(str(key) for key in config if key not in fields)
    if unknown:
        raise ConfigError(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"{config_type.__qualname__} has {', '.join(map(repr, fields)) or 'no fields'}",
            field=_join(where, unknown[0]),
        )
    kwargs: dict[str, Any] = {}
    for key, field in fields.items():
        if key not in config:
            if field.default is attrs.NOTHING:
                raise ConfigError("is required but missing", field=_join(where, key))
            continue
        hint = hints.get(field.name, Any)
        kwargs[key] = _convert(hint, config[key], _join(where, key))
    try:
        return config_type(**kwargs)
    except (TypeError, ValueError) as exc:
        # attrs' validators put the attrs.Attribute in the exception's args or
        # quote the field's name in the message: either names the field.
        aliases = {f.name: f.alias for f in fields.values()}
        names = [aliases.get(a.name, a.name) for a in exc.args if isinstance(a, attrs.Attribute)]
        if not names:
            names = [alias for name, alias in aliases.items() if f"'{name}'" in str(exc)]
        field_name = _join(where, names[0]) if len(names) == 1 else (where or None)
        raise ConfigError(
            f"refused by {config_type.__qualname__}: {exc}", field=field_name
        ) from exc


def _type_name(hint: object) -> str:
    if isinstance(hint, type):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def _convert(hint: Any, value: object, where: str) -> Any:
    if hint is Any or hint is object:
        return _storable(value, where)
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"expected None, got {describe(value)}", field=where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        if any(type(value) is type(allowed) and value == allowed for allowed in args):
            return value
        allowed = ", ".join(map(repr, args))
        raise ConfigError(f"expected one of {allowed}, got {describe(value)}", field=where)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for member in args:
            if member is type(None):
                continue
            with contextlib.suppress(ConfigError):
                return _convert(member, value, where)
        raise ConfigError(f"expected {_type_name(hint)}, got {describe(value)}", field=where)
    if origin in (list, Sequence):
        (item,) = args or (Any,)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {describe(value)}", field=where)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {describe(value)}", field=where)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"expected {len(args)} items, got {len(value)}", field=where)
        items = args or (Any,) * len(value)
        return tuple(
            _convert(t, v, f"{where}[{i}]")
            for i, (t, v) in enumerate(zip(items, value, strict=True))
        )
    if origin in (dict, Mapping):
        key_type, item_type = args or (str, Any)
        if key_type is not str:
            raise TypeError(f"field {where!r}: config maps have str keys, not {key_type!r}")
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a map, got {describe(value)}", field=where)
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"keys must be strings, not {describe(key)}", field=where)
            result[key] = _convert(item_type, item, _join(where, key))
        return result
    if origin is not None or not isinstance(hint, type):
        raise TypeError(f"field {where!r}: validate() cannot check values of type {hint!r}")
    return _convert_class(hint, value, where)


def _convert_class(hint: type[Any], value: object, where: str) -> Any:
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        ok = isinstance(value, float)
    elif hint is bytes:
        if isinstance(value, bytearray):
            return bytes(value)
        ok = isinstance(value, bytes)
    elif issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in hint)
            raise ConfigError(
                f"expected one of {allowed} ({hint.__qualname__}), got {describe(value)}",
                field=where,
            ) from None
    elif attrs.has(hint):
        return _structure(hint, value, where)
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ConfigError(f"expected {hint.__qualname__}, got {describe(value)}", field=where)
    return value


def unstructure(instance: object) -> dict[str, Any]:
    """Turn an attrs config instance into a mapping :func:`encode` accepts.

    The inverse of :func:`validate`: keys are the fields' ``__init__`` names,
    nested attrs instances become maps, tuples become lists and enums their
    values. Fields with ``init=False`` are left out.

    Raises:
        TypeError: ``instance`` is not an attrs instance.
    """
    if not attrs.has(type(instance)):
        raise TypeError(f"unstructure() takes an attrs instance, not {instance!r}")
    return typing.cast("dict[str, Any]", _unstructure_value(instance))


def _unstructure_value(value: object) -> Any:
    if attrs.has(type(value)):
        return {
            f.alias: _unstructure_value(getattr(value, f.name))
            for f in attrs.fields(_attrs_class(type(value)))
            if f.init
        }
    if isinstance(value, enum.Enum):
        return _unstructure_value(value.value)
    if isinstance(value, Mapping):
        return {key: _unstructure_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_unstructure_value(item) for item in value]
    return value
