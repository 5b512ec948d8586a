"""Installed plugins found through entry points: listing, laziness, conflicts, rescan."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest

from plugyard import PluginManager, PluginState, register
from plugyard._discovery import entry_points
from plugyard._metafiles import parse
from plugyard.exceptions import (
    DependencyFailedError,
    PluginConflictError,
    PluginLoadError,
    PluginNotActiveError,
)
from plugyard.testing import MakeDistribution

GROUP = "tests.installed"

TOKENIZE = """
import plugyard

@plugyard.register(group="tests.installed", name="tok")
class Tokenize:
    def execute(self, text):
        return text.split()
"""

COUNT = """
import plugyard

@plugyard.register(group="tests.installed", name="count", depends_on={"tok": ">=1,<2"})
class Count:
    def setup(self, ctx):
        self.tok = ctx.dependency("tok")

    def execute(self, text):
        return len(self.tok.execute(text))
"""


@pytest.fixture(name="installed")
def fixture_installed(make_distribution: MakeDistribution) -> None:
    """Two installed distributions: tok 1.3 and count 2.0 which needs tok >=1,<2."""
    make_distribution(
        "tests-tok",
        "1.3",
        entry_points={GROUP: {"tok": "tests_tok:Tokenize"}},
        files={"tests_tok/__init__.py": TOKENIZE},
    )
    make_distribution(
        "tests-count",
        "2.0",
        entry_points={GROUP: {"count": "tests_count.impl:Count"}},
        files={"tests_count/__init__.py": "", "tests_count/impl.py": COUNT},
    )


@pytest.mark.usefixtures("installed")
def test_listing_imports_no_plugin_module() -> None:
    manager = PluginManager(group=GROUP)
    listed = {c.name: c for c in manager.candidates()}
    assert set(listed) == {"count", "tok"}
    assert listed["tok"].distribution == "tests-tok"
    assert listed["tok"].version == "1.3"
    assert listed["count"].value == "tests_count.impl:Count"
    assert listed["count"].kind == "entry point"
    assert manager.states() == {"count": PluginState.DISCOVERED, "tok": PluginState.DISCOVERED}
    assert not {"tests_tok", "tests_count", "tests_count.impl"} & set(sys.modules)


@pytest.mark.usefixtures("installed")
def test_first_call_imports_plugin_and_dependencies_only() -> None:
    manager = PluginManager(group=GROUP)
    assert manager.execute("tok", "a b") == ["a", "b"]
    assert "tests_tok" in sys.modules
    assert "tests_count.impl" not in sys.modules
    assert manager.execute("count", "a b c") == 3
    info = manager.info("count")
    assert (info.distribution, str(info.version)) == ("tests-count", "2.0")
    assert [str(d) for d in info.depends_on] == ["tok<2,>=1"]


def test_installed_and_registered_plugins_depend_on_each_other(
    make_distribution: MakeDistribution,
) -> None:
    group = "tests.mixed"

    @register(group=group, name="local", depends_on=["remote"])
    class Local:
        def setup(self, ctx: object) -> None:
            self.remote = ctx.dependency("remote")  # type: ignore[attr-defined]

        def execute(self, data: str) -> str:
            return f"local({self.remote.execute(data)})"

    make_distribution(
        "tests-remote",
        "1.0",
        entry_points={group: {"remote": "tests_remote:remote"}},
        files={"tests_remote.py": "def remote(data):\n    return f'remote({data})'\n"},
    )
    manager = PluginManager(group=group)
    assert manager.execute("local", "x") == "local(remote(x))"


def test_same_name_from_two_distributions_is_a_conflict(
    make_distribution: MakeDistribution,
) -> None:
    group = "tests.conflict"
    for dist in ("tests-one", "tests-two"):
        make_distribution(dist, "1.0", entry_points={group: {"dup": f"{dist[6:]}_mod:f"}})
    make_distribution(
        "tests-ok",
        "1.0",
        entry_points={group: {"ok": "ok_mod:f"}},
        files={"ok_mod.py": "def f(data):\n    return data\n"},
    )
    manager = PluginManager(group=group)
    with pytest.raises(PluginConflictError) as exc:
        manager.load("dup")
    assert exc.value.providers == ("tests-one 1.0", "tests-two 1.0")
    assert manager.execute("ok", 1) == 1
    assert manager.states()["dup"] is PluginState.FAILED


def test_entry_point_clashing_with_code_registration_is_a_conflict(
    make_distribution: MakeDistribution,
) -> None:
    group = "tests.clash"

    @register(group=group, name="same")
    def mine(data: object) -> object:
        return data

    make_distribution(
        "tests-theirs",
        "1.0",
        entry_points={group: {"same": "theirs_mod:f"}},
        files={"theirs_mod.py": "def f(data):\n    return data\n"},
    )
    manager = PluginManager(group=group)
    with pytest.raises(PluginConflictError) as exc:
        manager.load("same")
    assert exc.value.providers[0] == "tests-theirs 1.0"
    assert exc.value.providers[1].endswith("mine")


@pytest.mark.parametrize(
    ("value", "files", "reason"),
    [
        ("missing_mod:f", {}, "ModuleNotFoundError: No module named 'missing_mod'"),
        ("boom_mod:f", {"boom_mod.py": "import not_there_at_all\n"}, "No module named"),
        ("err_mod:f", {"err_mod.py": "raise RuntimeError('bad init')\n"}, "RuntimeError: bad init"),
        ("attr_mod:nope", {"attr_mod.py": "x = 1\n"}, "AttributeError"),
        ("kind_mod:x", {"kind_mod.py": "x = 1\n"}, "it names a int, not a class or function"),
    ],
)
def test_broken_entry_point_fails_that_plugin_only(
    make_distribution: MakeDistribution, value: str, files: dict[str, str], reason: str
) -> None:
    group = "tests.broken"
    make_distribution("tests-bad", "0.1", entry_points={group: {"bad": value}}, files=files)
    make_distribution(
        "tests-good",
        "1.0",
        entry_points={group: {"good": "good_mod:good", "needs": "good_mod:needs"}},
        files={
            "good_mod.py": (
                "import plugyard\n"
                "def good(data):\n    return data\n"
                "@plugyard.register(group='tests.broken', name='needs', depends_on=['bad'])\n"
                "def needs(data):\n    return data\n"
            )
        },
    )
    manager = PluginManager(group=group)
    states = manager.load_all()
    assert states["good"] is PluginState.ACTIVE
    error = manager.errors()["bad"]
    assert isinstance(error, PluginLoadError)
    assert error.entry_point == f"bad = {value}"
    assert error.distribution == "tests-bad 0.1"
    assert reason in error.reason
    assert isinstance(manager.errors()["needs"], DependencyFailedError)
    with pytest.raises(PluginNotActiveError):
        manager.execute("bad")


def test_module_entry_point_registers_its_plugins(make_distribution: MakeDistribution) -> None:
    group = "tests.module-ep"
    make_distribution(
        "tests-bundle",
        "4.2",
        entry_points={group: {"bundle": "bundle_mod"}},
        files={
            "bundle_mod/__init__.py": "from . import parts\n",
            "bundle_mod/parts.py": (
                "import plugyard\n"
                "@plugyard.register(group='tests.module-ep', name='one')\n"
                "def one(data):\n    return 1\n"
                "@plugyard.register(group='tests.module-ep', name='two', depends_on=['one'])\n"
                "def two(data):\n    return 2\n"
            ),
        },
    )
    manager = PluginManager(group=group)
    listed = {c.name: c.kind for c in manager.candidates()}
    assert listed == {"bundle": "module"}
    assert "bundle_mod" not in sys.modules
    assert manager.execute("two") == 2
    assert manager.info("one").distribution == "tests-bundle"
    assert str(manager.info("two").version) == "4.2"


def test_module_entry_point_that_fails_to_import_is_reported(
    make_distribution: MakeDistribution,
) -> None:
    group = "tests.module-ep-broken"
    make_distribution(
        "tests-badbundle",
        "1.0",
        entry_points={group: {"badbundle": "badbundle_mod"}},
        files={"badbundle_mod.py": "raise ImportError('cannot')\n"},
    )
    manager = PluginManager(group=group)
    assert manager.load_all() == {"badbundle": PluginState.FAILED}
    error = manager.errors()["badbundle"]
    assert isinstance(error, PluginLoadError)
    assert "ImportError: cannot" in error.reason


def test_declared_version_differing_from_distribution_fails(
    make_distribution: MakeDistribution,
) -> None:
    group = "tests.version-clash"
    make_distribution(
        "tests-vc",
        "2.0",
        entry_points={group: {"vc": "vc_mod:Vc"}},
        files={
            "vc_mod.py": (
                "import plugyard\n"
                "@plugyard.register(group='tests.version-clash', name='vc', version='1.0')\n"
                "class Vc:\n    pass\n"
            )
        },
    )
    manager = PluginManager(group=group)
    with pytest.raises(PluginLoadError, match=r"declares version 1\.0, but its distribution"):
        manager.load("vc")


def test_entry_point_named_differently_from_registration_fails(
    make_distribution: MakeDistribution,
) -> None:
    group = "tests.rename"
    make_distribution(
        "tests-rn",
        "1.0",
        entry_points={group: {"alias": "rn_mod:f"}},
        files={
            "rn_mod.py": (
                "import plugyard\n"
                "@plugyard.register(group='tests.rename', name='real')\n"
                "def f(data):\n    return data\n"
            )
        },
    )
    manager = PluginManager(group=group)
    with pytest.raises(PluginLoadError, match="registered as 'real'"):
        manager.load("alias")


def test_rescan_finds_distributions_installed_later(make_distribution: MakeDistribution) -> None:
    group = "tests.rescan"
    make_distribution(
        "tests-first",
        "1.0",
        entry_points={group: {"first": "first_mod:f"}},
        files={"first_mod.py": "def f(data):\n    return 'first'\n"},
    )
    manager = PluginManager(group=group)
    assert [c.name for c in manager.candidates()] == ["first"]
    assert manager.execute("first") == "first"
    make_distribution(
        "tests-second",
        "1.0",
        entry_points={group: {"second": "second_mod:f"}},
        files={"second_mod.py": "def f(data):\n    return 'second'\n"},
    )
    assert manager.rescan() == ["second"]
    assert manager.execute("second") == "second"
    assert manager.states()["first"] is PluginState.ACTIVE


@pytest.mark.parametrize("group", ["console_scripts", "pytest11"])
def test_listing_matches_importlib_metadata(group: str) -> None:
    ours = {(e.name, e.value, e.distribution) for e in entry_points(group)}
    theirs = {
        (e.name, e.value, e.dist.name if e.dist else None)
        for e in importlib.metadata.entry_points(group=group)
    }
    assert ours == theirs
    assert ours  # the test environment has both groups


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (
            "# comment\n[a.b]\nx = m:f [extra]\n\n[c]\ny=m\n",
            [("a.b", "x", "m:f [extra]"), ("c", "y", "m")],
        ),
        ("before = any section\n[g]\na = b = c\n", [("g", "a", "b = c")]),
        ("[ spaced ]\n; x = y\n", [(" spaced ", "; x", "y")]),
        ("[[g]]\n=v\nk=\n", [("g", "", "v"), ("g", "k", "")]),
    ],
)
def test_entry_points_txt_parser(text: str, parsed: list[tuple[str, str, str]]) -> None:
    """importlib.metadata's rules: no ';' comments, sections stripped of brackets only."""
    assert parse(text) == parsed


@pytest.mark.parametrize("text", ["[g]\nno equals sign\n", "[g]\n; a note\n", "[g]\n[g] # c\n"])
def test_entry_points_txt_parser_refuses_what_importlib_metadata_raises_on(text: str) -> None:
    with pytest.raises(ValueError, match="line 2 has no '='"):
        parse(text)
