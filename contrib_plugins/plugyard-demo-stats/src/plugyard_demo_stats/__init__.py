"""The ``wordcount``, ``charcount`` and ``report`` plugins: statistics of a text."""

from __future__ import annotations

from typing import Any

import plugyard


@plugyard.register(group="plugyard.demo", name="wordcount", depends_on=["normalize>=1.0"])
class WordCount:
    """Count the words of a text."""

    normalize: Any

    def setup(self, ctx: plugyard.PluginContext) -> None:
        self.normalize = ctx.dependency("normalize")

    def execute(self, data: str) -> int:
        return len(self.normalize.execute(data))


@plugyard.register(group="plugyard.demo", name="charcount", depends_on=["normalize>=1.0"])
class CharCount:
    """Count the characters of the words of a text, leaving out spaces and punctuation."""

    normalize: Any

    def setup(self, ctx: plugyard.PluginContext) -> None:
        self.normalize = ctx.dependency("normalize")

    def execute(self, data: str) -> int:
        return sum(len(word) for word in self.normalize.execute(data))


@plugyard.register(group="plugyard.demo", name="report", depends_on=["wordcount", "charcount"])
class Report:
    """Report the word and character counts of a text."""

    wordcount: Any
    charcount: Any

    def setup(self, ctx: plugyard.PluginContext) -> None:
        self.wordcount = ctx.dependency("wordcount")
        self.charcount = ctx.dependency("charcount")

    def execute(self, data: str) -> dict[str, int]:
        return {"words": self.wordcount.execute(data), "chars": self.charcount.execute(data)}
