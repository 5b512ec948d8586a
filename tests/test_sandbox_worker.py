"""The Python worker, driven over real pipes by a host written out message by message."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from plugyard.runtime import Codes, _protocol as wire
from plugyard.runtime._worker import Worker, _HostLog


class Plugin:
    def setup(self, ctx: Any) -> None:
        self.ctx = ctx

    def execute(self, data: Any = "none") -> Any:
        if data == "raise":
            raise KeyError("missing")
        if data == "unsendable":
            return object()
        if data == "config":
            return dict(self.ctx.config)
        return data

    async def teardown(self) -> None:
        await asyncio.sleep(30)


class Host:
    """The host's end of the two pipes."""

    def __init__(self, plugin: object, threads: int = 1) -> None:
        down, up = os.pipe(), os.pipe()
        self.w, self.r = down[1], up[0]
        self.worker = Worker(plugin, "p", "1.2", ["dep>=1"], down[0], up[1], threads=threads)
        self.decoder = wire.Decoder()
        self.pending: list[list[Any]] = []
        self.code: int | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self._fds = [*down, *up]

    def _serve(self) -> None:
        self.code = self.worker.serve()

    def send(self, data: bytes) -> None:
        os.write(self.w, data)

    def receive(self) -> list[Any]:
        while not self.pending:
            data = os.read(self.r, 1 << 20)
            assert data, "the worker closed its pipe"
            self.decoder.feed(data)
            self.pending.extend(self.decoder)
        return self.pending.pop(0)

    def call(self, msgid: int, method: str, *params: Any) -> list[Any]:
        self.send(wire.request(msgid, method, list(params)))
        return self.receive()

    def close(self) -> None:
        """EOF for the worker; once it has stopped, close every other end, each once.

        Closing a number twice, or while the worker may still use it, would
        close whatever the next test (or another thread) opened under that
        number since: so each end is closed once, and the worker's only
        after its thread has ended. Calling this again does nothing.
        """
        fds, self._fds = self._fds, []
        if self.w in fds:
            fds.remove(self.w)
            os.close(self.w)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the worker did not stop within 30 s of EOF"
        for fd in fds:
            os.close(fd)


@pytest.fixture(name="host")
def fixture_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """A worker serving ``Plugin`` in a thread, its hello answered."""
    monkeypatch.setenv(wire.TOKEN_ENV, "secret")
    host = Host(Plugin())
    host.thread.start()
    hello = host.receive()
    assert hello[:3] == [0, 0, wire.HELLO]
    assert hello[3][0] == {
        "token": "secret",
        "protocol": [1],
        "name": "p",
        "version": "1.2",
        "methods": ["setup", "execute", "teardown"],
        "depends_on": ["dep>=1"],
        "async_methods": ["teardown"],
    }
    assert wire.TOKEN_ENV not in os.environ  # read once, then gone
    host.send(wire.response(0, None, {"protocol": 1, "plugin": "p", "group": "g"}))
    yield host
    host.close()


def test_calls_are_answered_by_msgid(host: Host) -> None:
    setup = {"name": "p", "group": "g", "version": "1.2", "config": {"k": 1}}
    assert host.call(1, "setup", setup) == [1, 1, None, None]
    assert host.call(2, "execute", [1, "a"]) == [1, 2, None, [1, "a"]]
    assert host.call(3, "execute") == [1, 3, None, "none"]
    assert host.call(4, "execute", "config") == [1, 4, None, {"k": 1}]
    assert host.call(5, wire.PING) == [1, 5, None, "pong"]


def test_failures_are_error_triples(host: Host) -> None:
    code, message, data = host.call(1, "execute", "raise")[2]
    assert (code, message, data["type"]) == (Codes.PLUGIN_ERROR, "'missing'", "KeyError")
    assert "KeyError" in data["traceback"]
    assert host.call(2, "configure", {})[2][:2] == [
        Codes.METHOD_NOT_FOUND,
        "plugin 'p' has no configure",
    ]
    error = host.call(3, "execute", "unsendable")[2]
    assert error[0] == Codes.INVALID_PARAMS
    assert "cannot be sent" in error[1]


def test_an_async_call_is_cancelled_and_says_so(host: Host) -> None:
    host.send(wire.request(7, "teardown", []))
    host.send(wire.notification(wire.CANCEL, [99]))  # nothing in flight: ignored
    answer = None
    for _ in range(100):
        host.send(wire.notification(wire.CANCEL, [7]))
        host.send(wire.request(8, wire.PING, []))
        answer = host.receive()
        if answer[1] == 7:
            break
        assert answer == [1, 8, None, "pong"]
    assert answer is not None
    assert answer[:2] == [1, 7]
    assert answer[2][0] == Codes.CANCELLED


def test_shutdown_is_answered_then_serving_ends(host: Host) -> None:
    assert host.call(9, wire.SHUTDOWN) == [1, 9, None, None]
    host.thread.join(5)
    assert host.code == 0


def test_eof_ends_serving(host: Host) -> None:
    host.close()
    assert host.code == 0


def test_garbage_from_the_host_ends_serving_with_status_2(host: Host) -> None:
    host.send(b"\xc1garbage")
    host.thread.join(5)
    assert host.code == 2


def test_a_refused_hello_ends_serving_with_status_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wire.TOKEN_ENV, "secret")
    host = Host(Plugin())
    host.thread.start()
    host.receive()
    host.send(wire.response(0, wire.error(Codes.HANDSHAKE_REFUSED, "no"), None))
    host.thread.join(5)
    host.close()
    assert host.code == 2


def test_several_threads_serve_slow_calls_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    class Blocking:
        def execute(self, data: str) -> str:
            if data == "wait":
                release.wait(5)
            return data

    monkeypatch.setenv(wire.TOKEN_ENV, "t")
    host = Host(Blocking(), threads=2)
    host.thread.start()
    host.receive()
    host.send(wire.response(0, None, {}))
    host.send(wire.request(1, "execute", ["wait"]))
    assert host.call(2, "execute", "quick") == [1, 2, None, "quick"]  # not behind the slow one
    release.set()
    assert host.receive() == [1, 1, None, "wait"]
    host.close()


def test_log_records_go_to_the_host_as_log_notifications(host: Host) -> None:
    logger = logging.getLogger("tests.sandbox.worker")
    handler = _HostLog(host.worker)
    logger.addHandler(handler)
    try:
        logger.warning("disk at %d%%", 93)
    finally:
        logger.removeHandler(handler)
    assert host.receive() == [2, wire.LOG, ["warning", "disk at 93%"]]
