"""The fault suite: plugins that crash, hang, flood or escape, in real child processes.

In every case the host survives, the failing call gets a clear error, and
the other plugins of the manager go on serving. Timeouts are short: each
fault takes a second or two at most.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import plugyard
from plugyard import EventBus, PluginCrashed, PluginManager, Registry
from plugyard.exceptions import (
    CallTimeoutError,
    IsolationError,
    PluginCrashedError,
    PluginSetupError,
    RemoteError,
)
from plugyard.runtime import Sandbox, _cgroup, _isolation, _process, external, probe
from sandbox_plugins.basic import Echo
from sandbox_plugins.faults import Faulty

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_stray_processes")]

TESTS = Path(__file__).resolve().parent
LAYERS = {layer.name: layer for layer in probe()}
FAST = Sandbox(
    call_timeout=1.0,
    cancel_grace=0.3,
    start_timeout=3.0,
    stop_timeout=1.0,
    backoff=0.05,
    memory=512 << 20,
    processes=32,
)


@pytest.fixture(name="host")
def fixture_host(
    registry: Registry, crashes: tuple[EventBus, list[PluginCrashed]]
) -> Iterator[PluginManager]:
    """A manager running ``Faulty`` and ``Echo`` each in its own sandbox process."""
    registry.register(Faulty)
    registry.register(Echo)
    bus, _ = crashes
    with PluginManager(registry, isolation="process", sandbox=FAST, events=bus) as manager:
        yield manager


def _still_serving(host: PluginManager) -> None:
    assert host.execute("Echo", {"still": "here"}) == {"still": "here"}


def test_a_segfault_fails_the_call_and_is_reported(
    host: PluginManager, crashes: tuple[EventBus, list[PluginCrashed]]
) -> None:
    _still_serving(host)
    with pytest.raises(PluginCrashedError) as exc:
        host.execute("Faulty", "segfault")
    assert exc.value.returncode == -signal.SIGSEGV
    assert "killed by SIGSEGV" in str(exc.value)
    _still_serving(host)
    event = crashes[1][0]
    assert (event.plugin, event.signal, event.restart_in) == ("Faulty", signal.SIGSEGV, 0.05)


def test_an_infinite_loop_is_cancelled_then_killed(host: PluginManager) -> None:
    started = time.monotonic()
    with pytest.raises(CallTimeoutError) as exc:
        host.execute("Faulty", "loop")
    assert exc.value.killed
    assert exc.value.timeout == 1.0
    assert time.monotonic() - started < 3
    _still_serving(host)


def test_a_memory_blow_up_stops_at_the_limit(registry: Registry) -> None:
    registry.register(Faulty)
    registry.register(Echo)
    # A generous timeout: a loaded machine may take a while to refuse the memory.
    policy = attrs.evolve(FAST, call_timeout=20.0, memory=256 << 20)
    with PluginManager(registry, isolation="process", sandbox=policy) as manager:
        with pytest.raises((RemoteError, PluginCrashedError)) as exc:
            manager.execute("Faulty", "memory")
        if isinstance(exc.value, RemoteError):
            assert exc.value.data["type"] == "MemoryError"
        _still_serving(manager)


def test_exit_mid_call_reports_the_status(host: PluginManager) -> None:
    with pytest.raises(PluginCrashedError) as exc:
        host.execute("Faulty", "exit3")
    assert exc.value.returncode == 3
    assert "exited with status 3" in str(exc.value)
    _still_serving(host)


def test_garbage_on_fd_4_ends_the_child_and_quotes_it(host: PluginManager) -> None:
    with pytest.raises(PluginCrashedError) as exc:
        host.execute("Faulty", "garbage")
    assert "protocol violation" in exc.value.reason
    assert "\\xc1" in exc.value.reason
    _still_serving(host)


def test_megabytes_of_stdout_go_to_logging_not_the_protocol(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    registry.register(Faulty)
    registry.register(Echo)
    # The plugin writes as fast as the host logs: a slow host slows it down.
    policy = attrs.evolve(FAST, call_timeout=30.0)
    with (
        PluginManager(registry, isolation="process", sandbox=policy) as host,
        caplog.at_level(logging.INFO, logger="plugyard.sandbox"),
    ):
        assert host.execute("Faulty", "stdout") == "done"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = [r for r in caplog.records if r.getMessage().endswith("x" * 99)]
            if len(lines) == 30_000:
                break
            time.sleep(0.05)
        assert len(lines) == 30_000
        assert lines[0].name.endswith(".Faulty")
        _still_serving(host)


def _script(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "plugin.py"
    script.write_text(textwrap.dedent(body))
    script.chmod(0o644)
    return [sys.executable, str(script)]


def test_a_hung_handshake_times_out(registry: Registry, tmp_path: Path) -> None:
    argv = _script(tmp_path, "import time\ntime.sleep(30)\n")
    registry.register(external(argv, readable=[str(tmp_path)]), name="mute")
    policy = Sandbox(start_timeout=0.5, stop_timeout=0.5)
    with PluginManager(registry, sandbox=policy) as manager, pytest.raises(PluginSetupError) as exc:
        manager.load("mute")
    crash = exc.value.__cause__
    assert isinstance(crash, PluginCrashedError)
    assert "no $/hello within 0.5 s" in crash.reason


def test_a_program_that_cannot_be_started_fails_the_plugin_and_leaves_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-program")
    registry.register(external([missing, "--serve"]), name="absent")
    private = Path(tempfile.gettempdir())
    base = _cgroup.pids_base()

    def left() -> set[Path]:
        cgroups = base.glob(f"plugyard-{os.getpid()}-*") if base is not None else []
        return {*private.glob(f"plugyard-sandbox-{os.getpid()}-*"), *cgroups}

    before = left()
    # Without bubblewrap the host starts the program itself (bwrap would, and fail later).
    policy = attrs.evolve(FAST, bwrap=False)
    with PluginManager(registry, sandbox=policy) as manager, pytest.raises(PluginSetupError) as exc:
        manager.load("absent")
    crash = exc.value.__cause__
    assert isinstance(crash, PluginCrashedError)
    assert crash.reason.startswith(f"cannot start '{missing} --serve': ")
    assert "No such file or directory" in crash.reason
    assert left() == before  # its private directory and its cgroup are gone


def test_a_step_that_fails_before_exec_is_named_in_the_error(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's cgroup vanishes before it joins: the error says so, not just "preexec_fn"."""
    _needs("cgroup")
    prepare = _isolation.prepare  # what _process starts its children with

    def cgroup_gone(*args: Any, **kwargs: Any) -> _isolation.Launch:
        launch = prepare(*args, **kwargs)
        assert launch.cgroup is not None
        launch.cgroup.path.rmdir()  # gone before the child joins it
        return launch

    monkeypatch.setattr(_process, "prepare", cgroup_gone)
    registry.register(Echo)
    with (
        PluginManager(registry, isolation="process", sandbox=FAST) as manager,
        pytest.raises(PluginSetupError) as exc,
    ):
        manager.load("Echo")
    crash = exc.value.__cause__
    assert isinstance(crash, PluginCrashedError)
    assert "FileNotFoundError before exec: [Errno 2] No such file or directory" in crash.reason
    assert "cgroup.procs" in crash.reason
    assert "preexec_fn" not in crash.reason


def test_a_wrong_token_is_refused(registry: Registry, tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        """
        import os, time, msgpack
        hello = {"token": "guessed", "protocol": [1], "name": "impostor", "methods": []}
        os.write(4, msgpack.packb([0, 0, "$/hello", [hello]]))
        time.sleep(5)
        """,
    )
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    registry.register(external(argv, env=env, readable=[str(tmp_path)]), name="impostor")
    with PluginManager(registry, sandbox=FAST) as manager, pytest.raises(PluginSetupError) as exc:
        manager.load("impostor")
    assert "a wrong token" in str(exc.value)


HELLO_THEN = """
import os, time, msgpack
hello = {{"token": os.environ["PLUGYARD_TOKEN"], "protocol": [1], "name": "liar",
          "methods": ["execute"]}}
os.write(4, msgpack.packb([0, 0, "$/hello", [hello]]))
os.read(3, 1 << 16)  # the answer
{then}
time.sleep(5)
"""


@pytest.mark.parametrize(
    ("then", "reason"),
    [
        (
            "os.write(4, msgpack.packb([1, 4242, None, 'stray']))",
            "a response to unknown msgid 4242",
        ),
        ("os.write(4, msgpack.packb([7, 'what']))", "a message must start with 0, 1 or 2"),
        ("os.write(4, msgpack.packb([2, 'm', [msgpack.ExtType(3, b'x')]]))", "extension type 3"),
    ],
)
def test_a_plugin_breaking_the_protocol_after_hello_is_ended(
    registry: Registry, tmp_path: Path, then: str, reason: str
) -> None:
    argv = _script(tmp_path, HELLO_THEN.format(then=then))
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    registry.register(external(argv, env=env, readable=[str(tmp_path)]), name="liar")
    with PluginManager(registry, sandbox=FAST) as manager:
        handle = manager.get("liar")
        with pytest.raises(PluginCrashedError) as exc:
            handle.execute("anything")
    assert reason in exc.value.reason
    assert "received" in exc.value.reason


def test_a_first_message_that_is_not_hello_is_refused(registry: Registry, tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import os, time, msgpack\nos.write(4, msgpack.packb([2, 'hi', []]))\ntime.sleep(5)\n",
    )
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    registry.register(external(argv, env=env, readable=[str(tmp_path)]), name="rude")
    with PluginManager(registry, sandbox=FAST) as manager, pytest.raises(PluginSetupError) as exc:
        manager.load("rude")
    assert "the first message must be a $/hello request" in str(exc.value)
    assert "received [2, 'hi', []]" in str(exc.value)


def test_a_fork_bomb_stops_at_the_process_limit(host: PluginManager) -> None:
    result = host.execute("Faulty", "forkbomb")
    assert result["error"] == "Resource temporarily unavailable"
    assert result["forked"] < 32
    _still_serving(host)


def _needs(layer: str) -> None:
    if not LAYERS[layer].available:
        pytest.skip(f"this machine has no {layer}: {LAYERS[layer].detail}")


@pytest.mark.parametrize("layer", ["landlock", "bwrap"])
def test_writing_outside_its_directory_is_refused(
    registry: Registry, tmp_path: Path, layer: str
) -> None:
    _needs(layer)
    registry.register(Faulty)
    policy = Sandbox(bwrap=layer == "bwrap", require={layer})
    outside = tmp_path / "escaped"
    with PluginManager(registry, isolation="process", sandbox=policy) as manager:
        refused = manager.execute("Faulty", {"write": str(outside)})
        inside = manager.execute("Faulty", {"write": "mine.txt"})
    assert refused["written"] is False
    assert inside == {"written": True, "error": None}
    assert not outside.exists()


def test_the_seccomp_filter_refuses_ptrace(registry: Registry) -> None:
    _needs("seccomp")
    registry.register(Faulty)
    with PluginManager(registry, isolation="process", sandbox=Sandbox(require={"seccomp"})) as m:
        assert m.execute("Faulty", "ptrace") == {"result": -1, "errno": 1}  # EPERM


def test_a_required_layer_that_is_off_fails_closed(registry: Registry) -> None:
    registry.register(Echo)
    policy = Sandbox(landlock=False, bwrap=False, require={"landlock"})
    with (
        PluginManager(registry, isolation="process", sandbox=policy) as manager,
        pytest.raises(PluginSetupError) as exc,
    ):
        manager.load("Echo")
    error = exc.value.__cause__
    assert isinstance(error, IsolationError)
    assert error.missing == ("landlock",)


def _max_processes(pid: int) -> float:
    """The soft ``RLIMIT_NPROC`` of process ``pid``, as /proc shows it."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max processes"):
            soft = line.split()[2]
            return math.inf if soft == "unlimited" else int(soft)
    raise AssertionError(f"no process limit in /proc/{pid}/limits")  # pragma: no cover


def test_without_a_cgroup_the_process_limit_falls_back_to_rlimit_nproc_unless_required(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pids cgroup that cannot be made: RLIMIT_NPROC, over this user's tasks, limits instead."""
    _needs("cgroup")

    def cannot_make(limit: int) -> _cgroup.PidsGroup:
        raise PermissionError(13, "Permission denied", "pids.max")

    registry.register(Echo)
    with PluginManager(registry, isolation="process", sandbox=FAST) as manager:
        child = manager.get("Echo").instance.supervisor.child
        assert "cgroup" in child.launch.applied
        unlimited = _max_processes(child.process.pid)
    monkeypatch.setattr(_cgroup, "PidsGroup", cannot_make)
    with PluginManager(registry, isolation="process", sandbox=FAST) as manager:
        assert manager.execute("Echo", "still runs") == "still runs"
        child = manager.get("Echo").instance.supervisor.child
        assert "cgroup" not in child.launch.applied
        limit = _max_processes(child.process.pid)
    assert FAST.processes is not None
    assert FAST.processes < limit < unlimited  # this user's tasks, plus the plugin's allowance
    required = attrs.evolve(FAST, require={"cgroup"})
    with (
        PluginManager(registry, isolation="process", sandbox=required) as manager,
        pytest.raises(PluginSetupError) as exc,
    ):
        manager.load("Echo")
    error = exc.value.__cause__
    assert isinstance(error, IsolationError)
    assert error.missing == ("cgroup",)
    assert "Permission denied" in error.reasons["cgroup"]


HOST = """
import sys, time
sys.path[:0] = {paths!r}
import plugyard
from plugyard.runtime import Sandbox
from sandbox_plugins.basic import Echo

registry = plugyard.Registry("killed.host")
registry.register(Echo)
manager = plugyard.PluginManager(registry, isolation="process", sandbox=Sandbox())
pid = manager.execute("Echo", {{"ask": "pid"}})
child = manager.get("Echo").instance.supervisor.child.process.pid
print(child, flush=True)
time.sleep(60)
"""


def _group_alive(group: int) -> bool:
    """Whether a process of ``group`` still runs (a zombie, dead but unreaped, does not)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def test_the_child_dies_with_a_sigkilled_host() -> None:
    code = HOST.format(paths=[str(TESTS), *sys.path])
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as host:
        assert host.stdout is not None
        child = int(host.stdout.readline())
        assert _group_alive(child)
        host.send_signal(signal.SIGKILL)
        host.wait(5)
        deadline = time.monotonic() + 1.0
        while _group_alive(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _group_alive(child)
    # What the killed host left (its child's directory, its cgroup) goes at the next sweep.
    left = [*Path(tempfile.gettempdir()).glob(f"plugyard-sandbox-{host.pid}-*")]
    assert len(left) == 1
    removed = _isolation.sweep.__wrapped__()
    assert str(left[0]) in removed
    assert not left[0].exists()
    base = _cgroup.pids_base()
    if base is not None:
        assert not [*base.glob(f"plugyard-{host.pid}-*")]


def test_crashes_restart_with_backoff_then_the_breaker_opens(
    registry: Registry, crashes: tuple[EventBus, list[PluginCrashed]]
) -> None:
    registry.register(Faulty)
    bus, seen = crashes
    policy = Sandbox(backoff=0.05, restarts=2, stop_timeout=1.0)
    with PluginManager(registry, isolation="process", sandbox=policy, events=bus) as manager:
        handle = manager.get("Faulty")
        for expected in (0.05, 0.1):
            with pytest.raises(PluginCrashedError):
                handle.execute("exit3")
            assert seen[-1].restart_in == expected
            with pytest.raises(PluginCrashedError, match="restarting"):
                handle.execute("ok")  # no child serves during the backoff
            deadline = time.monotonic() + 5
            while not handle.instance.supervisor.serving and time.monotonic() < deadline:
                time.sleep(0.01)
            assert handle.execute("ok") == "ok"
        with pytest.raises(PluginCrashedError):
            handle.execute("exit3")
        assert seen[-1].restart_in is None
        with pytest.raises(PluginCrashedError, match="not restarted"):
            handle.execute("ok")
        assert handle.instance.supervisor.restarts == 2
        assert manager.states()["Faulty"] == "active"
        manager.unload("Faulty")
        assert manager.load("Faulty").execute("ok") == "ok"  # a new start resets the breaker
    assert [e.returncode for e in seen] == [3, 3, 3]
    assert plugyard.PluginCrashed is PluginCrashed


@pytest.mark.parametrize(
    ("user", "error", "match"),
    [
        ("no-such-user-here", ValueError, "this machine has no user 'no-such-user-here'"),
        (-1, ValueError, "a uid is not negative"),
        (True, TypeError, "a user name or uid, not True"),
        (1.5, TypeError, "a user name or uid, not 1.5"),
    ],
)
def test_a_user_that_cannot_be_is_refused_when_the_policy_is_made(
    user: object, error: type[Exception], match: str
) -> None:
    """Sandbox(user=...) names a user the machine has, or a uid, before anything starts."""
    with pytest.raises(error, match=match):
        Sandbox(user=user)  # type: ignore[arg-type]


def test_a_user_the_machine_has_or_any_uid_is_accepted() -> None:
    """A uid needs no passwd entry: the child then runs with the group of the same number."""
    assert Sandbox(user="root").user == "root"
    assert Sandbox(user=54321).user == 54321
