"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
import itertools
import os
import posix
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import coverage
import pytest
from packaging.utils import canonicalize_name

from plugin_projects import GROUP, SignedWheels, build_signed_wheels
from plugyard import EventBus, PluginCrashed, PluginManager, Registry, get_registry
from plugyard.runtime import _isolation, _process
from wheelhouse import (
    ROOT,
    MakeVenv,
    Venv,
    build_wheels,
    contrib_projects,
    create_venv,
    fill_wheelhouse,
    installed_requirements,
    wheel_requirements,
)

_groups = itertools.count()


@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the entry-point cache the tests write out of the user's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Install directory plugins under a data directory of the session's, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
    yield
    mp.undo()


#: Set by coverage's ``patch = ["subprocess"]`` in a measured process, read at
#: the start of its Python children: they measure themselves when they see it.
_COVERAGE_CONFIG = "COVERAGE_PROCESS_CONFIG"


@pytest.fixture(autouse=True, scope="session")
def _real_os_exit() -> Iterator[None]:
    """Give this process back the real ``os._exit`` that coverage's ``patch = ["_exit"]`` wraps.

    The patch is for the children, which save their data in it (the sandbox
    worker leaves by ``os._exit``). This process saves its data at exit, and
    its code would otherwise see a function of coverage's as ``os._exit``,
    which docs/sandbox.md registers as a plugin to run in a worker.
    """
    mp = pytest.MonkeyPatch()
    if os._exit is not posix._exit:
        mp.setattr(os, "_exit", posix._exit)
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _measured_sandbox_children() -> Iterator[None]:
    """Under coverage, let the sandbox's Python children measure themselves as well.

    The sandbox gives its children a scrubbed environment, without the
    variable that hands coverage on, and bubblewrap mounts the checkout, where
    the data files go, read-only. A child that can write there (one run as
    this user and not confined by Landlock) gets the variable back, and under
    bubblewrap the data directory alone is bound writable. Other children, and
    every child when the session is not measured, start exactly as the
    sandbox prepares them.
    """
    config = os.environ.get(_COVERAGE_CONFIG)
    current = coverage.Coverage.current() if config else None
    if config is None or current is None:
        yield
        return
    data_dir = str(Path(str(current.get_option("run:data_file"))).absolute().parent)
    prepare = _isolation.prepare  # what _process starts its children with

    def measured_prepare(*args: Any, **kwargs: Any) -> _isolation.Launch:
        launch = prepare(*args, **kwargs)
        if "landlock" in launch.applied or "user" in launch.applied:
            return launch
        argv: Sequence[str] = launch.argv
        if "bwrap" in launch.applied:
            end = argv.index("--")  # bwrap's options end here, the command follows
            argv = [*argv[:end], "--bind", data_dir, data_dir, *argv[end:]]
        env = {**launch.env, _COVERAGE_CONFIG: config}
        return attrs.evolve(launch, argv=tuple(argv), env=env)

    mp = pytest.MonkeyPatch()
    mp.setattr(_process, "prepare", measured_prepare)
    yield
    mp.undo()


@pytest.fixture(name="registry")
def fixture_registry() -> Registry:
    """A fresh registry with a group name no other test uses."""
    return Registry(f"tests.group{next(_groups)}")


@pytest.fixture(name="manager")
def fixture_manager(registry: Registry) -> Iterator[PluginManager]:
    """A manager over ``registry``, shut down after the test."""
    with PluginManager(registry) as manager:
        yield manager


# -- real wheels and virtual environments (tests using these are marked slow) --


@pytest.fixture(name="wheels", scope="session")
def fixture_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of plugyard and of every contrib plugin, built once, by canonical name."""
    projects = [ROOT, *contrib_projects()]
    return build_wheels(projects, tmp_path_factory.mktemp("wheels"))


@pytest.fixture(name="find_links", scope="session")
def fixture_find_links(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    wheels: dict[str, Path],
) -> tuple[Path, ...]:
    """The wheel directories venvs install from: plugyard's dependencies, then ``wheels``.

    The dependencies' wheels are kept in pytest's cache directory, so only
    the first session (or one after an upgrade) fetches them.
    """
    config = request.config
    if config.pluginmanager.has_plugin("cacheprovider"):
        house = config.cache.mkdir("plugyard-wheelhouse")
    else:
        house = tmp_path_factory.mktemp("wheelhouse")
    fill_wheelhouse(house, installed_requirements(wheel_requirements(wheels["plugyard"])))
    return (house, *sorted({wheel.parent for wheel in wheels.values()}))


@pytest.fixture(name="demo_venv", scope="session")
def fixture_demo_venv(
    tmp_path_factory: pytest.TempPathFactory,
    wheels: dict[str, Path],
    find_links: tuple[Path, ...],
) -> Venv:
    """One venv for the whole session with plugyard and every contrib plugin; do not change it."""
    return create_venv(tmp_path_factory.mktemp("demo_venv"), find_links, wheels.values())


@pytest.fixture(name="make_venv")
def fixture_make_venv(
    tmp_path: Path, wheels: dict[str, Path], find_links: tuple[Path, ...]
) -> MakeVenv:
    """Make fresh venvs with plugyard and what the test names installed (see ``MakeVenv``)."""
    numbers = itertools.count()

    def make_venv(*install: str | Path) -> Venv:
        chosen = [
            wheels.get(canonicalize_name(item), item) if isinstance(item, str) else item
            for item in install
        ]
        path = tmp_path / f"venv{next(numbers)}"
        return create_venv(path, find_links, [wheels["plugyard"], *chosen])

    return make_venv


# -- sandbox processes -----------------------------------------------------------


def _children() -> dict[int, int]:
    """The live processes whose parent is this one, with their process groups (no zombies)."""
    me = os.getpid()
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found[int(entry.name)] = int(fields[2])
    return found


@pytest.fixture(name="no_stray_processes")
def fixture_no_stray_processes() -> Iterator[None]:
    """Fail a test that leaves a child process behind, and kill what it left."""
    before = set(_children())
    yield
    deadline = time.monotonic() + 15  # a loaded machine reaps slowly
    while True:
        left = {pid: group for pid, group in _children().items() if pid not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for group in set(left.values()):
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    assert left == {}, f"child processes left behind: {sorted(left)}"


@pytest.fixture(name="crashes")
def fixture_crashes() -> Iterator[tuple[EventBus, list[PluginCrashed]]]:
    """A bus and the PluginCrashed events published on it."""
    bus = EventBus()
    seen: list[PluginCrashed] = []
    with bus.subscribe(PluginCrashed, seen.append):
        yield bus, seen


@pytest.fixture(name="plugin_wheels", scope="session")
def fixture_plugin_wheels(tmp_path_factory: pytest.TempPathFactory) -> SignedWheels:
    """The plugin-directory tests' wheels, built once and signed (see ``plugin_projects``)."""
    return build_signed_wheels(tmp_path_factory.mktemp("plugin-wheels"))


@pytest.fixture(name="plugin_dir")
def fixture_plugin_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty plugin directory; afterwards, what its plugins left in this process is gone.

    The test plugins register themselves in one process-wide group and import
    under fixed module names, as real plugins do; each test starts without them.
    """
    directory = tmp_path / "plugins"
    directory.mkdir()
    yield directory
    registry = get_registry(GROUP)
    for info in list(registry):
        registry.unregister(info.name)
    for name in [m for m in sys.modules if m.startswith(("pd_", "plugyard_file_"))]:
        del sys.modules[name]
