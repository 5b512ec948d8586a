"""plugyard.stevedore: stevedore's managers, verified before import, ordered, without conflicts.

Distributions are written or installed in this process (``make_distribution``,
or a signed wheel installed with ``installer``); ``test_stevedore_suite.py``
runs stevedore's own tests against these managers in a real venv.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import plugyard.stevedore as sd
from plugyard import PluginManager, TrustPolicy, _discovery, _policy
from plugyard.exceptions import (
    DependencyCycleError,
    MissingDependencyError,
    PluginConflictError,
    PluginError,
    SignatureError,
)
from plugyard.testing import MakeDistribution, write_distribution
from plugyard.trust import ProblemKind, sign_wheel
from trust_helpers import dist_info_of, install_wheel, keyring_of, write_wheel

KEY = Ed25519PrivateKey.generate()
RING = keyring_of(KEY)
REQUIRE = TrustPolicy(mode="require", keyring=RING)
WARN = TrustPolicy(mode="warn", keyring=RING)
OFF = TrustPolicy()
_numbers = itertools.count()


@pytest.fixture(name="group")
def fixture_group() -> str:
    return f"tests.sd{next(_numbers)}"


def plugin_module(
    group: str, name: str, depends_on: list[str] | None = None, *, register: bool = True
) -> str:
    """A module whose ``Plugin`` class declares its dependencies with plugyard, or is plain."""
    decorator = f"@plugyard.register(group={group!r}, name={name!r}, depends_on={depends_on!r})\n"
    return (
        "import plugyard\n" + (decorator if register else "") + "class Plugin:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        self.args, self.kwargs = args, kwargs\n"
        f"    def hello(self):\n        return {name!r}\n"
    )


@pytest.fixture(name="clean_importer")
def fixture_clean_importer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh process-wide verified importer for the test, removed after it."""
    monkeypatch.setattr(_policy, "_importer", None)
    before = set(sys.modules)
    yield
    importer = _policy._importer
    if importer is not None:
        importer.uninstall()
    for name in set(sys.modules) - before:
        if name.startswith("sdpkg"):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture(name="install_signed")
def fixture_install_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_importer: None
) -> Callable[..., str]:
    """Install a signed wheel with one plugin module; return the module's name."""

    def install(group: str, name: str, *, signed: bool = True) -> str:
        n = next(_numbers)
        package, dist = f"sdpkg{n}", f"sd-dist{n}"
        info = dist_info_of(dist, "1.0")
        files = {
            f"{package}/__init__.py": plugin_module(group, name),
            f"{info}/entry_points.txt": f"[{group}]\n{name} = {package}:Plugin\n",
        }
        wheel = write_wheel(tmp_path / f"w{n}", files, name=dist)
        if signed:
            wheel = sign_wheel(wheel, KEY)
        site = install_wheel(wheel, tmp_path / f"i{n}")
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        return package

    return install


def plugin(
    make_distribution: MakeDistribution,
    group: str,
    name: str,
    *,
    dist: str | None = None,
    depends_on: list[str] | None = None,
    value: str | None = None,
    register: bool = True,
) -> str:
    """An installed (unsigned) distribution providing plugin ``name``; returns its module."""
    module = f"sdmod_{group.replace('.', '_')}_{name}_{next(_numbers)}"
    make_distribution(
        dist or f"tests-{module}",
        "1.0",
        entry_points={group: {name: value or f"{module}:Plugin"}},
        files={f"{module}.py": plugin_module(group, name, depends_on, register=register)},
    )
    return module


def failures() -> tuple[list[tuple[str, BaseException]], Callable[..., None]]:
    seen: list[tuple[str, BaseException]] = []

    def on_failure(manager: object, ep: Any, error: BaseException) -> None:
        seen.append((ep.name, error))

    return seen, on_failure


# -- listing -------------------------------------------------------------------------


def test_entry_points_keep_their_distribution(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "one", dist="tests-sd-one")
    manager = sd.ExtensionManager(group, trust=OFF)
    (ep,) = manager.list_entry_points()
    assert isinstance(ep, sd.VerifiedEntryPoint)
    assert ep.dist is not None
    assert (ep.dist.name, ep.dist.version) == ("tests-sd-one", "1.0")
    assert ep.index_entry is not None
    assert ep.index_entry.distribution == "tests-sd-one"
    assert manager.names() == ["one"]
    assert manager["one"].obj is None
    assert manager.entry_points_names() == ["one"]


def test_stevedores_cache_is_not_used_and_a_new_install_is_seen(
    make_distribution: MakeDistribution, group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stevedore._cache

    def refuse(*args: object) -> None:
        raise AssertionError("stevedore's cache was read")

    monkeypatch.setattr(stevedore._cache, "get_group_all", refuse)
    plugin(make_distribution, group, "early")
    assert sd.ExtensionManager(group, trust=OFF).names() == ["early"]
    plugin(make_distribution, group, "late")
    assert sorted(sd.ExtensionManager(group, trust=OFF).names()) == ["early", "late"]


def test_a_manager_needs_a_trust_policy(group: str) -> None:
    with pytest.raises(TypeError, match=r"needs trust=TrustPolicy"):
        sd.ExtensionManager(group)


def test_stevedores_arguments_and_behaviour_are_kept(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "a")
    plugin(make_distribution, group, "b")
    manager = sd.ExtensionManager(
        group, trust=OFF, invoke_on_load=True, invoke_args=(1,), invoke_kwds={"k": 2}
    )
    assert sorted(manager.map(lambda ext: ext.obj.hello())) == ["a", "b"]  # type: ignore[union-attr]
    assert sorted(manager.map_method("hello")) == ["a", "b"]
    instance: Any = manager["a"].obj
    assert instance.args == (1,)
    assert instance.kwargs == {"k": 2}
    assert sorted(e.name for e in manager) == ["a", "b"]
    assert "a" in manager

    def boom(ext: Any) -> None:
        raise RuntimeError(ext.name)

    with pytest.raises(RuntimeError):
        sd.ExtensionManager(group, trust=OFF, propagate_map_exceptions=True).map(boom)
    assert sd.ExtensionManager(group, trust=OFF).map(boom) == []


def test_make_test_instance_still_works() -> None:
    ext = sd.ExtensionManager.make_test_instance([])
    assert ext.names() == []
    assert ext.list_entry_points() == []
    driver = sd.DriverManager.make_test_instance(_fake_extension())
    assert driver.driver is _Fake
    assert driver.trust is None


class _Fake:
    pass


def _fake_extension() -> Any:
    import importlib.metadata

    import stevedore.extension

    ep = importlib.metadata.EntryPoint("fake", "x:y", "g")
    return stevedore.extension.Extension("fake", ep, _Fake, None)


def test_a_plain_entry_point_is_not_admitted() -> None:
    ep = sd.VerifiedEntryPoint("x", "os:getcwd", "g")
    with pytest.raises(PluginError, match=r"not listed by a plugyard\.stevedore manager"):
        ep.load()


# -- conflicts -----------------------------------------------------------------------


def test_a_name_two_distributions_provide_is_refused_before_import(
    make_distribution: MakeDistribution, group: str
) -> None:
    first = plugin(make_distribution, group, "dup", dist="tests-sd-first")
    second = plugin(make_distribution, group, "dup", dist="tests-sd-second")
    plugin(make_distribution, group, "fine")
    seen, on_failure = failures()
    manager = sd.ExtensionManager(group, trust=OFF, on_load_failure_callback=on_failure)
    assert manager.names() == ["fine"]
    assert [name for name, _ in seen] == ["dup", "dup"]
    error = seen[0][1]
    assert isinstance(error, PluginConflictError)
    assert error.providers == ("tests-sd-first 1.0", "tests-sd-second 1.0")
    assert first not in sys.modules
    assert second not in sys.modules
    with pytest.raises(PluginConflictError, match=r"tests-sd-first 1\.0 and tests-sd-second 1\.0"):
        sd.DriverManager(group, "dup", trust=OFF)


def test_identical_entry_points_of_two_distributions_are_a_conflict(
    make_distribution: MakeDistribution, group: str
) -> None:
    module = plugin(make_distribution, group, "same", dist="tests-sd-same-a")
    make_distribution("tests-sd-same-b", "1.0", entry_points={group: {"same": f"{module}:Plugin"}})
    with pytest.raises(PluginConflictError):
        sd.DriverManager(group, "same", trust=OFF)


def test_a_hook_is_many_providers_of_one_name(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "hook", dist="tests-sd-hook-a", register=False)
    plugin(make_distribution, group, "hook", dist="tests-sd-hook-b", register=False)
    manager = sd.HookManager(group, "hook", trust=OFF)
    assert len(manager["hook"]) == 2


# -- verification --------------------------------------------------------------------


def test_a_signed_plugin_loads_from_verified_bytes(
    install_signed: Callable[..., str], group: str
) -> None:
    package = install_signed(group, "good")
    manager = sd.DriverManager(group, "good", trust=REQUIRE, invoke_on_load=True)
    driver: Any = manager.driver
    assert driver.hello() == "good"
    loader = sys.modules[package].__spec__.loader  # type: ignore[union-attr]
    assert type(loader).__name__ == "_VerifiedLoader"


def test_a_refusal_is_an_ordinary_load_failure(
    install_signed: Callable[..., str], group: str, caplog: pytest.LogCaptureFixture
) -> None:
    install_signed(group, "good")
    bad = install_signed(group, "bad", signed=False)
    seen, on_failure = failures()
    manager = sd.ExtensionManager(group, trust=REQUIRE, on_load_failure_callback=on_failure)
    assert manager.names() == ["good"]
    ((name, error),) = seen
    assert name == "bad"
    assert isinstance(error, SignatureError)
    assert [p.kind for p in error.problems] == [ProblemKind.MISSING_SIGNATURE]
    assert bad not in sys.modules
    with caplog.at_level(logging.ERROR, logger="stevedore"):
        assert sd.ExtensionManager(group, trust=REQUIRE).names() == ["good"]
    assert "failed verification" in caplog.text


def test_a_driver_manager_raises_the_refusal_naming_distribution_and_problems(
    install_signed: Callable[..., str], group: str
) -> None:
    install_signed(group, "bad", signed=False)
    with pytest.raises(SignatureError) as exc:
        sd.DriverManager(group, "bad", trust=REQUIRE)
    assert exc.value.distribution.startswith("sd-dist")
    assert exc.value.plugin == "bad"
    assert "missing-signature" in str(exc.value) or "plugyard-signature.json" in str(exc.value)


def test_a_named_manager_verifies_only_the_names_it_loads(
    install_signed: Callable[..., str], group: str, caplog: pytest.LogCaptureFixture
) -> None:
    install_signed(group, "wanted")
    other = install_signed(group, "other", signed=False)
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        manager = sd.NamedExtensionManager(group, ["wanted"], trust=WARN)
    assert manager.names() == ["wanted"]
    assert "other" not in caplog.text
    assert other not in sys.modules
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        sd.NamedExtensionManager(group, ["other"], trust=WARN)
    assert "'other' imported unverified" in caplog.text


def test_a_refused_name_counts_as_missing(install_signed: Callable[..., str], group: str) -> None:
    install_signed(group, "bad", signed=False)
    missing: list[set[str]] = []
    manager = sd.NamedExtensionManager(
        group,
        ["bad", "absent"],
        trust=REQUIRE,
        on_missing_entrypoints_callback=lambda names: missing.append(set(names)),
    )
    assert manager.names() == []
    assert missing == [{"bad", "absent"}]


def test_a_distribution_that_cannot_be_verified_is_refused_under_require(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "legacy"
    (site / "legacy.egg-info").mkdir(parents=True)
    (site / "legacy.egg-info" / "PKG-INFO").write_text("Name: legacy\nVersion: 0.1\n\n")
    (site / "legacy.egg-info" / "entry_points.txt").write_text(f"[{group}]\nold = os:getcwd\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    with pytest.raises(SignatureError, match=r"an \.egg-info directory .* cannot be verified"):
        sd.DriverManager(group, "old", trust=REQUIRE)
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        assert sd.DriverManager(group, "old", trust=WARN).driver is not None
    assert "imported unverified" in caplog.text
    assert sd.DriverManager(group, "old", trust=OFF).driver is not None


# -- order ---------------------------------------------------------------------------


def test_extensions_are_ordered_by_their_dependencies(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "app", depends_on=["db", "cache"])
    plugin(make_distribution, group, "cache", depends_on=["db"])
    plugin(make_distribution, group, "db")
    plugin(make_distribution, group, "loner")
    listed = [ep.name for ep in sd.ExtensionManager(group, trust=OFF).list_entry_points()]
    order = sd.ExtensionManager(group, trust=OFF).names()
    assert order.index("db") < order.index("cache") < order.index("app")
    independent = [n for n in listed if n in ("loner", "db")]
    assert [n for n in order if n in ("loner", "db")] == independent  # stevedore's order kept
    named = sd.NamedExtensionManager(group, ["app", "cache", "db"], name_order=True, trust=OFF)
    assert named.names() == ["db", "cache", "app"]


def test_a_cycle_and_a_missing_dependency_fail_alone(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "ping", depends_on=["pong"])
    plugin(make_distribution, group, "pong", depends_on=["ping"])
    plugin(make_distribution, group, "needy", depends_on=["nowhere"])
    plugin(make_distribution, group, "fine")
    seen, on_failure = failures()
    manager = sd.ExtensionManager(group, trust=OFF, on_load_failure_callback=on_failure)
    assert manager.names() == ["fine"]
    errors = dict(seen)
    assert isinstance(errors["ping"], DependencyCycleError)
    assert isinstance(errors["pong"], DependencyCycleError)
    assert isinstance(errors["needy"], MissingDependencyError)
    with pytest.raises(KeyError):
        manager["ping"]
    with pytest.raises(MissingDependencyError):
        sd.DriverManager(group, "needy", trust=OFF)


def test_a_driver_whose_dependency_fails_raises_no_matches_if_the_callback_does_not(
    make_distribution: MakeDistribution, group: str
) -> None:
    import stevedore.exception

    plugin(make_distribution, group, "lonely", depends_on=["absent"])
    seen, on_failure = failures()
    with pytest.raises(stevedore.exception.NoMatches, match="'lonely' failed its dependencies"):
        sd.DriverManager(group, "lonely", trust=OFF, on_load_failure_callback=on_failure)
    ((name, error),) = seen
    assert name == "lonely"
    assert isinstance(error, MissingDependencyError)


def test_a_driver_may_depend_on_a_plugin_it_does_not_load(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "driver", depends_on=["helper"])
    helper = plugin(make_distribution, group, "helper")
    assert sd.DriverManager(group, "driver", trust=OFF).names() == ["driver"]
    assert helper not in sys.modules


def test_name_dispatch_sees_the_extensions_that_are_left(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "left", depends_on=["gone"])
    plugin(make_distribution, group, "right")
    manager = sd.NameDispatchExtensionManager(group, lambda ext: True, trust=OFF)
    assert sorted(manager.by_name) == ["right"]
    assert manager.map(["left", "right"], lambda ext: ext.name) == ["right"]


# -- sources and defaults ------------------------------------------------------------


def test_a_plugin_manager_as_the_source(
    make_distribution: MakeDistribution, group: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    module = f"sdmod_elsewhere_{next(_numbers)}"
    write_distribution(
        elsewhere,
        "tests-elsewhere",
        entry_points={group: {"far": f"{module}:Plugin"}},
        files={f"{module}.py": plugin_module(group, "far")},
    )
    plugin(make_distribution, group, "near")
    manager = PluginManager(group=group, path=[str(elsewhere)], trust=OFF)
    listed = sd.ExtensionManager(group, source=manager)
    assert [ep.name for ep in listed.list_entry_points()] == ["far"]
    assert listed.trust is OFF
    with pytest.raises(ValueError, match="group"):
        sd.ExtensionManager("another.group", source=manager)


def test_entry_points_listed_by_hand_as_the_source(
    make_distribution: MakeDistribution, group: str
) -> None:
    plugin(make_distribution, group, "kept")
    plugin(make_distribution, group, "dropped")
    chosen = [e for e in _discovery.entry_points(group) if e.name == "kept"]
    assert sd.ExtensionManager(group, trust=OFF, source=chosen).names() == ["kept"]


def test_bound_managers_use_their_defaults(make_distribution: MakeDistribution, group: str) -> None:
    plugin(make_distribution, group, "bound")
    managers = sd.bind(OFF)
    driver = managers.DriverManager(group, "bound", invoke_on_load=True)
    instance: Any = driver.driver
    assert instance.hello() == "bound"
    assert isinstance(driver, sd.DriverManager)
    assert driver.trust is OFF
    assert managers.HookManager.__name__ == "HookManager"


def test_import_plugyard_leaves_stevedore_out() -> None:
    import subprocess

    code = "import sys, plugyard\nprint('stevedore' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
