"""The stevedore behaviours that made plugyard read entry points itself.

docs/architecture.md ("Why plugyard reads entry points itself") rests on
these; if stevedore changes, these tests say so and the page should be
revisited. Each test also shows plugyard's own index doing what is needed.
plugyard.stevedore feeds stevedore's managers from this index instead.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from plugyard import PluginManager
from plugyard._discovery import entry_points
from plugyard.exceptions import PluginConflictError
from plugyard.testing import MakeDistribution

stevedore_cache = pytest.importorskip("stevedore._cache")

GROUP = "tests.peers"


@pytest.fixture(name="cache")
def fixture_cache(tmp_path: Path) -> object:
    return stevedore_cache.Cache(str(tmp_path / "stevedore-cache"))


def test_stevedore_cache_loses_the_distribution(
    make_distribution: MakeDistribution, cache: object
) -> None:
    make_distribution("tests-peer-a", "1.0", entry_points={GROUP: {"a": "peer_a:f"}})
    (theirs,) = cache.get_group_all(GROUP)  # type: ignore[attr-defined]
    assert theirs.dist is None
    (ours,) = entry_points(GROUP)
    assert (ours.distribution, ours.version) == ("tests-peer-a", "1.0")


def test_stevedore_cache_merges_identical_entry_points_of_two_distributions(
    make_distribution: MakeDistribution, cache: object
) -> None:
    for dist in ("tests-peer-one", "tests-peer-two"):
        make_distribution(dist, "1.0", entry_points={GROUP: {"same": "peer_mod:f"}})
    assert len(cache.get_group_all(GROUP)) == 1  # type: ignore[attr-defined]
    assert len(entry_points(GROUP)) == 2
    with pytest.raises(PluginConflictError):
        PluginManager(group=GROUP).load("same")


def test_stevedore_cache_key_cannot_tell_mtimes_a_minute_apart() -> None:
    # A float32 near 1.8e9 steps by 128 s: these two round to the same value.
    start = round(time.time() / 128) * 128 - 30
    assert stevedore_cache._ftobytes(start) == stevedore_cache._ftobytes(start + 60)


def test_stevedore_cache_key_misses_a_same_version_reinstall_but_not_a_new_install(
    make_distribution: MakeDistribution,
) -> None:
    info = make_distribution("tests-peer-re", "1.0", entry_points={GROUP: {"old": "m:f"}})
    site = str(info.parent)
    start = round(time.time() / 128) * 128 - 30
    txt = info / "entry_points.txt"
    for path in (info.parent, txt):
        os.utime(path, (start, start))
    before = stevedore_cache._hash_settings_for_path((site,))[0]
    # The same version reinstalled a minute later: same paths, mtimes in the same float32 step.
    txt.write_text(f"[{GROUP}]\nnew = m:f\n")
    for path in (info.parent, txt):
        os.utime(path, (start + 60, start + 60))
    assert stevedore_cache._hash_settings_for_path((site,))[0] == before
    assert [ep.name for ep in entry_points(GROUP, [site])] == ["new"]
    # A new install adds an entry_points.txt path to the key.
    make_distribution("tests-peer-new", "1.0", entry_points={GROUP: {"other": "m:g"}})
    os.utime(info.parent, (start + 60, start + 60))
    assert stevedore_cache._hash_settings_for_path((site,))[0] != before


def test_stevedore_cache_does_not_see_a_later_install(
    make_distribution: MakeDistribution, cache: object
) -> None:
    make_distribution("tests-peer-early", "1.0", entry_points={GROUP: {"early": "m:f"}})
    assert len(cache.get_group_all(GROUP)) == 1  # type: ignore[attr-defined]
    make_distribution("tests-peer-late", "1.0", entry_points={GROUP: {"late": "m:g"}})
    assert len(cache.get_group_all(GROUP)) == 1  # type: ignore[attr-defined]
    assert sorted(ep.name for ep in entry_points(GROUP)) == ["early", "late"]
    assert sys.path[0].endswith("site-packages")
