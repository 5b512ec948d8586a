"""Keeping one isolated plugin served: restarts with backoff, and a circuit breaker.

A :class:`Supervisor` owns the current :class:`Child` of a plugin. When the
child crashes, the calls in flight have failed already (the child did
that); the supervisor publishes :class:`PluginCrashed` and, unless the
plugin crashed more than the policy's ``restarts`` times within
``reset_after`` seconds, starts a new child after a backoff that doubles with
each crash, and replays ``setup`` (and the last ``configure``) in it. Calls
made while no child serves fail at once with :class:`PluginCrashedError`
saying when the next start is due; once the breaker is open they say that.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from .._events import PluginCrashed
from ..exceptions import CallTimeoutError, PluginCrashedError
from ._isolation import Sandbox
from ._process import Child, Hello

Publish = Callable[[PluginCrashed], None]


class Supervisor:
    """Runs one plugin's child process, and a new one after each crash, within limits.

    Args:
        name: The plugin's name.
        group: Its group.
        version: Its version, for events.
        argv: The command that serves it.
        policy: The sandbox policy (timeouts, limits, restarts).
        publish: Where :class:`PluginCrashed` events go, or ``None``.
        extra_env: Variables added to the child's environment.
        readable: Directories the plugin's code is in.
    """

    def __init__(
        self,
        name: str,
        group: str,
        version: str,
        argv: Sequence[str],
        policy: Sandbox,
        publish: Publish | None = None,
        *,
        extra_env: Mapping[str, str] | None = None,
        readable: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.group = group
        self.version = version
        self.argv = tuple(argv)
        self.policy = policy
        self.publish = publish
        self.extra_env = dict(extra_env or {})
        self.readable = tuple(readable)
        self.child: Child | None = None
        # The child calls go to: the current one, once its setup is replayed.
        self._serving: Child | None = None
        self.hello: Hello | None = None
        self.crashes: list[float] = []
        self.restarts = 0
        self.broken: PluginCrashedError | None = None
        self._replay: list[tuple[str, list[Any]]] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._next_start = 0.0
        self._halted = threading.Event()
        #: The set of its host's supervisors, which it leaves when it stops for good.
        self.host_owned: set[Supervisor] | None = None

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {'serving' if self.serving else 'down'}>"

    @property
    def serving(self) -> bool:
        """Whether a child is up and answering."""
        child = self._serving
        return child is not None and child is self.child and child.alive

    def start(self) -> Hello:
        """Start the first child and complete its handshake.

        Raises:
            IsolationError: a required layer is missing.
            PluginCrashedError: the child did not start or shake hands.
        """
        child = self._new_child()
        self.hello = child.start()
        self.child = self._serving = child
        return self.hello

    def _new_child(self) -> Child:
        return Child(
            self.name,
            self.group,
            self.argv,
            self.policy,
            self._ended,
            extra_env=self.extra_env,
            readable=self.readable,
        )

    def remember(self, method: str, params: list[Any]) -> None:
        """Replay ``method(*params)`` in every new child (``setup``, the last ``configure``)."""
        self._replay = [(m, p) for m, p in self._replay if m != method] + [(method, params)]

    def _current(self) -> Child:
        child = self._serving
        if child is not None and child is self.child and child.alive:
            return child
        child = self.child
        if self.broken is not None:
            raise self.broken
        if self._halted.is_set():
            raise PluginCrashedError(self.name, "its process was stopped")
        wait = max(self._next_start - time.monotonic(), 0.0)
        error = child.error if child is not None else None
        reason = error.reason if error is not None else "it is not running"
        raise PluginCrashedError(
            self.name,
            f"{reason}; it is restarting (in {wait:.2g} s)",
            returncode=error.returncode if error is not None else None,
            stderr=error.stderr if error is not None else "",
        )

    def call(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        """Call ``method`` in the current child.

        Raises:
            RemoteError: the plugin's method raised.
            CallTimeoutError: the call timed out.
            PluginCrashedError: no child serves, or it crashed during the call.
        """
        return self._current().call(method, params, timeout)

    async def acall(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        """:meth:`call`, awaited on the running loop instead of blocking a thread."""
        import asyncio

        child = self._current()
        future: Future[Any] = Future()
        call = child.submit(method, params, future)
        limit = self.policy.call_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), limit)
        except asyncio.TimeoutError:
            await asyncio.to_thread(_expire, child, call, limit)
        return child.outcome(call)

    def _ended(self, child: Child, error: PluginCrashedError) -> None:
        """A child ended (from its reader thread): publish, then restart or open the breaker."""
        with self._lock:
            if child is not self.child or self._halted.is_set() or child._stopping:
                return
            now = time.monotonic()
            self.crashes = [t for t in self.crashes if now - t < self.policy.reset_after]
            self.crashes.append(now)
            restart_in: float | None = None
            if len(self.crashes) > self.policy.restarts:
                self.broken = PluginCrashedError(
                    self.name,
                    f"it crashed {len(self.crashes)} times within {self.policy.reset_after:g} s "
                    f"and is not restarted (the last time: {error.reason}); unload and load "
                    "it to try again",
                    returncode=error.returncode,
                    stderr=error.stderr,
                )
            else:
                restart_in = min(
                    self.policy.backoff * 2 ** (len(self.crashes) - 1), self.policy.max_backoff
                )
                self._next_start = now + restart_in
                self._timer = threading.Timer(restart_in, self._restart)
                self._timer.daemon = True
                self._timer.start()
        if self.publish is not None:
            self.publish(
                PluginCrashed(
                    self.name,
                    self.group,
                    self.version,
                    returncode=error.returncode,
                    reason=error.reason,
                    restart_in=restart_in,
                )
            )

    def _restart(self) -> None:
        with self._lock:
            if self._halted.is_set():
                return
        child = self._new_child()
        try:
            child.start()
        except PluginCrashedError as exc:  # counts as a crash; the child never served
            with self._lock:
                self.child = child
            self._ended(child, exc)
            return
        except Exception as exc:  # an IsolationError, say: no use retrying
            with self._lock:
                self.broken = PluginCrashedError(self.name, f"restarting it failed: {exc}")
            return
        with self._lock:
            self.child = child  # from here its crash is handled by _ended
        try:
            for method, params in self._replay:
                child.call(method, params)
        except (PluginCrashedError, CallTimeoutError):
            return  # it crashed or hung in setup: _ended has counted it
        except Exception as exc:  # its setup raised: no use retrying
            with self._lock:
                self.broken = PluginCrashedError(self.name, f"its setup failed on restart: {exc}")
            child.stop()
            return
        with self._lock:
            stale = self._halted.is_set()
            if not stale:
                self._serving = child
                self.restarts += 1
        if stale:
            child.stop()

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving, with no more restarts: ``$/shutdown``, then kill the process group."""
        with self._lock:
            self._halted.set()
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        child = self.child
        if child is not None:
            child.stop(timeout)


def _expire(child: Child, call: Any, limit: float) -> None:
    with contextlib.suppress(CallTimeoutError):
        child.expire(call, limit)
    raise CallTimeoutError(child.name, call.method, limit, killed=not child.alive)
