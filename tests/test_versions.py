"""Several versions of a plugin: the newest allowed wins; pins and depends_on ranges choose."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from plugin_projects import GROUP, SignedWheels
from plugyard import Candidate, CandidateKind, PluginInfo, PluginManager
from plugyard._versions import choose
from plugyard.cli import main
from plugyard.exceptions import DependencyVersionError, InvalidPluginError, VersionNotFoundError


def candidate(version: str, location: str | None = None) -> Candidate:
    return Candidate(
        name="p",
        group="g",
        version=version,
        distribution="p",
        value="p:P",
        kind=CandidateKind.ENTRY_POINT,
        info=PluginInfo("p", "g", Version(version)),
        location=location,
    )


@pytest.mark.parametrize(
    ("versions", "pin", "ranges", "chosen", "why"),
    [
        (["1.0", "2.0"], None, [], "2.0", "newest version"),
        (["2.0", "1.0"], "==1.0", [], "1.0", "newest allowed by the pin ==1.0"),
        (
            ["1.0", "1.1", "2.0"],
            None,
            [("shout", "<2")],
            "1.1",
            "newest allowed by the range of shout (<2)",
        ),
        (
            ["1.0", "1.1", "2.0"],
            ">=1.1",
            [("shout", "<2")],
            "1.1",
            "newest allowed by the pin >=1.1 and the range of shout (<2)",
        ),
        (["1.0", "2.0"], None, [("a", ">=1")], "2.0", "newest version"),
        (
            ["1.0", "2.0"],
            None,
            [("a", ">=3")],
            "2.0",
            "newest; no version is in the range of a (>=3)",
        ),
        (["1.0"], "==3", [], None, None),
    ],
)
def test_the_newest_allowed_version_is_chosen_and_said_why(
    versions: list[str],
    pin: str | None,
    ranges: list[tuple[str, str]],
    chosen: str | None,
    why: str | None,
) -> None:
    found = choose([candidate(v) for v in versions], pin, ranges)
    picked = [c for c in found if c.chosen]
    assert [c.version for c in picked] == ([chosen] if chosen else [])
    if why is not None:
        assert picked[0].why == why
    assert [c.version for c in found] == sorted(versions, key=Version, reverse=True)


def test_reasons_for_the_versions_not_chosen() -> None:
    found = choose(
        [candidate("1.0"), candidate("1.1", "a.whl"), candidate("1.1", "b.whl"), candidate("3.0")],
        "<3",
        [("shout", "!=1.0")],
    )
    assert [(c.version, c.location, c.chosen, c.why) for c in found] == [
        ("3.0", None, False, "excluded by the pin <3"),
        ("1.1", "a.whl", True, "newest allowed by the pin <3 and the range of shout (!=1.0)"),
        ("1.1", "b.whl", False, "a copy of 1.1; the first one found (a.whl) wins"),
        ("1.0", None, False, "outside the range of shout (!=1.0)"),
    ]


@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=6),
    st.sampled_from([None, ">=1", "<3", "==2.*", "!=1.1"]),
    st.lists(st.sampled_from(["<2", ">=1.2", "!=3.0", "~=1.0"]), max_size=2),
)
def test_the_choice_is_the_newest_in_every_range_when_there_is_one(
    pairs: list[tuple[int, int]], pin: str | None, specs: list[str]
) -> None:
    versions = [f"{a}.{b}" for a, b in pairs]
    found = choose(
        [candidate(v) for v in versions], pin, [(f"d{i}", s) for i, s in enumerate(specs)]
    )
    rules = [SpecifierSet(s) for s in [*([pin] if pin else []), *specs]]
    allowed = [Version(v) for v in versions if all(r.contains(v) for r in rules)]
    picked = [Version(c.version) for c in found if c.chosen]
    assert len(picked) <= 1
    if allowed:
        assert picked == [max(allowed)]
    elif pin is not None and not any(SpecifierSet(pin).contains(v) for v in versions):
        assert picked == []


def versions_of(manager: PluginManager, name: str) -> list[tuple[str, bool, str]]:
    return [(c.version, c.chosen, c.why) for c in manager.candidates() if c.name == name]


def test_two_wheels_in_a_directory_the_newest_loads(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-tok-1.1")
    with PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], trust=plugin_wheels.policy()
    ) as manager:
        assert versions_of(manager, "tok") == [
            ("1.1", True, "newest version"),
            ("1.0", False, "older than 1.1"),
        ]
        assert manager.execute("tok", "a")["tok"] == ["1.1"] * 10
        assert versions_of(manager, "tok") == [
            ("1.1", True, "newest version"),
            ("1.0", False, "older than 1.1"),
        ]
        assert manager.states() == {"tok": "active"}


def test_a_pin_chooses_and_one_nothing_matches_fails_the_plugin(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-tok-1.1")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir], versions={"tok": "==1.0"}) as manager:
        assert manager.execute("tok", "a")["tok"] == ["1.0"] * 10
        assert versions_of(manager, "tok") == [
            ("1.0", True, "newest allowed by the pin ==1.0"),
            ("1.1", False, "excluded by the pin ==1.0"),
        ]
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir], versions={"tok": ">=3"})
    assert manager.states() == {"tok": "failed"}
    with pytest.raises(VersionNotFoundError) as exc:
        manager.load("tok")
    assert (exc.value.plugin, exc.value.wanted, exc.value.found) == ("tok", ">=3", ("1.0", "1.1"))


def test_an_invalid_pin_is_refused_when_the_manager_is_made() -> None:
    with pytest.raises(InvalidPluginError) as exc:
        PluginManager(group=GROUP, versions={"tok": "about 1.0"})
    assert exc.value.plugin == "tok"


def test_the_ranges_of_the_plugins_being_loaded_steer_the_choice(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-tok-1.1", "pd-tok-2.0", "pd-shout-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        assert versions_of(manager, "tok")[0] == ("2.0", True, "newest version")
        result = manager.execute("shout", "hey")
        assert result == {"shout": "1.0", "tok": ["1.1"] * 10, "words": ["hey"]}
        assert versions_of(manager, "tok") == [
            ("1.1", True, "newest allowed by the range of shout (<2,>=1.0)"),
            ("2.0", False, "outside the range of shout (<2,>=1.0)"),
            ("1.0", False, "older than 1.1"),
        ]


def test_without_a_dependent_the_newest_loads_and_a_range_it_breaks_fails_the_dependent(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.1", "pd-tok-2.0", "pd-shout-1.0", "pd-echo-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        assert manager.execute("echo", "x")["tok"] == ["2.0"] * 10
        states = manager.load_all()
        assert states == {"echo": "active", "shout": "failed", "tok": "active"}
        error = manager.errors()["shout"]
        assert isinstance(error, DependencyVersionError)
        assert (error.dependency, error.found) == ("tok", "2.0")


def test_loading_both_dependents_together_chooses_a_version_both_accept(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.1", "pd-tok-2.0", "pd-shout-1.0", "pd-echo-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        assert manager.load_all() == {"echo": "active", "shout": "active", "tok": "active"}
        assert manager.info("tok").version == Version("1.1")


def test_plugyard_list_shows_every_version_and_which_is_chosen(
    plugin_wheels: SignedWheels, plugin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-tok-1.1", "pd-echo-1.0")
    assert main(["list", "--group", GROUP, "--plugin-dir", str(plugin_dir)]) == 0
    lines = [line.split(None, 4) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        ["NAME", "VERSION", "DISTRIBUTION", "STATE", "CHOSEN"],
        ["echo", "1.0", "pd-echo", "discovered"],
        ["tok", "1.1", "pd-tok", "discovered", "yes: newest version"],
        ["tok", "1.0", "pd-tok", "discovered", "no: older than 1.1"],
    ]
