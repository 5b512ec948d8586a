"""The plugin side in Python: serve an ordinary plugin class over fds 3 and 4.

``python -m plugyard.worker module:Plugin`` imports the class, says
``$/hello`` with the token from its environment, and answers the host's
calls: ``setup``, ``configure``, ``execute`` and ``teardown`` as the
plugin defines them, ``$/ping``, ``$/cancel`` and ``$/shutdown``. Calls run
on a few threads, so that several may be in flight and answers go back in
the order they finish; ``async def`` methods run on one event loop, and
``$/cancel`` cancels them. EOF on fd 3 (the host is gone) ends the worker.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import inspect
import logging
import os
import sys
import threading
import traceback
from typing import Any

from .._model import FunctionPlugin, PluginContext, PluginInfo, parse_depends_on, parse_version
from .._registry import get_registry, info_for
from . import _protocol as wire

LIFECYCLE = ("setup", "configure", "execute", "teardown")


class _HostLog(logging.Handler):
    """The plugin's log records, sent to the host as ``$/log`` notifications."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed logging call in the plugin
            message = str(record.msg)
        self.worker.notify(wire.LOG, [record.levelname.lower(), message])


class Worker:
    """Serves one plugin object on a pair of file descriptors.

    Args:
        plugin: The plugin's instance (a function is served as its ``execute``).
        name: The plugin's name, as the host knows it.
        version: Its version.
        depends_on: Its declared dependencies, as requirement strings.
        rfd: The descriptor the host writes to (3).
        wfd: The descriptor the host reads from (4).
        threads: How many sync calls may run at once. With one, calls are
            answered in order by the thread that reads them, the fastest
            round trip; ``async def`` methods run concurrently whatever
            the number.
    """

    def __init__(
        self,
        plugin: Any,
        name: str,
        version: str,
        depends_on: list[str],
        rfd: int = wire.HOST_TO_PLUGIN_FD,
        wfd: int = wire.PLUGIN_TO_HOST_FD,
        threads: int = 1,
    ) -> None:
        self.plugin = plugin
        self.name = name
        self.version = version
        self.depends_on = depends_on
        self.rfd = rfd
        self.wfd = wfd
        self.threads = max(threads, 1)
        self._write = threading.Lock()
        self._decoder = wire.Decoder()
        self._reading = threading.Lock()
        self._queue: collections.deque[list[Any]] = collections.deque()
        self._done = threading.Event()
        self._code = 0
        self._loop: Any = None
        self._tasks: dict[int, Any] = {}
        self._stopping = False
        self.methods = [m for m in LIFECYCLE if callable(getattr(plugin, m, None))]
        self.coroutines = [
            m for m in self.methods if inspect.iscoroutinefunction(getattr(plugin, m))
        ]

    def send(self, data: bytes) -> None:
        """Write one encoded message to the host."""
        self.send_parts([data])

    def send_parts(self, parts: list[bytes | memoryview]) -> None:
        """Write one message, as buffers in order, to the host."""
        with self._write:
            wire.write_all(self.wfd, parts)

    def notify(self, method: str, params: list[Any]) -> None:
        """Send a notification, ignoring a host that is gone."""
        with contextlib.suppress(OSError):
            self.send(wire.notification(method, params))

    def serve(self) -> int:
        """Say hello and answer calls until ``$/shutdown`` or EOF; the exit status."""
        token = os.environ.pop(wire.TOKEN_ENV, "")
        self.send(
            wire.request(
                0,
                wire.HELLO,
                [
                    {
                        "token": token,
                        "protocol": list(wire.VERSIONS),
                        "name": self.name,
                        "version": self.version,
                        "methods": self.methods,
                        "depends_on": self.depends_on,
                        "async_methods": self.coroutines,
                    }
                ],
            )
        )
        refused = self._handshake()
        if refused is not None:
            return refused
        # Leader and followers: each thread reads a batch of messages, lets the
        # next thread read while it answers them. A call is answered by the
        # thread that read it, with no hand-off between threads on its way.
        for _ in range(self.threads):
            lead = threading.Thread(target=self._lead)
            lead.daemon = True
            lead.start()
        self._done.wait()
        return self._code

    def _handshake(self) -> int | None:
        """Wait for the answer to ``$/hello``; the exit status if refused."""
        while True:
            data = os.read(self.rfd, 1 << 20)
            if not data:
                return 0  # the host is gone
            try:
                self._decoder.feed(data)
                for message in self._decoder:
                    if message[0] != wire.RESPONSE or message[1] != 0:
                        return 2
                    if message[2] is not None:
                        sys.stderr.write(f"plugyard.worker: the host refused: {message[2][1]}\n")
                        return 2
                    # What came with the answer is served first, by whichever threads are free.
                    self._queue.extend(self._decoder)
                    return None
            except wire.ProtocolViolation as exc:
                sys.stderr.write(f"plugyard.worker: {exc}\n")
                return 2

    def _finish(self, code: int) -> None:
        self._code = code
        self._done.set()

    def _lead(self) -> None:
        messages: list[list[Any]] = []
        while True:
            for message in messages:
                self._handle(message)
            with self._reading:
                if self._done.is_set():
                    return
                if self._queue:
                    messages = [self._queue.popleft()]
                    continue
                try:
                    data = os.read(self.rfd, 1 << 20)
                except OSError as exc:
                    sys.stderr.write(f"plugyard.worker: reading fd {self.rfd} failed: {exc}\n")
                    self._finish(1)
                    return
                if not data:
                    self._finish(0)  # the host is gone
                    return
                try:
                    self._decoder.feed(data)
                    messages = list(self._decoder)
                except wire.ProtocolViolation as exc:
                    sys.stderr.write(f"plugyard.worker: {exc}\n")
                    self._finish(2)
                    return
                if self.threads > 1 and len(messages) > 1:
                    # The next free thread takes the others, so that no call
                    # waits behind a slow one while a thread is free.
                    self._queue.extend(messages[1:])
                    del messages[1:]

    def _handle(self, message: list[Any]) -> None:
        if message[0] == wire.NOTIFICATION:
            if message[1] == wire.CANCEL and message[2]:
                self._cancel(message[2][0])
            return
        if message[0] != wire.REQUEST:
            return
        _, msgid, method, params = message
        if method == wire.SHUTDOWN:
            self._stopping = True
            self.send(wire.response(msgid, None, None))
            self._finish(0)
        elif method == wire.PING:
            self.send(wire.response(msgid, None, "pong"))
        elif method in self.coroutines:
            self._start_async(message)
        else:
            self.send_parts(self._answer(msgid, method, params))

    def _answer(self, msgid: int, method: str, params: list[Any]) -> list[bytes | memoryview]:
        fn = getattr(self.plugin, method, None) if method in self.methods else None
        if fn is None:
            error = wire.error(wire.Codes.METHOD_NOT_FOUND, f"plugin {self.name!r} has no {method}")
            return [wire.response(msgid, error, None)]
        try:
            result = fn(*self._arguments(method, params))
        except BaseException as exc:  # every failure is answered
            return self._failure(msgid, exc)
        return self._result(msgid, result)

    def _arguments(self, method: str, params: list[Any]) -> list[Any]:
        if method == "setup":
            given = params[0] if params and isinstance(params[0], dict) else {}
            info = PluginInfo(
                name=self.name,
                group=str(given.get("group", "sandbox")),
                version=parse_version(self.version),
                depends_on=parse_depends_on(self.depends_on),
            )
            return [PluginContext(info, {}, given.get("config") or {})]
        return params

    def _result(self, msgid: int, result: Any) -> list[bytes | memoryview]:
        try:
            return wire.response_parts(msgid, None, result)
        except (TypeError, ValueError, OverflowError) as exc:
            message = f"the result cannot be sent: {type(exc).__name__}: {exc}"
            return [wire.response(msgid, wire.error(wire.Codes.INVALID_PARAMS, message), None)]

    def _failure(self, msgid: int, exc: BaseException) -> list[bytes | memoryview]:
        data = {
            "type": type(exc).__name__,
            "traceback": "".join(traceback.format_exception(exc)),
        }
        return [wire.response(msgid, wire.error(wire.Codes.PLUGIN_ERROR, str(exc), data), None)]

    def _start_async(self, message: list[Any]) -> None:
        import asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, daemon=True).start()
        _, msgid, method, params = message
        fn = getattr(self.plugin, method)

        async def run() -> list[bytes | memoryview]:
            try:
                result = await fn(*self._arguments(method, params))
            except BaseException as exc:  # every failure is answered
                return self._failure(msgid, exc)
            return self._result(msgid, result)

        def finished(future: Any) -> None:
            self._tasks.pop(msgid, None)
            if not future.cancelled():
                self.send_parts(future.result())

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        self._tasks[msgid] = future
        future.add_done_callback(finished)

    def _cancel(self, msgid: object) -> None:
        future = self._tasks.pop(msgid, None)  # type: ignore[call-overload]
        # A sync call cannot be stopped: it runs on, and the host drops its answer.
        if future is not None and future.cancel():
            error = wire.error(wire.Codes.CANCELLED, "cancelled by the host")
            self.send(wire.response(msgid, error, None))  # type: ignore[arg-type]


def load(spec: str) -> Any:
    """The object ``module:qualname`` names."""
    module, _, qualname = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split(".") if qualname else []:
        obj = getattr(obj, part)
    return obj


def main(argv: list[str] | None = None) -> int:
    """``python -m plugyard.worker module:Plugin [--name N] [--group G] [--version V]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m plugyard.worker",
        description="Serve a plugyard plugin class to a host over fds 3 and 4.",
    )
    parser.add_argument("target", help="module:Class (or module:function)")
    parser.add_argument("--name", help="the plugin's name (the object's __name__ by default)")
    parser.add_argument("--group", help="the group it is registered in, to find its declaration")
    parser.add_argument("--version", help="its version (the declared one by default)")
    parser.add_argument(
        "--threads", type=int, default=1, help="sync calls that may run at once (default: 1)"
    )
    args = parser.parse_args(argv)
    target = load(args.target)
    declared = get_registry(args.group).find(target) if args.group else None
    if declared is None:
        declared = info_for(
            target,
            group=args.group or "sandbox",
            name=args.name,
            version=None,
            depends_on=getattr(target, "depends_on", None),
            optional_depends_on=None,
        )
    name = args.name or declared.name
    version = args.version or str(declared.version)
    plugin = target() if inspect.isclass(target) else FunctionPlugin(target)
    requires = [str(d) for d in declared.requires]
    worker = Worker(plugin, name, version, requires, threads=args.threads)
    logging.getLogger().addHandler(_HostLog(worker))
    logging.getLogger().setLevel(logging.INFO)
    code = worker.serve()
    # Threads may still be blocked reading fd 3: exit now, with what was printed flushed.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
