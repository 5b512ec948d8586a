"""Well-behaved plugins."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from plugyard import PluginContext


class Echo:
    """Returns what it is given; remembers its config."""

    def setup(self, ctx: PluginContext) -> None:
        self.config = dict(ctx.config)

    def execute(self, data: Any = None) -> Any:
        if isinstance(data, dict) and data.get("ask") == "config":
            return self.config
        if isinstance(data, dict) and data.get("ask") == "pid":
            return os.getpid()
        return data

    def configure(self, config: Any) -> None:
        self.config = dict(config)


class Failing:
    """Raises in execute."""

    def execute(self, data: Any) -> Any:
        raise ValueError(f"no good: {data!r}")


class Slow:
    """Sleeps as long as it is told, in a coroutine."""

    async def execute(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds
