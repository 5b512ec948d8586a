"""The base classes of every plugyard error and warning, re-exported by `exceptions`."""

from __future__ import annotations

#: How many problems an error message spells out before it says "and N more".
SHOWN = 5


class PluginError(Exception):
    """Base class of every plugyard error.

    Attributes:
        plugin: The name of the plugin the error is about, or ``None`` where it
            concerns no single plugin.
    """

    plugin: str | None

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginWarning(UserWarning):
    """Base class of every warning plugyard emits."""
