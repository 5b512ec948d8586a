"""Reloading under load: real threads call a plugin and its dependents through 100 reloads."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from plugin_projects import GROUP, SignedWheels
from plugyard import EventBus, PluginManager, PluginReloaded, ReloadFailed
from plugyard.exceptions import ReloadError

pytestmark = pytest.mark.slow

THREADS = 8
RELOADS = 100
#: Every fifth reload goes to a broken version, each broken in its own way, in turn.
BROKEN = [("1.2", "import"), ("1.3", "setup"), ("2.0", "dependencies")]


def files_under(*roots: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file below ``roots``: its mode, modification time and content."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                st = path.stat()
                found[str(path)] = (st.st_mode, st.st_mtime_ns, path.read_bytes())
    return found


def test_100_reloads_under_8_calling_threads_lose_no_call_and_mix_no_versions(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(
        plugin_dir, "pd-tok-1.0", "pd-tok-1.1", "pd-shout-1.0", "pd-echo-1.0", "pd-tok-1.2"
    )
    plugin_wheels.copy(plugin_dir, "pd-tok-1.3", "pd-tok-2.0")
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(PluginReloaded, events.append)
    bus.subscribe(ReloadFailed, events.append)
    manager = PluginManager(
        group=GROUP,
        plugin_dirs=[plugin_dir],
        trust=plugin_wheels.policy(),
        versions={"tok": "==1.0"},
        events=bus,
        drain_timeout=10,
    )
    assert manager.load_all() == {"echo": "active", "shout": "active", "tok": "active"}
    # Install every version once, so that what is compared below is all there.
    for version, _ in BROKEN:
        with pytest.raises(ReloadError):
            manager.reload("tok", version)
    manager.reload("tok", "1.1")
    manager.reload("tok", "1.0")
    data_home = Path(os.environ["XDG_DATA_HOME"]) / "plugyard" / "plugins" / "pd-tok"
    managed = files_under(data_home, plugin_dir)
    events.clear()

    stop = threading.Event()
    failures: list[BaseException] = []
    mixed: list[Any] = []
    answered: collections.Counter[tuple[str, str]] = collections.Counter()

    def call() -> None:
        handles = [manager.get(name) for name in ("tok", "shout", "echo")]
        while not stop.is_set():
            for handle in handles:
                try:
                    result = handle.execute("a b")
                except BaseException as exc:
                    failures.append(exc)
                    continue
                versions = set(result["tok"])
                if len(versions) != 1 or result["words"] != ["a", "b"]:
                    mixed.append(result)
                    continue
                if handle.name != "tok" and result[handle.name] != "1.0":
                    mixed.append(result)
                answered[handle.name, versions.pop()] += 1

    callers = [threading.Thread(target=call) for _ in range(THREADS)]
    # Threads switch every 0.2 ms instead of 5: more interleavings of calls and
    # reloads, and the reloading thread gets the GIL back sooner after each of
    # its file reads, so 100 reloads under 8 busy threads take seconds, not minutes.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    for caller in callers:
        caller.start()
    current = "1.0"
    failed = []
    started = time.perf_counter()
    try:
        for number in range(1, RELOADS + 1):
            if number % 5 == 0:
                version, stage = BROKEN[(number // 5 - 1) % len(BROKEN)]
                with pytest.raises(ReloadError) as exc:
                    manager.reload("tok", version)
                assert (exc.value.stage, exc.value.old_version) == (stage, current)
                assert manager.info("tok").version.public == current
                failed.append(version)
            else:
                current = "1.1" if current == "1.0" else "1.0"
                event = manager.reload("tok", current)
                assert event is not None
                assert event.new_version == current
    finally:
        stop.set()
        for caller in callers:
            caller.join(30)
        sys.setswitchinterval(interval)
    took = time.perf_counter() - started
    print(f"{RELOADS} reloads in {took:.1f} s, {sum(answered.values())} calls")
    assert failures == []
    assert mixed == []
    assert all(answered[name, v] > 0 for name in ("tok", "shout", "echo") for v in ("1.0", "1.1"))
    ok = [e for e in events if isinstance(e, PluginReloaded) and e.plugin == "tok"]
    bad = [e for e in events if isinstance(e, ReloadFailed)]
    assert len(ok) == RELOADS - RELOADS // 5
    assert [e.new_version for e in bad] == failed
    assert all(e.old_version in ("1.0", "1.1") for e in bad)
    assert files_under(data_home, plugin_dir) == managed
    calls = manager.metrics("tok")
    assert (
        calls.calls
        == sum(calls.versions.values())
        == sum(n for (name, _), n in answered.items() if name == "tok")
    )
    manager.shutdown()
