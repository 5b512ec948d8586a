"""Typed lifecycle events.

Every event is a frozen attrs class deriving from :class:`Event`, so a handler
can match on its type and read its fields with a type checker's help. The
:class:`~plugyard.EventBus` (in ``_bus.py``) delivers them; this module is
imported only once something subscribes, so a process that never listens
never builds an event class.

:class:`PluginReloaded` and :class:`ReloadFailed` are published by
:meth:`PluginManager.reload`; :class:`PluginCrashed` by the sandbox
(:mod:`plugyard.runtime`) when an isolated plugin's process dies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from ._public import present_top_level as _present_top_level


def _readonly(value: Mapping[str, Any]) -> Mapping[str, Any]:
    # A copy behind a read-only view: a handler can neither change the
    # manager's config through the event nor see later changes to it.
    return MappingProxyType(dict(value))


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Event:
    """Base class of every plugyard event; subscribe to it to receive them all.

    Attributes:
        plugin: The plugin the event is about.
        group: The plugin's group.
        version: The plugin's version, as a string (a ``Version`` is converted).
    """

    plugin: str
    group: str
    version: str = attrs.field(converter=str)


@attrs.frozen
class PluginDiscovered(Event):
    """A plugin became known (decorator, entry point, plugin directory); nothing of it ran."""


@attrs.frozen
class PluginLoaded(Event):
    """A plugin's code was imported and its instance created; ``setup`` comes next."""


@attrs.frozen
class PluginActivated(Event):
    """A plugin's ``setup`` succeeded; it is active and callable."""


@attrs.frozen
class PluginFailed(Event):
    """A plugin could not start or was failed by the manager.

    Attributes:
        error: The error that failed it, as :meth:`PluginManager.errors` holds it.
    """

    error: BaseException


@attrs.frozen
class PluginUnloaded(Event):
    """A plugin was torn down."""


@attrs.frozen
class ConfigChanged(Event):
    """A plugin accepted new configuration.

    Attributes:
        old: The configuration before, as a read-only copy.
        new: The configuration now in force, as a read-only copy.
    """

    old: Mapping[str, Any] = attrs.field(converter=_readonly)
    new: Mapping[str, Any] = attrs.field(converter=_readonly)


@attrs.frozen
class ConfigRejected(Event):
    """A configuration was refused (invalid, or the plugin raised); the old one stays.

    Attributes:
        config: The refused configuration, as a read-only copy.
        error: Why it was refused.
    """

    config: Mapping[str, Any] = attrs.field(converter=_readonly)
    error: BaseException


@attrs.frozen
class SignatureRejected(Event):
    """A plugin's distribution failed the trust gate and was not imported.

    Attributes:
        distribution: The distribution that provides the plugin.
        problems: Each reason it was refused (a missing signature, a file
            whose hash differs...).
    """

    distribution: str
    problems: tuple[str, ...] = attrs.field(converter=_strings)


@attrs.frozen
class PluginReloaded(Event):
    """A plugin was replaced by a new instance, possibly of a new version.

    ``version`` is the version now active, the same as :attr:`new_version`.
    A reload publishes one for the plugin (and each plugin of its
    distribution) and one for each dependent that was set up again beside it.

    Attributes:
        old_version: The version that was replaced.
        reason: Why: ``"requested"``, ``"a new version in a plugin
            directory"``, or, for a dependent, that its dependency was reloaded.
    """

    old_version: str = attrs.field(converter=str)
    reason: str = ""

    @property
    def new_version(self) -> str:
        """The version now active."""
        return self.version


@attrs.frozen
class ReloadFailed(Event):
    """A reload failed and was undone: the old version still answers every call.

    ``version`` is the version still active, the same as :attr:`old_version`.

    Attributes:
        new_version: The version the reload tried to switch to, if known.
        stage: Where it failed (see :class:`~plugyard.exceptions.ReloadError`).
        reason: What went wrong, for people.
        error: The exception that failed it.
    """

    new_version: str | None
    stage: str
    reason: str
    error: BaseException

    @property
    def old_version(self) -> str:
        """The version that was, and still is, active."""
        return self.version


@attrs.frozen
class PluginCrashed(Event):
    """An isolated plugin's worker process died or stopped answering.

    Attributes:
        returncode: The worker's exit status as :attr:`subprocess.Popen.returncode`
            gives it (negative: killed by that signal), or ``None`` when it
            did not exit (it hung and was killed later, or is being killed).
        reason: What happened, for people: ``"killed by SIGKILL"``,
            ``"call timed out after 5.0 s"``, the last line of its stderr...
        restart_in: Seconds until the worker is restarted, or ``None`` when
            it will not be (restarts exhausted, or it is being unloaded).
    """

    returncode: int | None
    reason: str
    restart_in: float | None = None

    @property
    def signal(self) -> int | None:
        """The number of the signal that killed the worker, if one did."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None


#: Every event class by its name, as :meth:`EventBus.subscribe` takes them.
BY_NAME: Mapping[str, type[Event]] = MappingProxyType(
    {
        cls.__name__: cls
        for cls in (
            Event,
            PluginDiscovered,
            PluginLoaded,
            PluginActivated,
            PluginFailed,
            PluginUnloaded,
            ConfigChanged,
            ConfigRejected,
            SignatureRejected,
            PluginReloaded,
            ReloadFailed,
            PluginCrashed,
        )
    }
)


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
