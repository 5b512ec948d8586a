"""One child process serving one plugin: spawn, handshake, calls, and its end.

:class:`Child` owns the process and its pipes. A reader thread decodes what
the child writes on fd 4 and hands each response to the call waiting for it,
so several calls may be in flight and answered in any order; two more
threads pass the child's stdout and stderr to logging, line by line. When
the child ends for any reason (it exited, it broke the protocol, a call
timed out and it was killed) every call in flight fails with
:class:`PluginCrashedError`, the whole process group is killed, and the
``on_exit`` callback is told, once.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import queue
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import attrs

from ..exceptions import CallTimeoutError, PluginCrashedError, RemoteError
from . import _protocol as wire
from ._isolation import Launch, Sandbox, failed_before_exec, prepare

log = logging.getLogger("plugyard.sandbox")

_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20
_STDERR_TAIL = 20


class _Spawner:
    """Starts every child from one long-lived thread.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits,
    not the process: a child forked from a short-lived thread would be killed
    with it. This thread lives as long as the host.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[dict[str, Any], Future[subprocess.Popen[bytes]]]]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def spawn(self, **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="plugyard-spawner", daemon=True
                )
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((kwargs, done))
        return done.result()

    def _run(self) -> None:
        while True:
            kwargs, done = self._jobs.get()
            try:
                done.set_result(subprocess.Popen(**kwargs))
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)


_spawner = _Spawner()


@attrs.frozen
class Hello:
    """What a child said of itself in ``$/hello``.

    Attributes:
        protocol: The version chosen.
        name: The plugin's name.
        version: The plugin's version, as sent.
        methods: The methods it serves.
        depends_on: Its declared dependencies, as requirement strings.
        async_methods: The methods it runs as coroutines.
    """

    protocol: int
    name: str
    version: str
    methods: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    async_methods: tuple[str, ...] = ()


class _Call:
    """One request in flight: released with its outcome, the response or the crash."""

    __slots__ = ("done", "future", "method", "msgid", "outcome")

    def __init__(self, msgid: int, method: str, future: Future[Any] | None) -> None:
        self.msgid = msgid
        self.method = method
        self.future = future
        self.done = threading.Lock()
        self.done.acquire()
        self.outcome: list[Any] | PluginCrashedError | None = None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Child:
    """One running child process of a plugin.

    Args:
        name: The plugin's name.
        group: The plugin's group (sent back in the ``$/hello`` answer).
        argv: The command that serves the plugin.
        policy: The sandbox policy.
        on_exit: Called once, from the reader thread, when the child has ended
            and every call in flight has failed: with the child and the error.
        extra_env: Variables added to the child's environment.
        readable: Directories the plugin's code is in.
        expect_name: Refuse a ``$/hello`` that names another plugin.
    """

    def __init__(
        self,
        name: str,
        group: str,
        argv: Sequence[str],
        policy: Sandbox,
        on_exit: Callable[[Child, PluginCrashedError], None] | None = None,
        *,
        extra_env: Mapping[str, str] | None = None,
        readable: Sequence[str] = (),
        expect_name: bool = True,
    ) -> None:
        self.name = name
        self.group = group
        self.argv = tuple(argv)
        self.policy = policy
        self.on_exit = on_exit
        self.extra_env = dict(extra_env or {})
        self.readable = tuple(readable)
        self.expect_name = expect_name
        self.hello: Hello | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.launch: Launch | None = None
        self.error: PluginCrashedError | None = None
        self.logger = logging.getLogger(f"plugyard.sandbox.{group}.{name}")
        self._pending: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._last_id = 0
        self._write_lock = threading.Lock()
        self._end_lock = threading.Lock()
        self._ended = threading.Event()
        self._hello = _Call(0, wire.HELLO, None)
        self._token = secrets.token_urlsafe(32)
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._pumps: list[threading.Thread] = []
        self._to_child = -1
        self._from_child = -1
        self._pgid = 0
        self._stopping = False
        self.started_at = 0.0

    # -- start --------------------------------------------------------------

    def start(self) -> Hello:
        """Spawn the child and complete the handshake.

        Raises:
            IsolationError: a layer the policy requires is missing.
            PluginCrashedError: the child did not start, did not say
                ``$/hello`` in time, or said it wrong.
        """
        host_to_child = os.pipe()
        child_to_host = os.pipe()
        for fd in (host_to_child[1], child_to_host[0]):
            with contextlib.suppress(OSError):
                import fcntl

                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        theirs = (host_to_child[0], child_to_host[1])
        try:
            launch = prepare(
                self.policy,
                self.argv,
                self._token,
                theirs,
                extra_env=self.extra_env,
                readable=self.readable,
            )
        except BaseException:
            for fd in (*host_to_child, *child_to_host):
                os.close(fd)
            raise
        self.launch = launch
        self.started_at = time.monotonic()
        try:
            self.process = _spawner.spawn(
                args=list(launch.argv),
                env=dict(launch.env),
                cwd=launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=launch.pass_fds,
                preexec_fn=launch.preexec,
                start_new_session=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            failed = failed_before_exec(child_to_host[0]) or str(exc)
            for fd in (*host_to_child[1:], *child_to_host[:1]):
                os.close(fd)
            shutil.rmtree(launch.cwd, ignore_errors=True)
            if launch.cgroup is not None:
                launch.cgroup.remove()
            raise PluginCrashedError(
                self.name, f"cannot start {' '.join(self.argv)!r}: {failed}"
            ) from exc
        finally:
            for fd in (*theirs, *launch.host_fds):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pgid = self.process.pid
        self._to_child = host_to_child[1]
        self._from_child = child_to_host[0]
        for stream, level in ((self.process.stdout, logging.INFO), (self.process.stderr, None)):
            pump = threading.Thread(
                target=self._pump, args=(stream, level), name=f"plugyard-log-{self.name}"
            )
            pump.daemon = True
            pump.start()
            self._pumps.append(pump)
        reader = threading.Thread(target=self._read, name=f"plugyard-rpc-{self.name}")
        reader.daemon = True
        reader.start()
        if not self._hello.done.acquire(timeout=self.policy.start_timeout):
            self.end(f"no $/hello within {self.policy.start_timeout:g} s of the start")
            self._hello.done.acquire(timeout=5)
        outcome = self._hello.outcome
        if isinstance(outcome, PluginCrashedError):
            raise outcome
        assert self.hello is not None  # noqa: S101 - set with the outcome
        return self.hello

    # -- calls --------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the child has said hello and not ended."""
        return self.hello is not None and not self._ended.is_set()

    @property
    def in_flight(self) -> int:
        """How many calls are waiting for their answer."""
        return len(self._pending)

    def _send(self, data: bytes) -> None:
        self._send_parts([data])

    def _send_parts(self, parts: list[bytes | memoryview]) -> None:
        with self._write_lock:
            wire.write_all(self._to_child, parts)

    def submit(self, method: str, params: list[Any], future: Future[Any] | None = None) -> _Call:
        """Send a request; its answer goes to the returned waiter (and to ``future``).

        Raises:
            PluginCrashedError: the child has ended.
        """
        if self._ended.is_set():
            raise self._crash_error()
        msgid = next(self._ids) & wire.MAX_MSGID or next(self._ids)  # atomic, and never 0
        self._last_id = max(self._last_id, msgid)
        call = _Call(msgid, method, future)
        self._pending[msgid] = call
        try:
            self._send_parts(wire.request_parts(msgid, method, params))
        except OSError:
            # The child is gone (EPIPE); the reader fails every pending call.
            self._ended.wait(self.policy.stop_timeout + 1)
        return call

    def call(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        """Call ``method`` and wait for its result.

        Raises:
            RemoteError: the plugin's method raised.
            CallTimeoutError: no answer within ``timeout`` (the policy's by default).
            PluginCrashedError: the child ended before answering.
        """
        call = self.submit(method, params)
        limit = self.policy.call_timeout if timeout is None else timeout
        if not call.done.acquire(timeout=limit):
            self.expire(call, limit)
        return self.outcome(call)

    def outcome(self, call: _Call) -> Any:
        """The result of an answered call, or raise its error."""
        outcome = call.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None  # noqa: S101 - released with an outcome
        error = outcome[2]
        if error is not None:
            code, message, data = error
            raise RemoteError(self.name, call.method, code, message, data)
        return outcome[3]

    def expire(self, call: _Call, timeout: float) -> None:
        """A call timed out: cancel it, and kill the child if it does not answer in time.

        Raises:
            CallTimeoutError: always; the call's own answer, if it came, is dropped.
        """
        with contextlib.suppress(OSError):
            self._send(wire.notification(wire.CANCEL, [call.msgid]))
        killed = not call.done.acquire(timeout=self.policy.cancel_grace)
        if killed:
            self.end(f"{call.method}() timed out after {timeout:g} s and ignored $/cancel")
        raise CallTimeoutError(self.name, call.method, timeout, killed=killed)

    def ping(self, timeout: float = 5.0) -> float:
        """Round-trip ``$/ping``; the seconds it took."""
        started = time.perf_counter()
        self.call(wire.PING, [], timeout)
        return time.perf_counter() - started

    # -- the reader ---------------------------------------------------------

    def _read(self) -> None:
        decoder = wire.Decoder(self.policy.limits)
        fd = self._from_child
        reason: str | None = None
        received = ""
        try:
            while True:
                data = os.read(fd, _PIPE_SIZE)
                if not data:
                    break
                decoder.feed(data)
                for message in decoder:
                    self._dispatch(message)
                if self._stopping and not self._pending and self._ended.is_set():
                    break
        except wire.ProtocolViolation as exc:
            reason, received = f"protocol violation: {exc.reason}", exc.received
        except OSError as exc:  # pragma: no cover - the fd closed under the reader
            reason = f"reading its pipe failed: {exc}"
        except Exception as exc:  # pragma: no cover - a bug here must not hang callers
            log.exception("the reader of plugin %r failed", self.name)
            reason = f"internal error: {exc}"
        if reason is not None and received:
            reason = f"{reason}; received {received}"
        self._finish(reason)

    def _dispatch(self, message: list[Any]) -> None:
        kind = message[0]
        if self.hello is None:
            if kind != wire.REQUEST or message[2] != wire.HELLO:
                raise wire.ProtocolViolation("the first message must be a $/hello request", message)
            self._handshake(message[1], message[3])
            return
        if kind == wire.RESPONSE:
            msgid = message[1]
            call = self._pending.pop(msgid, None)
            if call is None:
                if 0 < msgid <= self._last_id:
                    return  # the answer to a call that timed out, or to a cancelled one
                raise wire.ProtocolViolation(f"a response to unknown msgid {msgid}", message)
            self._settle(call, message)
        elif kind == wire.NOTIFICATION:
            if message[1] == wire.LOG:
                self._log(message[2])
        elif message[2] == wire.PING:
            self._send(wire.response(message[1], None, "pong"))
        else:
            self._send(
                wire.response(
                    message[1],
                    wire.error(wire.Codes.METHOD_NOT_FOUND, f"the host offers no {message[2]}"),
                    None,
                )
            )

    def _settle(self, call: _Call, outcome: list[Any] | PluginCrashedError) -> None:
        call.outcome = outcome
        future = call.future
        if future is not None and not future.done():
            future.set_result(call)
        call.done.release()

    def _log(self, params: list[Any]) -> None:
        levels = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
        level = levels.get(str(params[0]).lower(), logging.INFO) if params else logging.INFO
        text = " ".join(str(p) for p in params[1:]) if len(params) > 1 else ""
        self.logger.log(level, "%s: %s", self.name, text)

    def _handshake(self, msgid: int, params: list[Any]) -> None:
        hello = params[0] if params and isinstance(params[0], dict) else {}
        refusal = None
        versions = hello.get("protocol")
        common = [v for v in wire.VERSIONS if v in versions] if isinstance(versions, list) else []
        token = hello.get("token")
        name = hello.get("name")
        methods = hello.get("methods", [])
        if not isinstance(token, str) or not secrets.compare_digest(token, self._token):
            refusal = "a wrong token: this process was not started by this host for this plugin"
        elif not common:
            refusal = (
                f"no common protocol version: it speaks {versions!r}, the host {wire.VERSIONS}"
            )
        elif not isinstance(name, str) or (self.expect_name and name != self.name):
            refusal = f"it says it is plugin {name!r}, but {self.name!r} was started"
        elif not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            refusal = "methods must be an array of strings"
        if refusal is not None:
            with contextlib.suppress(OSError):
                self._send(
                    wire.response(msgid, wire.error(wire.Codes.HANDSHAKE_REFUSED, refusal), None)
                )
            raise wire.ProtocolViolation(f"$/hello refused: {refusal}", hello.get("name"))
        depends = hello.get("depends_on") or []
        coroutines = hello.get("async_methods") or []
        self.hello = Hello(
            protocol=max(common),
            name=str(name),
            version=str(hello.get("version", "0")),
            methods=tuple(methods),
            depends_on=tuple(str(d) for d in depends) if isinstance(depends, list) else (),
            async_methods=tuple(str(m) for m in coroutines) if isinstance(coroutines, list) else (),
        )
        self._send(
            wire.response(
                msgid, None, {"protocol": max(common), "plugin": self.name, "group": self.group}
            )
        )
        self._hello.outcome = []
        self._hello.done.release()

    def _pump(self, stream: Any, level: int | None) -> None:
        """Pass one of the child's output streams to logging, a line at a time."""
        logger = self.logger
        for raw in iter(lambda: stream.readline(8192), b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if level is None:
                self._stderr.append(line)
                logger.warning("%s: %s", self.name, line)
            elif logger.isEnabledFor(level):
                logger.log(level, "%s: %s", self.name, line)
        stream.close()

    # -- the end ------------------------------------------------------------

    def end(self, reason: str) -> None:
        """Kill the child's process group now; the reader then fails the calls in flight."""
        with self._end_lock:
            if self.error is None:
                self.error = PluginCrashedError(self.name, reason)
        self._kill_group(signal.SIGKILL)

    def _kill_group(self, sig: int) -> None:
        if self._pgid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pgid, sig)

    def _exited(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the child to exit, without reaping it."""
        process = self.process
        if process is None:
            return True
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            try:
                if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def _finish(self, reason: str | None) -> None:
        """The child is ending: kill what is left of it, fail the calls, tell the owner."""
        process = self.process
        assert process is not None  # noqa: S101 - the reader starts after the spawn
        if reason is not None or not self._exited(self.policy.stop_timeout):
            with self._end_lock:
                if self.error is None and reason is not None:
                    self.error = PluginCrashedError(self.name, reason)
            self._kill_group(signal.SIGKILL)
        self._exited(5.0)
        # The leader is a zombie until reaped: its group id cannot be reused
        # yet, so this reaches every process it left behind.
        self._kill_group(signal.SIGKILL)
        returncode = process.wait()
        if self.launch is not None and "bwrap" in self.launch.applied and returncode > 128:
            returncode = -(returncode - 128)  # bwrap reports a signal as 128 + its number
        for pump in self._pumps:
            pump.join(1.0)
        self.close_input()
        with contextlib.suppress(OSError):
            os.close(self._from_child)
        if self.launch is not None:
            shutil.rmtree(self.launch.cwd, ignore_errors=True)
            if self.launch.cgroup is not None:
                self.launch.cgroup.remove()
        with self._end_lock:
            base = self.error
            if returncode < 0:
                status = f"killed by {_signal_name(-returncode)}"
            else:
                status = f"exited with status {returncode}"
            if base is None:
                what = "it stopped" if self._stopping else status
            else:
                what = base.reason if "killed by SIGKILL" in status else f"{base.reason} ({status})"
            if self.hello is None and base is None:
                what = f"{what} before $/hello"
            self.error = PluginCrashedError(
                self.name, what, returncode=returncode, stderr="\n".join(self._stderr)
            )
            self._ended.set()
        error = self.error
        calls = [self._pending.pop(k) for k in list(self._pending)]
        if self.hello is None:
            calls.append(self._hello)
        # The owner first (it publishes PluginCrashed): a caller that sees the
        # error sees the event published.
        if self.on_exit is not None:
            try:
                self.on_exit(self, error)
            except Exception:  # pragma: no cover - the owner's bug must not kill the reader
                log.exception("handling the end of plugin %r failed", self.name)
        for call in calls:
            self._settle(call, error)

    def close_input(self) -> None:
        """Close the host's end of the child's fd 3: the child reads EOF."""
        # Under the write lock: a writer never writes to a number reused since.
        with self._write_lock:
            fd, self._to_child = self._to_child, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _crash_error(self) -> PluginCrashedError:
        self._ended.wait(self.policy.stop_timeout + 5)
        return self.error or PluginCrashedError(self.name, "it has ended")

    def stop(self, timeout: float | None = None) -> None:
        """Ask the child to stop (``$/shutdown``), then end it and its process group.

        Waits up to ``timeout`` (the policy's ``stop_timeout``) for the child to
        exit by itself, then sends ``SIGTERM`` to its process group, then ``SIGKILL``.
        """
        limit = self.policy.stop_timeout if timeout is None else timeout
        if self.process is None or self._ended.is_set():
            self._ended.wait(limit + 5)
            return
        self._stopping = True
        deadline = time.monotonic() + limit
        if self.hello is not None:
            try:
                call = self.submit(wire.SHUTDOWN, [])
                call.done.acquire(timeout=max(deadline - time.monotonic(), 0))
            except PluginCrashedError:
                pass
        self.close_input()  # EOF on its fd 3
        if not self._exited(max(deadline - time.monotonic(), 0)):
            self._kill_group(signal.SIGTERM)
            if not self._exited(0.2):
                self._kill_group(signal.SIGKILL)
        self._ended.wait(limit + 5)

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until the child has ended and its calls are failed."""
        return self._ended.wait(timeout)
