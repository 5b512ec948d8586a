"""A plugin's configuration: what it starts with, and a change as a transaction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._lifecycle import Invoker, Lifecycle, Slot
from ._model import PluginState
from .exceptions import ConfigError, PluginNotActiveError

# Config files and typed configs (pathlib, msgpack, the validators) are
# imported by the first manager with a config store or plugin with a
# config_type: most start with an empty config and need neither.
if TYPE_CHECKING:
    from ._configstore import ConfigStore

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def store_of(config: ConfigStore | str | os.PathLike[str] | None) -> ConfigStore | None:
    """The config store ``PluginManager(config=)`` names: itself, one on a directory, or none."""
    if config is None:
        return None
    from ._configstore import ConfigStore

    return config if isinstance(config, ConfigStore) else ConfigStore(config)


def initial(slot: Slot, store: ConfigStore | None) -> Any:
    """The stored config of ``slot``'s plugin, validated into its ``config_type`` if it has one.

    Raises:
        ConfigError: the file cannot be read, or does not validate.
    """
    name = slot.name
    raw = store.load(slot.candidate.group, name) if store is not None else {}
    try:
        return _typed(slot, raw)
    except ConfigError:
        raise
    except Exception as exc:  # a config_type that is no attrs class, a raising converter
        raise ConfigError(
            f"its config_type cannot be used: {type(exc).__name__}: {exc}", plugin=name
        ) from exc


def _typed(slot: Slot, raw: dict[str, Any]) -> Any:
    return _typed_for(slot.candidate.target, slot.name, raw)


def _typed_for(target: object, name: str, raw: dict[str, Any]) -> Any:
    config_type = getattr(target, "config_type", None)
    if config_type is None and not raw:
        return _EMPTY  # what freeze() makes of an empty config
    from ._configtypes import freeze, validate

    if config_type is None:
        return freeze(raw)
    return validate(config_type, raw, plugin=name)


def carried_over(config: Any, target: object, name: str) -> Any:
    """The config an instance runs with, for a new instance of ``target`` (a reload).

    The new version may declare another ``config_type``: the values are
    validated into it, so a reload keeps the config or fails, never drops it.

    Raises:
        ConfigError: the config does not validate into the new ``config_type``.
    """
    from ._configtypes import decode, encode, plain

    try:
        return _typed_for(target, name, decode(encode(plain(config))))
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"it does not fit the new version: {type(exc).__name__}: {exc}", plugin=name
        ) from exc


def _prepare(slot: Slot, config: Mapping[str, Any]) -> tuple[Any, bytes]:
    """The config the plugin will hold (a copy, validated) and the bytes to store."""
    from ._configtypes import decode, encode, plain

    name = slot.name
    try:
        copied = decode(encode(config))  # a deep copy, and proof that it can be stored
        new = _typed(slot, copied)
        return new, encode(plain(new))
    except ConfigError as exc:
        if exc.plugin is None:
            error = ConfigError(exc.reason, plugin=name, field=exc.field)
            raise error from exc.__cause__ or exc
        raise
    except Exception as exc:
        raise ConfigError(f"it cannot be used: {type(exc).__name__}: {exc}", plugin=name) from exc


def transaction(
    slot: Slot,
    config: Mapping[str, Any],
    store: ConfigStore | None,
    lifecycle: Lifecycle,
    invoke: Invoker,
) -> None:
    """Validate, encode, write, then apply ``config``; on any exception undo all of it.

    Raises:
        ConfigError: a step failed; the plugin, its config and the file are as before.
    """
    from ._configtypes import plain

    name = slot.name
    group = slot.candidate.group
    active = slot.state is PluginState.ACTIVE
    apply = getattr(slot.instance, "configure", None) if active else None
    try:
        if apply is not None:
            invoke.check(name, apply, "configure")
        new, data = _prepare(slot, config)
    except ConfigError as error:
        lifecycle.emit("ConfigRejected", slot, config=dict(config), error=error)
        raise
    old = slot.config if active else None
    previous = store.read_bytes(group, name) if store is not None else None
    written = False
    try:
        if store is not None:
            store.write_bytes(group, name, data)
            written = True
        if apply is not None:
            lifecycle.holder = name
            try:
                invoke(name, apply, "configure", new)
            finally:
                lifecycle.holder = None
    except BaseException as exc:
        if written:
            assert store is not None  # noqa: S101 - written only with a store
            store.restore(group, name, previous)
        if isinstance(exc, ConfigError):
            rejected = exc
        elif isinstance(exc, Exception):
            rejected = ConfigError(f"the plugin rejected it: {exc}", plugin=name)
            rejected.__cause__ = exc
        else:
            rejected = ConfigError(f"interrupted: {type(exc).__name__}", plugin=name)
        lifecycle.emit("ConfigRejected", slot, config=dict(config), error=rejected)
        if rejected is not exc and isinstance(exc, Exception):
            raise rejected from exc
        raise
    if active:
        slot.config = new
    lifecycle.emit("ConfigChanged", slot, old=plain(old or {}), new=plain(new))


class Disabled:
    """Which plugins of a group are disabled: in the store, or for this manager only.

    Args:
        store: Where the state persists, or ``None`` to keep it in memory.
        group: The group.
    """

    def __init__(self, store: ConfigStore | None, group: str) -> None:
        self.store = store
        self.group = group
        self._here: set[str] = set()

    def names(self) -> frozenset[str]:
        """The disabled plugins (corrupt records left out: they fail their plugin on load)."""
        if self.store is None:
            return frozenset(self._here)
        return self.store.disabled_state(self.group).names

    def of(self, names: set[str]) -> tuple[set[str], dict[str, ConfigError]]:
        """Which of ``names`` are disabled, and the corrupt disabled records among them."""
        store = self.store
        if store is None:
            return names & self._here, {}
        disabled: set[str] = set()
        broken: dict[str, ConfigError] = {}
        for name in names:
            try:
                if store.is_disabled(self.group, name):
                    disabled.add(name)
            except ConfigError as error:  # noqa: PERF203 - each corrupt record fails its own plugin
                broken[name] = error
        return disabled, broken

    def set(self, name: str, disabled: bool) -> None:
        """Disable or enable ``name``; a corrupt record is overwritten.

        Raises:
            ConfigError: the record cannot be written.
        """
        if self.store is not None:
            self.store.set_disabled(self.group, name, disabled)
        elif disabled:
            self._here.add(name)
        else:
            self._here.discard(name)


def disabled_error(name: str, state: PluginState) -> PluginNotActiveError:
    """The refusal of a disabled plugin."""
    return PluginNotActiveError(
        f"plugin {name!r} is disabled; enable({name!r}) to load it",
        plugin=name,
        state=state.value,
    )
