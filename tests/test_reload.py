"""Hot reload with real wheels: the new version beside the old, the switch, and every undo."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin_projects import GROUP, SignedWheels
from plugyard import (
    EventBus,
    PluginManager,
    PluginReloaded,
    Registry,
    ReloadFailed,
    get_registry,
)
from plugyard.cli import main
from plugyard.exceptions import (
    DependencyVersionError,
    InvalidPluginError,
    PluginLoadError,
    PluginNotActiveError,
    ReloadError,
    VersionNotFoundError,
)


@pytest.fixture(name="journal")
def fixture_journal() -> Iterator[list[tuple[str, ...]]]:
    """What the test plugins' setup and teardown report (through a module they look for)."""
    module = types.ModuleType("pd_journal")
    entries: list[tuple[str, ...]] = []
    module.entries = entries  # type: ignore[attr-defined]
    sys.modules["pd_journal"] = module
    yield entries
    sys.modules.pop("pd_journal", None)


@pytest.fixture(name="events")
def fixture_events() -> tuple[EventBus, list[Any]]:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(PluginReloaded, seen.append)
    bus.subscribe(ReloadFailed, seen.append)
    return bus, seen


ALL_TOK = ("pd-tok-1.0", "pd-tok-1.1", "pd-tok-1.2", "pd-tok-1.3", "pd-tok-2.0", "pd-tok-1.4")


@pytest.fixture(name="manager")
def fixture_manager(
    plugin_wheels: SignedWheels, plugin_dir: Path, events: tuple[EventBus, list[Any]]
) -> Iterator[PluginManager]:
    """Tok 1.0 with its dependents shout and echo active, every other version of tok beside."""
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-shout-1.0", "pd-echo-1.0")
    manager = PluginManager(
        group=GROUP,
        plugin_dirs=[plugin_dir],
        trust=plugin_wheels.policy(),
        events=events[0],
        versions={"tok": "==1.0"},
    )
    assert manager.load_all() == {"echo": "active", "shout": "active", "tok": "active"}
    plugin_wheels.copy(plugin_dir, *ALL_TOK[1:])
    with manager:
        yield manager


def tok_version(manager: PluginManager) -> str:
    result = manager.execute("tok", "")
    (version,) = set(result["tok"])
    return str(version)


def test_reload_switches_the_plugin_and_sets_its_dependents_up_again(
    manager: PluginManager, journal: list[tuple[str, ...]], events: tuple[EventBus, list[Any]]
) -> None:
    handles = {name: manager.get(name) for name in ("tok", "shout", "echo")}
    old = {name: handle.instance for name, handle in handles.items()}
    event = manager.reload("tok", "1.1")
    assert event is not None
    assert (event.plugin, event.old_version, event.new_version, event.reason) == (
        "tok",
        "1.0",
        "1.1",
        "requested",
    )
    assert handles["tok"].execute("a")["tok"] == ["1.1"] * 10
    assert handles["shout"].execute("b") == {"shout": "1.0", "tok": ["1.1"] * 10, "words": ["b"]}
    assert all(handles[n].instance is not old[n] for n in handles)
    assert manager.info("tok").version.public == "1.1"
    # New ones set up first, then the old torn down, dependents before their dependency.
    assert journal == [
        ("setup", "tok", "1.1"),
        ("setup", "echo", "1.1"),
        ("setup", "shout", "1.1"),
        ("teardown", "shout", "1.0"),
        ("teardown", "echo", "1.0"),
        ("teardown", "tok", "1.0"),
    ]
    reloaded = [(e.plugin, e.old_version, e.new_version, e.reason) for e in events[1]]
    assert reloaded == [
        ("tok", "1.0", "1.1", "requested"),
        ("echo", "1.0", "1.0", "its dependency 'tok' was reloaded"),
        ("shout", "1.0", "1.0", "its dependency 'tok' was reloaded"),
    ]
    assert sys.modules["pd_tok"].VERSION == "1.1"
    listed = [
        (c.version, c.chosen, c.state, c.why) for c in manager.candidates() if c.name == "tok"
    ]
    assert listed[0] == ("1.1", True, "active", "reloaded (requested)")
    assert sorted(v for v, *_ in listed) == ["1.0", "1.1", "1.2", "1.3", "1.4", "2.0"]
    assert all(not chosen for _, chosen, _, _ in listed[1:])


def test_migrate_receives_the_old_instance_and_config_carries_over(
    plugin_wheels: SignedWheels, plugin_dir: Path, tmp_path: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-tok-1.1")
    with PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], versions={"tok": "==1.0"}, config=tmp_path / "cfg"
    ) as manager:
        manager.configure("tok", {"greeting": "hi", "limit": 3})
        manager.load("tok")
        manager.reload("tok", "1.1")
        manager.reload("tok", "1.0")
        instance = manager.get("tok").instance
        assert instance.state == ["1.0", "1.1"]
        assert instance.config == {"greeting": "hi", "limit": 3}
        assert manager.config("tok") == {"greeting": "hi", "limit": 3}


@pytest.mark.parametrize(
    ("to", "stage", "reason"),
    [
        ("1.2", "import", "RuntimeError: pd-tok is broken at import"),
        ("1.3", "setup", "plugin 'tok' raised in setup(): RuntimeError: pd-tok is broken in setup"),
        ("2.0", "dependencies", "plugin 'shout' needs 'tok' <2,>=1.0, but version 2.0"),
        ("1.4", "refused", "extension modules cannot be unloaded from a running process"),
    ],
)
def test_a_failed_reload_leaves_the_old_version_whole(
    manager: PluginManager,
    journal: list[tuple[str, ...]],
    events: tuple[EventBus, list[Any]],
    to: str,
    stage: str,
    reason: str,
) -> None:
    handles = {name: manager.get(name) for name in ("tok", "shout", "echo")}
    instances = {name: handle.instance for name, handle in handles.items()}
    modules = {n: m for n, m in sys.modules.items() if n.startswith("pd_tok")}
    target = get_registry(GROUP).target("tok")
    with pytest.raises(ReloadError) as exc:
        manager.reload("tok", to)
    error = exc.value
    assert (error.plugin, error.old_version, error.new_version, error.stage) == (
        "tok",
        "1.0",
        to,
        stage,
    )
    assert reason in error.reason
    assert "Version 1.0 is still active" in str(error)
    # Everything is as it was: instances, modules, the registry, the calls.
    assert {n: h.instance for n, h in handles.items()} == instances
    assert {n: m for n, m in sys.modules.items() if n.startswith("pd_tok")} == modules
    assert get_registry(GROUP).target("tok") is target
    assert handles["shout"].execute("x") == {"shout": "1.0", "tok": ["1.0"] * 10, "words": ["x"]}
    assert manager.states() == {"echo": "active", "shout": "active", "tok": "active"}
    # Nothing of the old version was torn down; what was set up of the new one was.
    assert not [e for e in journal if e[0] == "teardown" and e[2] == "1.0" and e[1] == "tok"]
    assert [e[1:] for e in journal if e[0] == "setup"] == [
        e[1:] for e in journal if e[0] == "teardown"
    ][::-1]
    (failed,) = events[1]
    assert isinstance(failed, ReloadFailed)
    assert (failed.plugin, failed.old_version, failed.new_version, failed.stage) == (
        "tok",
        "1.0",
        to,
        stage,
    )
    assert reason in failed.reason
    if stage == "import":
        assert isinstance(failed.error, PluginLoadError)
    if stage == "dependencies":
        assert isinstance(failed.error, DependencyVersionError)
        assert error.__cause__ is failed.error
    # And a good reload still works afterwards.
    manager.reload("tok", "1.1")
    assert tok_version(manager) == "1.1"


def test_the_versions_of_a_reload_come_from_the_directories_or_a_file(
    manager: PluginManager, plugin_wheels: SignedWheels, plugin_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(VersionNotFoundError) as exc:
        manager.reload("tok", "9.9")
    assert exc.value.found == ("2.0", "1.4", "1.3", "1.2", "1.1", "1.0")
    elsewhere = tmp_path / "elsewhere"
    (wheel,) = plugin_wheels.copy(elsewhere, "pd-tok-1.1")
    event = manager.reload("tok", wheel)
    assert event is not None
    assert event.new_version == "1.1"
    (chosen,) = [c for c in manager.candidates() if c.name == "tok" and c.chosen]
    assert (chosen.location, chosen.state) == (str(wheel), "active")
    assert manager.reload("tok", wheel) is None  # it runs that file already
    assert manager.reload("tok", "1.1") is not None  # the directory's copy of 1.1


def test_what_to_names_must_be_a_version_or_a_plugin_file_that_provides_the_plugin(
    manager: PluginManager, plugin_wheels: SignedWheels, plugin_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidPluginError) as invalid:
        manager.reload("tok", "the newest")
    assert invalid.value.reason == "to= is a version, a wheel or a .py file, or None"
    (shout,) = plugin_wheels.copy(tmp_path / "elsewhere", "pd-shout-1.0")
    with pytest.raises(VersionNotFoundError) as other:
        manager.reload("tok", shout)  # a good wheel, of another plugin
    assert other.value.wanted == str(shout)
    broken = tmp_path / "elsewhere" / "pd_tok-9.0-py3-none-any.whl"
    broken.write_bytes(b"no zip file")
    with pytest.raises(ReloadError) as unreadable:
        manager.reload("tok", broken)
    assert (unreadable.value.old_version, unreadable.value.stage) == ("1.0", "install")
    assert tok_version(manager) == "1.0"


def test_reload_without_a_version_needs_a_version_still_there(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    (wheel,) = plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        manager.load("tok")
        wheel.unlink()
        with pytest.raises(VersionNotFoundError) as exc:
            manager.reload("tok")
        assert (exc.value.wanted, exc.value.found) == ("any version", ())
        assert tok_version(manager) == "1.0"  # the running version goes on


def test_reload_without_a_version_takes_the_one_the_manager_would_choose(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-shout-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        manager.load_all()
        assert manager.reload("tok") is None
        plugin_wheels.copy(plugin_dir, "pd-tok-1.1", "pd-tok-2.0")
        event = manager.reload("tok")
        assert event is not None
        # 2.0 is newer, but outside shout's range: 1.1 is the newest allowed.
        assert (event.old_version, event.new_version) == ("1.0", "1.1")
        assert manager.reload("tok") is None


def test_only_an_active_plugin_of_a_distribution_is_reloaded(
    plugin_wheels: SignedWheels, plugin_dir: Path, registry: Registry
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    with (
        PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager,
        pytest.raises(PluginNotActiveError),
    ):
        manager.reload("tok")

    @registry.register
    def inline(data: object) -> object:
        return data

    with PluginManager(registry) as manager:
        manager.load("inline")
        with pytest.raises(ReloadError) as exc:
            manager.reload("inline")
        assert exc.value.stage == "refused"
        assert "registered in code" in exc.value.reason


def test_the_plugins_of_one_distribution_move_together(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-pair-1.0", "pd-pair-1.1")
    with PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], versions={"left": "==1.0"}
    ) as manager:
        manager.load("left")
        manager.reload("left", "1.1")
        assert manager.execute("left") == ("left", "1.1")
        # right was not active: its first load takes the version its sibling runs.
        assert manager.execute("right") == ("right", "1.1")
        manager.reload("right", "1.0")
        assert (manager.execute("left"), manager.execute("right")) == (
            ("left", "1.0"),
            ("right", "1.0"),
        )


def test_metrics_go_on_across_a_reload_and_say_which_version_answered(
    manager: PluginManager,
) -> None:
    for _ in range(3):
        manager.execute("tok", "a")
    manager.reload("tok", "1.1")
    for _ in range(2):
        manager.execute("tok", "a")
    snapshot = manager.metrics("tok")
    assert snapshot.calls == 5
    assert dict(snapshot.versions) == {"1.0": 3, "1.1": 2}


def test_a_reload_waits_for_a_call_in_flight_on_the_old_version(
    manager: PluginManager, journal: list[tuple[str, ...]]
) -> None:
    inside, release = threading.Event(), threading.Event()

    class Blocking:
        def inside(self) -> None:
            inside.set()
            release.wait(10)

    results: list[Any] = []
    caller = threading.Thread(target=lambda: results.append(manager.execute("shout", Blocking())))
    caller.start()
    assert inside.wait(10)
    done = threading.Event()

    def reload() -> None:
        manager.reload("tok", "1.1")
        done.set()

    reloader = threading.Thread(target=reload)
    reloader.start()
    # The new version serves new calls while the old one finishes the blocked call.
    while "1.1" not in {e[2] for e in journal if e[:2] == ("setup", "shout")}:
        threading.Event().wait(0.005)
    assert manager.execute("echo", "new")["tok"] == ["1.1"] * 10
    assert not done.wait(0.2)
    assert ("teardown", "tok", "1.0") not in journal
    release.set()
    caller.join(10)
    reloader.join(10)
    assert done.is_set()
    assert results[0]["tok"] == ["1.0"] * 10
    assert journal[-1] == ("teardown", "tok", "1.0")


def test_calls_still_running_after_the_drain_timeout_undo_the_reload(
    plugin_wheels: SignedWheels, plugin_dir: Path, journal: list[tuple[str, ...]]
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-tok-1.1")
    inside, release = threading.Event(), threading.Event()

    class Blocking:
        def inside(self) -> None:
            inside.set()
            release.wait(10)

    with PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], versions={"tok": "==1.0"}, drain_timeout=0.1
    ) as manager:
        handle = manager.get("tok")
        old = handle.instance
        results: list[Any] = []
        caller = threading.Thread(target=lambda: results.append(handle.execute(Blocking())))
        caller.start()
        assert inside.wait(10)
        with pytest.raises(ReloadError) as exc:
            manager.reload("tok", "1.1")
        assert exc.value.stage == "drain"
        assert "still has 1 call running after 0.1 s" in exc.value.reason
        assert handle.instance is old
        assert tok_version(manager) == "1.0"
        release.set()
        caller.join(10)
    assert results[0]["tok"] == ["1.0"] * 10
    assert ("setup", "tok", "1.1") in journal
    assert journal.index(("teardown", "tok", "1.1")) < journal.index(("teardown", "tok", "1.0"))


def test_a_single_file_plugin_reloads_when_it_is_edited(plugin_dir: Path) -> None:
    path = plugin_dir / "yell.py"
    source = (
        '__version__ = "{v}"\n\n'
        "class Yell:\n"
        "    def execute(self, data=None):\n"
        '        return "{s}"\n\n'
        "plugin = Yell\n"
    )
    path.write_text(source.format(v="1.0", s="one"), encoding="utf-8")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        handle = manager.get("yell")
        assert handle.execute() == "one"
        path.write_text(source.format(v="1.1", s="two"), encoding="utf-8")
        event = manager.reload("yell")
        assert event is not None
        assert (event.old_version, event.new_version) == ("1.0", "1.1")
        assert handle.execute() == "two"
        path.write_text(source.format(v="1.1", s="three"), encoding="utf-8")
        assert manager.reload("yell") is not None  # same version, other content
        assert handle.execute() == "three"
        assert manager.reload("yell") is None


def test_areload_runs_the_reload_off_the_event_loop(manager: PluginManager) -> None:
    async def go() -> str:
        event = await manager.areload("tok", "1.1")
        assert event is not None
        result = await manager.aexecute("shout", "a")
        return str(result["tok"][0])

    assert asyncio.run(go()) == "1.1"


def test_plugyard_reload_loads_then_reloads_in_one_process(
    plugin_wheels: SignedWheels, plugin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-tok-1.1")
    broken = str(plugin_wheels.wheels["pd-tok-1.3"])
    args = [*("--group", GROUP, "--plugin-dir", str(plugin_dir)), "--keyring"]
    args.append(str(plugin_wheels.keyring))
    assert main(["reload", "tok", "--to", "1.0", *args]) == 0
    assert capsys.readouterr().out == "reloaded tok 1.1 -> 1.0\n"
    assert main(["reload", "tok", "--to", broken, *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "plugyard: tok: ReloadError: reloading plugin 'tok' 1.1 to 1.3 failed (setup)"
    )
    assert main(["reload", "tok", *args]) == 0
    assert capsys.readouterr().out == "tok 1.1 is active already\n"


def test_a_reload_under_a_requiring_policy_refuses_an_unsigned_version(
    manager: PluginManager, plugin_wheels: SignedWheels, tmp_path: Path
) -> None:
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    wheel = unsigned / plugin_wheels.unsigned["pd-tok-1.1"].name
    wheel.write_bytes(plugin_wheels.unsigned["pd-tok-1.1"].read_bytes())
    with pytest.raises(ReloadError) as exc:
        manager.reload("tok", wheel)
    assert exc.value.stage == "install"
    assert "not signed" in exc.value.reason
    assert tok_version(manager) == "1.0"
