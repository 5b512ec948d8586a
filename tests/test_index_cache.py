"""The entry-point index cache: used while nothing changed, never trusted blindly.

A cached answer must be the answer a fresh scan would give (installs,
uninstalls and in-place edits are seen), and the cache is used only when
every directory up to the cache root is this user's own, not writable by
others and no symbolic link; a malformed file is as good as none.
"""

from __future__ import annotations

import binascii
import logging
import marshal
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from plugyard import _discovery, _indexcache
from plugyard.testing import write_distribution

GROUP = "tests.index-cache"


@pytest.fixture(name="cache_home")
def fixture_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("PLUGYARD_NO_CACHE", raising=False)
    monkeypatch.setattr(_indexcache, "_reported", set())
    return home


@pytest.fixture(name="site")
def fixture_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    write_distribution(site, "tests-cached", "1.0", entry_points={GROUP: {"a": "mod_a:f"}})
    return site


def settle() -> None:
    """Wait until what was just written is older than the racy window, so it is cached."""
    time.sleep(_indexcache.RACY_NS / 1e9 + 0.02)


def names(site: Path, **kwargs: Any) -> list[str]:
    return [ep.name for ep in _discovery.entry_points(GROUP, [str(site)], **kwargs)]


def cache_files(home: Path) -> list[Path]:
    directory = home / "plugyard" / "entry-points"
    return sorted(directory.iterdir()) if directory.exists() else []


@pytest.fixture(name="scans")
def fixture_scans(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every path the index scans (a scan is what a cache hit avoids)."""
    seen: list[list[str]] = []
    real = _discovery.scan

    def counting(path: Any) -> Any:
        seen.append(list(path))
        return real(path)

    monkeypatch.setattr(_discovery, "scan", counting)
    return seen


def test_a_second_reading_comes_from_the_cache(
    cache_home: Path, site: Path, scans: list[list[str]]
) -> None:
    settle()
    assert names(site) == ["a"]
    assert names(site) == ["a"]
    assert len(scans) == 1
    (cache,) = cache_files(cache_home)
    assert cache.stat().st_mode & 0o777 == 0o600
    assert (cache_home / "plugyard").stat().st_mode & 0o777 == 0o700


def test_an_install_and_an_uninstall_are_seen(cache_home: Path, site: Path) -> None:
    settle()
    assert names(site) == ["a"]
    info = write_distribution(site, "tests-later", "1.0", entry_points={GROUP: {"b": "mod_b:f"}})
    assert sorted(names(site)) == ["a", "b"]
    for child in info.iterdir():
        child.unlink()
    info.rmdir()
    assert names(site) == ["a"]


def test_an_in_place_edit_of_entry_points_txt_is_seen(cache_home: Path, site: Path) -> None:
    settle()
    assert names(site) == ["a"]
    (txt,) = site.glob("*.dist-info/entry_points.txt")
    with txt.open("r+") as file:  # same size, same inode, same directory
        text = file.read()
        file.seek(0)
        file.write(text.replace("a = mod_a", "z = mod_z"))
    assert names(site) == ["z"]


def test_an_in_place_edit_of_metadata_is_seen(cache_home: Path, site: Path) -> None:
    settle()
    (ep,) = _discovery.entry_points(GROUP, [str(site)])
    assert ep.version == "1.0"
    (meta,) = site.glob("*.dist-info/METADATA")
    with meta.open("r+") as file:
        text = file.read()
        file.seek(0)
        file.write(text.replace("Version: 1.0", "Version: 2.0"))
    (ep,) = _discovery.entry_points(GROUP, [str(site)])
    assert ep.version == "2.0"


def test_entry_points_txt_added_to_an_installed_distribution_is_seen(
    cache_home: Path, tmp_path: Path
) -> None:
    site = tmp_path / "plain"
    info = write_distribution(site, "tests-plain", "1.0")
    settle()
    assert names(site) == []
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nnew = m:f\n")
    assert names(site) == ["new"]


def test_a_scan_of_files_changed_just_now_is_not_cached(
    cache_home: Path, site: Path, scans: list[list[str]]
) -> None:
    assert names(site) == ["a"]  # written a moment ago: racy
    assert names(site) == ["a"]
    assert len(scans) == 2
    assert cache_files(cache_home) == []


def test_the_current_directory_is_keyed_by_its_absolute_path(
    cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_distribution(one, "tests-one", "1.0", entry_points={GROUP: {"one": "m:f"}})
    write_distribution(two, "tests-two", "1.0", entry_points={GROUP: {"two": "m:f"}})
    past = time.time_ns() - 10**10
    for directory in (one, two):
        os.utime(directory, ns=(past, past))  # the same mtime, as the old key compared
    settle()
    for directory, expected in [(one, "one"), (two, "two"), (one, "one")]:
        monkeypatch.chdir(directory)
        assert [ep.name for ep in _discovery.entry_points(GROUP, [""])] == [expected]
    assert len(cache_files(cache_home)) == 2


def test_no_cache_when_asked(
    cache_home: Path, site: Path, scans: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settle()
    monkeypatch.setenv("PLUGYARD_NO_CACHE", "1")
    assert names(site) == names(site) == ["a"]
    assert names(site, use_cache=False) == ["a"]
    assert len(scans) == 3
    assert cache_files(cache_home) == []


# -- who may write the cache ---------------------------------------------------------


def _assert_refused(
    site: Path, scans: list[list[str]], caplog: pytest.LogCaptureFixture, reason: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        assert names(site) == names(site) == ["a"]
    assert len(scans) == 2  # no cache: every reading scans
    assert "entry-point index cache is not used" in caplog.text
    assert reason in caplog.text


@pytest.mark.parametrize("where", ["", "plugyard", "plugyard/entry-points"])
def test_a_directory_others_can_write_is_refused(
    cache_home: Path,
    site: Path,
    scans: list[list[str]],
    caplog: pytest.LogCaptureFixture,
    where: str,
) -> None:
    settle()
    directory = cache_home / where
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)
    _assert_refused(site, scans, caplog, "writable by other users")


@pytest.mark.parametrize("where", ["", "plugyard", "plugyard/entry-points"])
def test_a_symbolic_link_on_the_way_is_refused(
    cache_home: Path,
    site: Path,
    tmp_path: Path,
    scans: list[list[str]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    settle()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = cache_home / where if where else tmp_path / "linked-home"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere)
    if not where:
        monkeypatch.setenv("XDG_CACHE_HOME", str(link))
    _assert_refused(site, scans, caplog, "is a symbolic link")


def test_a_cache_file_others_can_write_is_refused(
    cache_home: Path, site: Path, scans: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    settle()
    names(site)
    (cache,) = cache_files(cache_home)
    cache.chmod(0o666)
    scans.clear()
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        assert names(site) == ["a"]
    assert len(scans) == 1
    assert "writable by other users" in caplog.text
    # The directory is private, so a fresh file of our own replaces it.
    assert cache.stat().st_mode & 0o777 == 0o600


def test_a_cache_file_that_is_a_symbolic_link_is_not_read(
    cache_home: Path, site: Path, tmp_path: Path, scans: list[list[str]]
) -> None:
    settle()
    names(site)
    (cache,) = cache_files(cache_home)
    planted = tmp_path / "planted"
    cache.rename(planted)
    cache.symlink_to(planted)
    scans.clear()
    assert names(site) == ["a"]
    assert len(scans) == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_a_cache_owned_by_another_user_is_refused(
    cache_home: Path, site: Path, scans: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    settle()
    names(site)
    (cache,) = cache_files(cache_home)
    os.chown(cache, 54321, 54321)
    scans.clear()
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        assert names(site) == ["a"]
    assert len(scans) == 1
    assert "owned by uid 54321" in caplog.text


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_a_cache_directory_owned_by_another_user_is_refused(
    cache_home: Path, site: Path, scans: list[list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    settle()
    (cache_home / "plugyard").mkdir(mode=0o700)
    os.chown(cache_home / "plugyard", 54321, 54321)
    _assert_refused(site, scans, caplog, "owned by uid 54321")


def test_a_refusal_is_logged_once(
    cache_home: Path, site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache_home.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        for _ in range(3):
            names(site)
    assert caplog.text.count("entry-point index cache is not used") == 1


# -- malformed files -----------------------------------------------------------------


def _cache_path(home: Path, site: Path) -> Path:
    directory = home / "plugyard" / "entry-points"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory / _indexcache._key([str(site)])  # site is absolute


def _framed(body: bytes) -> bytes:
    return _indexcache._MAGIC + binascii.crc32(body).to_bytes(_indexcache._CHECK, "big") + body


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=20,
)


SITE = "<the site>"  # replaced by the test's site directory


def _shaped(*parts: Any) -> Any:
    return tuple(parts)


# The shape written, (entries, present, stamps, absent, groups, keys, problems),
# with each part right or wrong.
shaped = st.builds(
    _shaped,
    st.one_of(values, st.just([SITE])),
    st.one_of(values, st.just([])),
    st.one_of(values, st.just([])),
    st.one_of(values, st.just([])),
    st.one_of(values, st.dictionaries(st.just(GROUP), values, max_size=1)),
    st.one_of(values, st.just([])),
    st.one_of(values, st.just([])),
)


def _placed(payload: Any, site: Path) -> Any:
    if type(payload) is tuple and payload and payload[0] == [SITE]:
        return ([str(site)], *payload[1:])
    return payload


@pytest.fixture(name="malformed")
def fixture_malformed(cache_home: Path, site: Path) -> Iterator[Path]:
    settle()
    path = _cache_path(cache_home, site)
    yield path
    path.unlink(missing_ok=True)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(st.binary(max_size=64), values.map(marshal.dumps)))
def test_a_malformed_cache_file_counts_as_absent(malformed: Path, site: Path, data: bytes) -> None:
    malformed.write_bytes(data)
    malformed.chmod(0o600)
    assert names(site) == ["a"]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.one_of(values, shaped))
def test_a_well_framed_cache_of_the_wrong_shape_counts_as_absent(
    malformed: Path, site: Path, payload: Any
) -> None:
    malformed.write_bytes(_framed(marshal.dumps(payload)))
    malformed.chmod(0o600)
    assert names(site) == ["a"]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0))
def test_a_truncated_or_corrupted_cache_counts_as_absent(
    malformed: Path, site: Path, cut: int, flip: int
) -> None:
    malformed.unlink(missing_ok=True)
    names(site)  # writes a good one
    good = malformed.read_bytes()
    bad = bytearray(good[: cut % len(good)] if cut % 2 else good)
    if bad and not cut % 2:
        bad[flip % len(bad)] ^= 0xFF
    malformed.write_bytes(bytes(bad))
    assert names(site) == ["a"]


def test_a_planted_answer_with_a_good_frame_but_a_stale_file_is_not_used(
    malformed: Path, site: Path
) -> None:
    (txt,) = site.glob("*.dist-info/entry_points.txt")
    row = ("planted", GROUP, "evil:f", "tests-cached", "1.0", str(txt.parent), "dist-info", "k")
    present = [str(site), str(txt)]
    stamps = [_indexcache.stamp(str(site)), (1, 1, 1, 1)]
    payload: Any = ([str(site)], present, stamps, [], {GROUP: [row]}, ["k"], [])
    malformed.write_bytes(_framed(marshal.dumps(payload)))
    malformed.chmod(0o600)
    assert names(site) == ["a"]
    # The same with the file's real status is taken as written: the frame is all it checks.
    stamps[1] = _indexcache.stamp(str(txt))
    malformed.write_bytes(_framed(marshal.dumps(payload)))
    assert names(site) == ["planted"]


def test_where_ownership_cannot_be_checked_there_is_no_cache_and_no_warning(
    cache_home: Path,
    site: Path,
    scans: list[list[str]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settle()
    monkeypatch.setattr(_indexcache, "_SUPPORTED", False)
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        assert names(site) == names(site) == ["a"]
    assert len(scans) == 2
    assert cache_files(cache_home) == []
    assert caplog.text == ""


def test_a_relative_xdg_cache_home_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _indexcache.cache_root() == str(tmp_path / ".cache")
