"""The async API of :class:`PluginManager`: the same operations, awaited.

A lifecycle operation runs in a worker thread (it takes the manager's lock,
which a coroutine must not hold across an ``await``); the plugin's
``async def`` methods run on the caller's event loop, which stays free
while the worker waits for them. Calls to an active plugin run on the loop
itself, with no thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic

from ._handles import MapResult, PluginHandle, T
from ._introspect import isawaitable
from ._lifecycle import Invoker
from ._model import PluginState

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._table import Table


class AsyncAPI(Generic[T]):
    """The ``a``-prefixed methods of :class:`PluginManager`, and ``async with``."""

    if TYPE_CHECKING:
        _table: Table

        def _ensure_active(self, name: str, invoke: Invoker) -> PluginHandle: ...
        def _load(self, name: str, invoke: Invoker) -> PluginHandle: ...
        def _load_all(self, invoke: Invoker) -> Mapping[str, PluginState]: ...
        def _unload(
            self, name: str, cascade: bool, timeout: float | None, invoke: Invoker
        ) -> None: ...
        def _shutdown(self, timeout: float | None, invoke: Invoker) -> None: ...
        def _configure(self, name: str, config: Mapping[str, Any], invoke: Invoker) -> None: ...
        def _active_handles(self) -> list[PluginHandle[T]]: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.ashutdown()

    async def aexecute(self, name: str, data: Any = None) -> Any:
        """Call plugin ``name`` with ``data``, loading it first, awaiting an async ``execute``."""
        slot = self._table.slots.get(name)
        if slot is not None and slot.state is PluginState.ACTIVE:
            handle = slot.handle
        else:
            handle = await self._in_thread(self._ensure_active, name, call="aexecute")
        result = handle.execute(data)
        if isawaitable(result):
            result = await result
        return result

    async def aload(self, name: str) -> PluginHandle[T]:
        """:meth:`load`, awaiting ``async def setup`` methods on the running loop."""
        handle: PluginHandle[T] = await self._in_thread(self._load, name, call="aload")
        return handle

    async def amap(
        self, method: str, /, *args: Any, propagate: bool = False, **kwargs: Any
    ) -> dict[str, MapResult]:
        """:meth:`map` for async plugins: load them all, then await each call in order."""
        await self.aload_all()
        results: dict[str, MapResult] = {}
        for handle in self._active_handles():
            try:
                value = handle.call(method, *args, **kwargs)
                if isawaitable(value):
                    value = await value
            except Exception as exc:  # noqa: PERF203 - each plugin's error is its own result
                if propagate:
                    raise
                results[handle.name] = MapResult(handle.name, error=exc)
            else:
                results[handle.name] = MapResult(handle.name, value)
        return results

    async def aload_all(self) -> Mapping[str, PluginState]:
        """:meth:`load_all`, awaiting ``async def setup`` methods on the running loop."""
        states: Mapping[str, PluginState] = await self._in_thread(self._load_all, call="aload_all")
        return states

    async def aunload(
        self, name: str, *, cascade: bool = False, timeout: float | None = None
    ) -> None:
        """:meth:`unload`, awaiting ``async def teardown`` methods on the running loop."""
        await self._in_thread(self._unload, name, cascade, timeout, call="aunload")

    async def ashutdown(self, *, timeout: float | None = None) -> None:
        """:meth:`shutdown`, awaiting ``async def teardown`` methods on the running loop."""
        await self._in_thread(self._shutdown, timeout, call="ashutdown")

    async def aconfigure(self, name: str, config: Mapping[str, Any]) -> None:
        """:meth:`configure`, awaiting an ``async def configure`` on the running loop."""
        await self._in_thread(self._configure, name, config, call="aconfigure")

    async def _in_thread(self, fn: Callable[..., Any], *args: Any, call: str) -> Any:
        """Run a lifecycle operation in a worker thread; its coroutines run on this loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(fn, *args, Invoker(loop, call))
