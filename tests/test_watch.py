"""Watching plugin directories: a new version that lands is reloaded; a bad file fails alone."""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin_projects import GROUP, SignedWheels
from plugyard import EventBus, PluginManager, PluginReloaded, ReloadFailed
from plugyard._watch import Watcher

WAIT = 10.0


def until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture(name="events")
def fixture_events() -> tuple[EventBus, list[Any]]:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(PluginReloaded, seen.append)
    bus.subscribe(ReloadFailed, seen.append)
    return bus, seen


@pytest.fixture(name="watched", params=["polling", "watchfiles"])
def fixture_watched(
    request: pytest.FixtureRequest,
    plugin_wheels: SignedWheels,
    plugin_dir: Path,
    events: tuple[EventBus, list[Any]],
) -> Iterator[PluginManager]:
    """Tok 1.0 and shout active under a requiring policy, the directory watched both ways."""
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-shout-1.0")
    manager = PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], trust=plugin_wheels.policy(), events=events[0]
    )
    manager.load_all()
    watcher = manager.watch(interval=0.05, polling=request.param == "polling")
    assert watcher.backend == request.param
    with manager:
        yield manager
    assert not watcher.running


def tok_version(manager: PluginManager) -> str:
    (version,) = set(manager.execute("tok", "")["tok"])
    return str(version)


def test_a_new_version_landing_in_the_directory_is_reloaded(
    watched: PluginManager,
    plugin_wheels: SignedWheels,
    plugin_dir: Path,
    events: tuple[EventBus, list[Any]],
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.1")
    assert until(lambda: tok_version(watched) == "1.1")
    assert until(lambda: len(events[1]) == 2)
    tok, shout = events[1]
    assert (tok.plugin, tok.old_version, tok.new_version) == ("tok", "1.0", "1.1")
    assert tok.reason == "a new version in a plugin directory"
    assert (shout.plugin, shout.reason) == ("shout", "its dependency 'tok' was reloaded")
    # 2.0 is newer but outside shout's range: nothing happens.
    plugin_wheels.copy(plugin_dir, "pd-tok-2.0")
    time.sleep(0.3)
    assert tok_version(watched) == "1.1"
    assert len(events[1]) == 2


def test_a_half_copied_wheel_waits_until_the_copy_is_complete(
    watched: PluginManager,
    plugin_wheels: SignedWheels,
    plugin_dir: Path,
    events: tuple[EventBus, list[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = plugin_wheels.wheels["pd-tok-1.1"].read_bytes()
    target = plugin_dir / plugin_wheels.wheels["pd-tok-1.1"].name
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        target.write_bytes(data[: len(data) // 3])
        assert until(lambda: any(target.name in r.getMessage() for r in caplog.records))
    assert tok_version(watched) == "1.0"
    assert events[1] == []
    with target.open("ab") as rest:
        rest.write(data[len(data) // 3 :])
    assert until(lambda: tok_version(watched) == "1.1")
    assert [type(e).__name__ for e in events[1]] == ["PluginReloaded", "PluginReloaded"]


def test_an_unsigned_version_fails_alone_and_is_tried_again_once_it_changes(
    watched: PluginManager,
    plugin_wheels: SignedWheels,
    plugin_dir: Path,
    events: tuple[EventBus, list[Any]],
) -> None:
    target = plugin_dir / plugin_wheels.wheels["pd-tok-1.1"].name
    shutil.copy(plugin_wheels.unsigned["pd-tok-1.1"], target)
    assert until(lambda: len(events[1]) == 1)
    (failed,) = events[1]
    assert isinstance(failed, ReloadFailed)
    assert (failed.old_version, failed.new_version, failed.stage) == ("1.0", "1.1", "install")
    assert "not signed" in failed.reason
    # Another change in the directory does not try the same file again...
    (plugin_dir / "other.py").write_text("plugin = print\n", encoding="utf-8")
    time.sleep(0.3)
    assert len(events[1]) == 1
    assert tok_version(watched) == "1.0"
    # ...but a signed copy in its place is.
    shutil.copy(plugin_wheels.wheels["pd-tok-1.1"], target)
    assert until(lambda: tok_version(watched) == "1.1")


def test_watch_true_starts_watching_and_shutdown_stops_it(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir], watch=True)
    watcher = manager.watch()
    assert watcher.running
    assert manager.watch() is watcher
    names = [t.name for t in threading.enumerate()]
    assert any(n.startswith("plugyard-watch-") for n in names)
    manager.shutdown()
    assert not watcher.running


def test_watching_needs_plugin_directories() -> None:
    with pytest.raises(ValueError, match="no plugin directories"):
        PluginManager(group=GROUP).watch()


# -- the watcher alone ------------------------------------------------------------------


def test_polling_sees_plugin_files_only_and_goes_on_after_a_failing_callback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watched = tmp_path / "plugins"
    watched.mkdir()
    (watched / "gone.whl").symlink_to(tmp_path / "nowhere.whl")  # cannot be looked at
    calls: list[int] = []

    def on_change() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("the first change could not be handled")

    watcher = Watcher([watched, tmp_path / "absent"], on_change, interval=0.02, polling=True)
    assert watcher.backend == "polling"
    with caplog.at_level(logging.ERROR, logger="plugyard"):
        watcher.start()
        assert "polling" in repr(watcher)
        assert "running" in repr(watcher)
        (watched / "notes.txt").write_text("not a plugin")
        (watched / ".partial.whl").write_text("a download in progress")
        time.sleep(0.2)
        assert calls == []
        (watched / "one.whl").write_text("a wheel")
        assert until(lambda: len(calls) == 1)
        (watched / "two.py").write_text("plugin = print\n")
        assert until(lambda: len(calls) == 2)
        watcher.stop()
    assert not watcher.running
    assert "stopped" in repr(watcher)
    assert "handling a change failed" in caplog.text
    assert "the first change could not be handled" in caplog.text


def test_without_watchfiles_it_polls_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # import watchfiles fails
    assert Watcher([tmp_path], lambda: None).backend == "polling"
    with pytest.raises(ImportError, match=r"needs watchfiles: pip install plugyard\[watch\]"):
        Watcher([tmp_path], lambda: None, polling=False)


def test_when_watchfiles_cannot_watch_it_polls_instead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    later = tmp_path / "not-yet"  # watchfiles refuses a directory that is not there
    calls: list[None] = []
    watcher = Watcher([later], lambda: calls.append(None), interval=0.02, polling=False)
    assert watcher.backend == "watchfiles"
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        watcher.start()
        try:
            assert until(lambda: watcher.backend == "polling")
            later.mkdir()
            (later / "arrived.whl").write_text("a wheel")
            assert until(lambda: calls != [])
        finally:
            watcher.stop()
    assert "watching with watchfiles failed" in caplog.text
    assert "polling instead" in caplog.text
