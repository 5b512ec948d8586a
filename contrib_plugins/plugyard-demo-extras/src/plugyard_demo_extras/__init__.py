"""The ``shout`` and ``reverse`` plugins, registered when this module is imported."""

from __future__ import annotations

from typing import Any

import plugyard


@plugyard.register(group="plugyard.demo", name="shout", optional_depends_on=["normalize"])
class Shout:
    """Upper-case a text; with ``normalize`` present, its words joined by single spaces."""

    normalize: Any = None

    def setup(self, ctx: plugyard.PluginContext) -> None:
        if ctx.has_dependency("normalize"):
            self.normalize = ctx.dependency("normalize")

    def execute(self, data: str) -> str:
        if self.normalize is not None:
            data = " ".join(self.normalize.execute(data))
        return data.upper() + "!"


@plugyard.register(group="plugyard.demo", name="reverse")
def reverse(data: str) -> str:
    """Reverse a text."""
    return data[::-1]
