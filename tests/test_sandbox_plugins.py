"""A sandboxed plugin is a candidate like any other: listed, ordered, started on use, called."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest

import plugyard
from conftest import _children
from plugyard import PluginManager, Registry
from plugyard.exceptions import CallTimeoutError, RemoteError
from plugyard.runtime import Sandbox, SandboxedPlugin
from plugyard.testing import MakeDistribution
from plugyard.trust import Keyring, generate_key, load_public_key
from sandbox_plugins.basic import Echo, Failing, Slow

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_stray_processes")]

QUICK = Sandbox(call_timeout=5.0, stop_timeout=1.0, backoff=0.05)


def test_listing_starts_no_process_and_first_use_starts_one(registry: Registry) -> None:
    registry.register(Echo)
    before = set(_children())
    with PluginManager(registry, isolation="process", sandbox=QUICK) as manager:
        assert [c.name for c in manager.candidates()] == ["Echo"]
        assert manager.states() == {"Echo": "discovered"}
        assert set(_children()) == before
        assert manager.execute("Echo", [1, "two", b"3"]) == [1, "two", b"3"]
        assert isinstance(manager.get("Echo").instance, SandboxedPlugin)
        assert len(set(_children()) - before) == 1
    assert manager.states() == {"Echo": "unloaded"}


def test_isolation_per_plugin_leaves_the_others_in_process(registry: Registry) -> None:
    registry.register(Echo)
    registry.register(Failing)
    with PluginManager(registry, isolation={"Echo": "process"}, sandbox=QUICK) as manager:
        assert isinstance(manager.get("Echo").instance, SandboxedPlugin)
        assert isinstance(manager.get("Failing").instance, Failing)


def test_a_remote_exception_says_what_was_raised_and_is_counted(registry: Registry) -> None:
    registry.register(Failing)
    with PluginManager(registry, isolation="process", sandbox=QUICK) as manager:
        with pytest.raises(RemoteError) as exc:
            manager.execute("Failing", 7)
        assert exc.value.data["type"] == "ValueError"
        assert "no good: 7" in str(exc.value)
        assert "Traceback" in exc.value.data["traceback"]
        snapshot = manager.metrics("Failing")
        assert (snapshot.calls, snapshot.errors) == (1, 1)


def test_config_reaches_the_process_and_survives_a_restart(registry: Registry) -> None:
    registry.register(Echo)
    with PluginManager(registry, isolation="process", sandbox=QUICK) as manager:
        handle = manager.get("Echo")
        manager.configure("Echo", {"level": 3})
        assert handle.execute({"ask": "config"}) == {"level": 3}
        supervisor = handle.instance.supervisor
        supervisor.child.end("killed by the test")
        deadline = time.monotonic() + 5
        while supervisor.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handle.execute({"ask": "config"}) == {"level": 3}


def test_dependencies_order_setup_across_the_process_boundary(registry: Registry) -> None:
    order: list[str] = []

    class Base:
        def setup(self, ctx: plugyard.PluginContext) -> None:
            order.append("base")

    registry.register(Base, name="base")
    registry.register(Echo, name="echo", depends_on=["base"])
    bus = plugyard.EventBus()
    bus.subscribe(plugyard.PluginActivated, lambda e: order.append(f"active:{e.plugin}"))
    with PluginManager(
        registry, isolation={"echo": "process"}, sandbox=QUICK, events=bus
    ) as manager:
        manager.load("echo")
    assert order == ["base", "active:base", "active:echo"]


def test_calls_from_many_threads_are_pipelined(registry: Registry) -> None:
    registry.register(Echo)
    results: dict[int, object] = {}
    with PluginManager(registry, isolation="process", sandbox=QUICK) as manager:
        handle = manager.get("Echo")

        def call(n: int) -> None:
            for i in range(50):
                results[n * 100 + i] = handle.execute(n * 100 + i)

        threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == {k: k for k in results}
    assert len(results) == 400


def test_an_async_plugin_is_awaited_and_answers_out_of_order(registry: Registry) -> None:
    registry.register(Slow)

    async def main() -> list[float]:
        async with PluginManager(registry, isolation="process", sandbox=QUICK) as manager:
            await manager.aload("Slow")
            finished: list[float] = []

            async def one(seconds: float) -> None:
                finished.append(await manager.aexecute("Slow", seconds))

            await asyncio.gather(*(one(s) for s in (0.4, 0.2, 0.0)))
            return finished

    started = time.monotonic()
    assert asyncio.run(main()) == [0.0, 0.2, 0.4]
    assert time.monotonic() - started < 5


def test_a_timed_out_async_call_is_cancelled_without_a_kill(registry: Registry) -> None:
    registry.register(Slow)
    policy = Sandbox(call_timeout=0.3, cancel_grace=1.0, stop_timeout=1.0)

    async def main() -> None:
        async with PluginManager(registry, isolation="process", sandbox=policy) as manager:
            with pytest.raises(CallTimeoutError) as exc:
                await manager.aexecute("Slow", 10)
            assert not exc.value.killed
            assert await manager.aexecute("Slow", 0) == 0

    asyncio.run(main())


def test_an_entry_point_marked_sandbox_is_never_imported_by_the_host(
    registry: Registry, make_distribution: MakeDistribution
) -> None:
    module = """
import os
import plugyard

@plugyard.register(group={group!r}, depends_on=["Echo"])
class Remote:
    def execute(self, data):
        return {{"pid": os.getpid(), "data": data}}
"""
    registry.register(Echo)
    make_distribution(
        "remote-dist",
        "2.5",
        entry_points={registry.group: {"remote": "remote_mod:Remote [sandbox]"}},
        files={"remote_mod.py": module.format(group=registry.group)},
    )
    with PluginManager(registry, sandbox=QUICK) as manager:
        assert manager.states() == {"Echo": "discovered", "remote": "discovered"}
        result = manager.execute("remote", "hi")
        assert result["data"] == "hi"
        assert "remote_mod" not in sys.modules
        info = manager.info("remote")
        assert (str(info.version), [d.name for d in info.depends_on]) == ("2.5", ["Echo"])
        assert manager.states() == {"Echo": "active", "remote": "active"}


def test_untrusted_sandbox_runs_an_unsigned_plugin_isolated(
    registry: Registry, make_distribution: MakeDistribution, tmp_path: Path
) -> None:
    _, public = generate_key(tmp_path / "keys")
    keyring = Keyring.from_keys([load_public_key(public)])
    make_distribution(
        "unsigned-dist",
        "1.0",
        entry_points={registry.group: {"unsigned": "unsigned_mod:Plugin"}},
        files={"unsigned_mod.py": "class Plugin:\n    def execute(self, d):\n        return d\n"},
    )
    refuse = plugyard.TrustPolicy(mode="require", keyring=keyring)
    with (
        PluginManager(registry, trust=refuse, sandbox=QUICK) as manager,
        pytest.raises(plugyard.SignatureError),
    ):
        manager.load("unsigned")
    sandbox = plugyard.TrustPolicy(mode="require", keyring=keyring, untrusted="sandbox")
    with PluginManager(registry, trust=sandbox, sandbox=QUICK) as manager:
        assert manager.execute("unsigned", "ok") == "ok"
        assert isinstance(manager.get("unsigned").instance, SandboxedPlugin)
        assert "unsigned_mod" not in sys.modules


def test_unload_waits_for_a_call_in_flight_then_stops_the_process(registry: Registry) -> None:
    registry.register(Slow)
    before = set(_children())
    with PluginManager(registry, isolation="process", sandbox=QUICK) as manager:
        handle = manager.get("Slow")
        results: list[object] = []

        def call() -> None:
            results.append(asyncio.run(handle.execute(0.5)))

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.1)
        manager.unload("Slow")
        caller.join(5)
        assert results == [0.5]
        assert manager.states()["Slow"] == "unloaded"
        assert set(_children()) == before
