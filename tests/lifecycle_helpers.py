"""Threads that report back, gates that block a plugin, and a plugin that records its calls.

The lifecycle tests run calls and lifecycle operations in several threads at
once. Nothing here sleeps to synchronise: a thread that must be inside a
plugin says so with an :class:`threading.Event`, every wait has a timeout, and
every thread is a daemon joined with a timeout, so a broken manager fails a
test instead of hanging the run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

from plugyard import PluginContext, Registry

T = TypeVar("T")

#: How long a test waits for a thread or an event before it fails instead of hanging.
WAIT = 10.0

_groups = itertools.count()


def unique_group(prefix: str = "tests.lifecycle") -> str:
    """A group name no other test uses, for the process-wide registries."""
    return f"{prefix}{next(_groups)}"


class Worker(Generic[T]):
    """Run ``target`` in a daemon thread and keep what it returned or raised.

    Args:
        target: What the thread runs.
        name: The thread's name, shown when it is stuck.
    """

    def __init__(self, target: Callable[[], T], *, name: str = "worker") -> None:
        self._target = target
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self._target()
        except BaseException as exc:  # the test inspects whatever it was
            self.error = exc
        finally:
            self.done.set()

    def start(self) -> Worker[T]:
        """Start the thread; return the worker, so that it can be made and started in one line."""
        self.thread.start()
        return self

    def join(self, timeout: float = WAIT) -> None:
        """Wait for the thread; fail the test if it still runs after ``timeout`` seconds."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.thread.name} still running after {timeout} s"

    def value(self, timeout: float = WAIT) -> T:
        """Join, then return what ``target`` returned or raise what it raised."""
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return cast("T", self.result)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)  # polling a condition, not waiting for time to pass
    return True


class Gate:
    """Holds whoever calls :meth:`block` until the test calls :meth:`open`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def block(self) -> None:
        """Say that a thread is in, then wait for the gate to open (at most ``WAIT``)."""
        self.entered.set()
        assert self.opened.wait(WAIT), "the test never opened the gate"

    def open(self) -> None:
        """Let every blocked thread through, now and later."""
        self.opened.set()


class Recorder:
    """What the instances of a plugin made by :func:`register_recorder` saw.

    ``execute("block")`` waits at :attr:`gate`; any other call returns at once.
    Every call returns ``(serial, data)``, ``serial`` numbering the instance
    that ran it from 1.

    Attributes:
        gate: Where ``execute("block")`` waits.
        torn_down: Set by the first ``teardown``.
        received: The data of every call that reached an instance.
        after_teardown: The data of every call that was inside an instance
            (arriving, or still running) after that instance's ``teardown``.
        inside_at_teardown: For each ``teardown``, how many calls were inside
            instances of the plugin when it began.
        teardowns: How many times ``teardown`` ran.
    """

    def __init__(self) -> None:
        self.gate = Gate()
        self.torn_down = threading.Event()
        self.received: list[object] = []
        self.after_teardown: list[object] = []
        self.inside_at_teardown: list[int] = []
        self.teardowns = 0
        self.lock = threading.Lock()
        self.inside = 0
        self.serials = itertools.count(1)


def register_recorder(registry: Registry, name: str, *, depends_on: Sequence[str] = ()) -> Recorder:
    """Register plugin ``name``, whose instances record into the returned :class:`Recorder`."""
    recorder = Recorder()

    @registry.register(name=name, depends_on=list(depends_on))
    class Recording:
        def setup(self, ctx: PluginContext) -> None:
            self.serial = next(recorder.serials)
            self.gone = False

        def execute(self, data: object) -> tuple[int, object]:
            with recorder.lock:
                late = self.gone
                recorder.inside += 1
                recorder.received.append(data)
            try:
                if data == "block":
                    recorder.gate.block()
                else:
                    time.sleep(0)  # let another thread run while this call is inside
            finally:
                with recorder.lock:
                    recorder.inside -= 1
                    if late or self.gone:
                        recorder.after_teardown.append(data)
            return (self.serial, data)

        def teardown(self) -> None:
            with recorder.lock:
                recorder.inside_at_teardown.append(recorder.inside)
                recorder.teardowns += 1
                self.gone = True
            recorder.torn_down.set()

    return recorder
