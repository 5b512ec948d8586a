"""The ``normalize`` plugin: lowercases the words ``tokenize`` finds."""

from __future__ import annotations

from typing import Any

import plugyard


@plugyard.register(group="plugyard.demo", name="normalize", depends_on={"tokenize": ">=1.0,<2"})
class Normalize:
    """Lowercase the words of a text."""

    tokenize: Any

    def setup(self, ctx: plugyard.PluginContext) -> None:
        self.tokenize = ctx.dependency("tokenize")

    def execute(self, data: str) -> list[str]:
        return [word.lower() for word in self.tokenize.execute(data)]
