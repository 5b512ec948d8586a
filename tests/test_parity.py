"""plugyard's index lists what importlib.metadata lists, layout by layout.

Each test lays distributions out on ``sys.path`` as a tool (or an accident)
would, and compares ``(name, value, distribution)``, in order, with
``importlib.metadata.entry_points(group=...)`` of this interpreter: read
without the cache, through the cache when it is written, and from it. The
slow tests in ``test_parity_installs.py`` do the same with real installs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from plugyard import PluginManager, PluginState, _discovery, _indexcache
from plugyard._discovery import read_index

GROUP = "tests.parity"
Listing = list[tuple[str, str, str | None]]


def ours(group: str = GROUP, **kwargs: Any) -> Listing:
    return [
        (e.name, e.value, e.distribution or None) for e in _discovery.entry_points(group, **kwargs)
    ]


def theirs(group: str = GROUP) -> Listing:
    importlib.invalidate_caches()
    return [
        (e.name, e.value, e.dist.metadata["Name"] if e.dist and "Name" in e.dist.metadata else None)
        for e in importlib.metadata.entry_points(group=group)
    ]


def assert_parity(group: str = GROUP) -> Listing:
    """Our listing equals importlib.metadata's, uncached, as cached and from the cache."""
    expected = theirs(group)
    assert ours(group, use_cache=False) == expected
    assert ours(group) == expected  # a scan, written to the cache
    assert ours(group) == expected  # read back
    return expected


@pytest.fixture(autouse=True)
def _cache_without_delay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cache what the tests just wrote (no racy-file delay), in a cache of the test's own."""
    monkeypatch.setattr(_indexcache, "RACY_NS", 0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PLUGYARD_NO_CACHE", raising=False)


@pytest.fixture(name="site")
def fixture_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory first on ``sys.path``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def write(directory: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``files`` (relative paths) under ``directory``; return it."""
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode())
    importlib.invalidate_caches()
    return directory


def metadata(name: str, version: str = "1.0", extra: str = "") -> str:
    return f"Metadata-Version: 2.1\nName: {name}\n{extra}Version: {version}\n\nA description.\n"


def eps(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def dist_info(directory: str, name: str, version: str = "1.0", *points: str) -> dict[str, str]:
    return {
        f"{directory}/METADATA": metadata(name, version),
        f"{directory}/entry_points.txt": eps(f"[{GROUP}]", *points),
    }


def test_an_ordinary_distribution(site: Path) -> None:
    write(site, dist_info("plain_dist-1.0.dist-info", "plain-dist", "1.0", "one = m:one"))
    assert assert_parity() == [("one", "m:one", "plain-dist")]


@pytest.mark.parametrize("suffix", [".DIST-INFO", ".Dist-Info", ".EGG-INFO"])
def test_metadata_directories_in_other_casings(site: Path, suffix: str) -> None:
    write(site, dist_info(f"Cased_Dist-2.0{suffix}", "Cased-Dist", "2.0", "cased = m:c"))
    write(site, dist_info("after-1.0.dist-info", "after", "1.0", "after = m:a"))
    assert ("cased", "m:c", "Cased-Dist") in assert_parity()


def test_two_versions_left_in_one_directory(site: Path) -> None:
    write(site, dist_info("twice-1.0.dist-info", "twice", "1.0", "old = m:old"))
    write(site, dist_info("twice-2.0.dist-info", "twice", "2.0", "new = m:new"))
    listed = assert_parity()
    assert len(listed) == 1  # whichever the directory lists first, as importlib.metadata


def test_a_first_copy_without_metadata_hides_a_valid_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    early, late = tmp_path / "early", tmp_path / "late"
    write(early, {"hidden-1.0.dist-info/entry_points.txt": eps(f"[{GROUP}]", "ghost = m:g")})
    write(late, dist_info("hidden-2.0.dist-info", "hidden", "2.0", "real = m:r"))
    monkeypatch.syspath_prepend(str(late))
    monkeypatch.syspath_prepend(str(early))
    assert assert_parity() == [("ghost", "m:g", None)]


def test_a_copy_without_metadata_in_the_same_directory(site: Path) -> None:
    write(site, {"same-1.0.dist-info/entry_points.txt": eps(f"[{GROUP}]", "ghost = m:g")})
    write(site, dist_info("same-2.0.dist-info", "same", "2.0", "real = m:r"))
    assert len(assert_parity()) == 1


def test_a_distribution_whose_metadata_names_none_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = write(
        tmp_path / "s", {"nameless-1.0.dist-info/entry_points.txt": eps(f"[{GROUP}]", "x = m:x")}
    )
    monkeypatch.syspath_prepend(str(site))
    manager = PluginManager(group=GROUP)
    assert manager.states() == {"x": PluginState.FAILED}
    assert "names no distribution" in str(manager.errors()["x"])


def test_name_and_version_after_long_headers(site: Path) -> None:
    long = "".join(f"Classifier: Topic :: Number {i} :: {'x' * 60}\n" for i in range(400))
    write(
        site,
        {
            "long_heads-3.1.dist-info/METADATA": f"Metadata-Version: 2.1\n{long}Name: long-heads\n"
            f"{long}Version: 3.1\n\nbody\n",
            "long_heads-3.1.dist-info/entry_points.txt": eps(f"[{GROUP}]", "lh = m:lh"),
        },
    )
    assert assert_parity() == [("lh", "m:lh", "long-heads")]


@pytest.mark.parametrize(
    "head",
    [
        "Metadata-Version: 2.1\nName: folded\n  continued\nVersion: 1\n\n",
        "Metadata-Version: 2.1\nNAME: upper\nversion:  1 \n\n",
        "Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 1\r\n\r\nbody\r\n",
        "Metadata-Version: 2.1\rName: cr\rVersion: 1\r\r",
        "Metadata-Version: 2.1\nName: first\nName: second\nVersion: 1\nVersion: 2\n\n",
        "Name: trailing   \nVersion:1.0\t\n",
        "Metadata-Version: 2.1\nbroken line\nName: after-junk\nVersion: 1\n\n",
        "From someone\nName: unix-from\nVersion: 1\n\n",
        " Name: leading-space\nName: real\nVersion: 1\n\n",
        "Metadata-Version: 2.1\n:no name\nName: x\nVersion: 1\n\n",
        "\nName: after-blank\nVersion: 1\n\n",
        "Metadata-Version: 2.1\nVersion: 1\n\n",
        "\ufeffMetadata-Version: 2.1\nName: bom\nVersion: 1\n\n",
        "Metadata-Version: 2.1\nName: tab\tin\nVersion: 1\n\n",
        "Metadata-Version: 2.1\nName: ünïcode\nVersion: 1\n\n",
        "",
    ],
)
def test_headers_as_the_email_parser_reads_them(site: Path, head: str) -> None:
    write(
        site,
        {
            "headers-1.dist-info/METADATA": head,
            "headers-1.dist-info/entry_points.txt": eps(f"[{GROUP}]", "h = m:h"),
        },
    )
    assert_parity()


def test_an_egg_info_directory_reads_pkg_info(site: Path) -> None:
    write(
        site,
        {
            "legacy-0.9-py3.11.egg-info/PKG-INFO": metadata("legacy", "0.9"),
            "legacy-0.9-py3.11.egg-info/entry_points.txt": eps(f"[{GROUP}]", "leg = m:leg"),
            "emptymeta-1.egg-info/METADATA": "",
            "emptymeta-1.egg-info/PKG-INFO": metadata("emptymeta", "1"),
            "emptymeta-1.egg-info/entry_points.txt": eps(f"[{GROUP}]", "em = m:em"),
        },
    )
    assert sorted(assert_parity()) == [("em", "m:em", "emptymeta"), ("leg", "m:leg", "legacy")]


ODD = [
    "# a comment",
    "names before any section = are ignored",
    f"[ {GROUP} ]",
    "spaced = in:a spaced section",
    f"[[{GROUP}]]",
    "  double = brackets:stripped  ",
    "a=b=c",
    "=no name",
    "no value=",
    "tab\t=\tm:t",
    "with extras = m:f [extra1, extra2]",
    "; note = a semicolon is not a comment",
    f"[{GROUP}] ",
    "last = m:last",
    "[]",
    "empty section = m:e",
]


def test_entry_point_lines_and_section_headers_with_odd_syntax(site: Path) -> None:
    write(
        site,
        {
            "odd-1.dist-info/METADATA": metadata("odd", "1"),
            "odd-1.dist-info/entry_points.txt": "\n".join(ODD) + "\n",
        },
    )
    for group in [GROUP, f" {GROUP} ", ""]:
        assert_parity(group)
    assert ("last", "m:last", "odd") in ours()


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff[tests.parity]\nbom = m:b\n",
        "[tests.parity]\r\ncrlf = m:c\r\n",
        "[tests.parity]\x0bvt = m:v\x0cff = m:f\u2028ls = m:l\n",
    ],
)
def test_entry_points_txt_as_str_splitlines_reads_it(site: Path, text: str) -> None:
    write(
        site,
        {
            "lines-1.dist-info/METADATA": metadata("lines"),
            "lines-1.dist-info/entry_points.txt": text,
        },
    )
    assert_parity()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (eps(f"[{GROUP}]", "broken line"), "line 2 has no '='"),
        (eps("[other]", "y = m:y", f"[{GROUP}] # a trailing comment", "x = m:x"), "line 3 has"),
        (b"[tests.parity]\nbad = m:\xff\n", "not UTF-8"),
    ],
)
def test_a_broken_entry_points_txt_is_left_out_and_reported(
    site: Path, content: str | bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        site,
        {
            "broken-1.dist-info/METADATA": metadata("broken"),
            "broken-1.dist-info/entry_points.txt": content,
        },
    )
    write(site, dist_info("fine-1.dist-info", "fine", "1", "fine = m:fine"))
    with pytest.raises((TypeError, ValueError)):
        theirs()  # importlib.metadata fails for every distribution
    assert ours(use_cache=False) == ours() == ours() == [("fine", "m:fine", "fine")]
    (problem,) = read_index().problems
    assert problem.distribution == "broken-1.dist-info"
    assert reason in problem.reason
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        PluginManager(group=GROUP).candidates()
    assert reason in caplog.text


def test_an_unzipped_egg_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    egg = write(
        tmp_path / "Eggy-1.2-py3.11.egg",
        {
            "EGG-INFO/PKG-INFO": metadata("Eggy", "1.2"),
            "EGG-INFO/entry_points.txt": eps(f"[{GROUP}]", "egg = eggy:f"),
            "eggy.py": "def f(): pass\n",
        },
    )
    monkeypatch.syspath_prepend(str(egg))
    assert assert_parity() == [("egg", "eggy:f", "Eggy")]
    (ep,) = _discovery.entry_points(GROUP)
    assert (ep.layout, ep.verifiable) == ("egg", False)


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    importlib.invalidate_caches()
    return path


def test_a_zipped_egg_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    egg = _zip(
        tmp_path / "Zeggy-0.3-py3.11.egg",
        {
            "EGG-INFO/PKG-INFO": metadata("Zeggy", "0.3"),
            "EGG-INFO/entry_points.txt": eps(f"[{GROUP}]", "zegg = zeggy:f"),
            "zeggy.py": "def f(): pass\n",
        },
    )
    monkeypatch.syspath_prepend(str(egg))
    assert assert_parity() == [("zegg", "zeggy:f", "Zeggy")]


def test_a_zip_holding_a_dist_info_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _zip(
        tmp_path / "app.pyz",
        {
            "zipped_dist-4.0.dist-info/METADATA": metadata("zipped-dist", "4.0"),
            "zipped_dist-4.0.dist-info/entry_points.txt": eps(f"[{GROUP}]", "zd = zd:f"),
            "zd.py": "def f():\n    return 'zipped'\n",
        },
    )
    monkeypatch.syspath_prepend(str(app))
    assert assert_parity() == [("zd", "zd:f", "zipped-dist")]
    (ep,) = _discovery.entry_points(GROUP)
    assert (ep.layout, ep.verifiable) == ("zip", False)
    dist = _discovery.distribution_of(ep)
    assert dist is not None
    assert dist.version == "4.0"
    # The cache sees the zip change.
    _zip(app, {"zipped_dist-5.0.dist-info/METADATA": metadata("zipped-dist", "5.0")})
    assert ours() == theirs() == []


class _Dist(importlib.metadata.Distribution):
    """A distribution that lives in memory, as a custom finder would serve it."""

    def __init__(self, files: dict[str, str]) -> None:
        self._files = files

    def read_text(self, filename: str) -> str | None:
        return self._files.get(str(filename))

    def locate_file(self, path: Any) -> Any:
        return Path("/nonexistent") / str(path)


class _Finder:
    """A ``sys.meta_path`` finder that finds no module but serves distributions."""

    def __init__(self, *dists: _Dist) -> None:
        self.dists = dists
        self.asked: list[object] = []

    def find_spec(self, *args: object) -> None:
        return None

    def find_distributions(self, context: Any = None) -> Iterator[_Dist]:
        self.asked.append(getattr(context, "path", None))
        return iter(self.dists)


def _finder_dist(name: str, version: str, *points: str) -> _Dist:
    return _Dist(
        {"METADATA": metadata(name, version), "entry_points.txt": eps(f"[{GROUP}]", *points)}
    )


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_meta_path_finder_with_find_distributions(
    site: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    write(site, dist_info("shadow-1.0.dist-info", "shadow", "1.0", "on_disk = m:disk"))
    finder = _Finder(
        _finder_dist("finder-only", "1.0", "served = m:served"),
        _finder_dist("shadow", "9.0", "in_memory = m:mem"),
    )
    position = 0 if where == "first" else len(sys.meta_path)
    monkeypatch.setattr(
        sys, "meta_path", [*sys.meta_path[:position], finder, *sys.meta_path[position:]]
    )
    listed = assert_parity()
    assert ("served", "m:served", "finder-only") in listed
    served = next(e for e in _discovery.entry_points(GROUP) if e.name == "served")
    assert (served.layout, served.verifiable) == ("finder", False)
    assert _discovery.distribution_of(served) is finder.dists[0]
    assert not Path(served.path).is_dir()


def test_a_finder_that_raises_fails_alone(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Raising(_Finder):
        def find_distributions(self, context: Any = None) -> Iterator[_Dist]:
            raise RuntimeError("finder broke")

    write(site, dist_info("steady-1.0.dist-info", "steady", "1.0", "steady = m:s"))
    monkeypatch.setattr(sys, "meta_path", [Raising(), *sys.meta_path])
    assert ours() == [("steady", "m:s", "steady")]
    assert any("finder broke" in p.reason for p in read_index().problems)


def test_the_current_directory_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = write(
        tmp_path / "cwd", dist_info("cwd_dist-1.0.dist-info", "cwd-dist", "1.0", "c = m:c")
    )
    monkeypatch.chdir(here)
    monkeypatch.syspath_prepend("")
    assert assert_parity() == [("c", "m:c", "cwd-dist")]
    (ep,) = _discovery.entry_points(GROUP)
    assert ep.path == str(here / "cwd_dist-1.0.dist-info")


def test_entries_that_are_missing_or_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain.txt").write_text("not a zip")
    for entry in [tmp_path / "missing", tmp_path / "plain.txt", tmp_path / "plain.txt" / "inside"]:
        monkeypatch.syspath_prepend(str(entry))
    assert_parity()


def test_a_symlinked_metadata_directory(site: Path, tmp_path: Path) -> None:
    target = write(
        tmp_path / "elsewhere", dist_info("linked-1.dist-info", "linked", "1", "l = m:l")
    )
    (site / "linked-1.dist-info").symlink_to(target / "linked-1.dist-info")
    (site / "dangling-1.dist-info").symlink_to(tmp_path / "nowhere")
    assert assert_parity() == [("l", "m:l", "linked")]


@pytest.mark.parametrize("group", ["console_scripts", "pytest11"])
def test_the_test_environment_itself(group: str) -> None:
    assert assert_parity(group)


def test_layouts_say_whether_they_can_be_verified(site: Path) -> None:
    write(site, dist_info("verifiable-1.dist-info", "verifiable", "1", "v = m:v"))
    write(
        site,
        {
            "unverifiable-1.egg-info/PKG-INFO": metadata("unverifiable", "1"),
            "unverifiable-1.egg-info/entry_points.txt": eps(f"[{GROUP}]", "u = m:u"),
        },
    )
    layouts = {e.name: (e.layout, e.verifiable) for e in _discovery.entry_points(GROUP)}
    assert layouts == {"v": ("dist-info", True), "u": ("egg-info", False)}


def test_a_plugin_manager_under_require_refuses_a_zipped_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate verifies .dist-info directories on disk; one inside a zip is refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from plugyard import TrustPolicy
    from plugyard.exceptions import SignatureError
    from plugyard.trust import Keyring, ProblemKind, TrustedKey

    app = _zip(
        tmp_path / "app.pyz",
        {
            "zipped_dist-4.0.dist-info/METADATA": metadata("zipped-dist", "4.0"),
            "zipped_dist-4.0.dist-info/entry_points.txt": eps(f"[{GROUP}]", "zd = zd_mod:f"),
            "zd_mod.py": "def f(data=None):\n    return 'ran'\n",
        },
    )
    monkeypatch.syspath_prepend(str(app))
    ring = Keyring.from_keys([TrustedKey(Ed25519PrivateKey.generate().public_key())])
    manager = PluginManager(group=GROUP, trust=TrustPolicy(mode="require", keyring=ring))
    with pytest.raises(SignatureError) as exc:
        manager.load("zd")
    assert [p.kind for p in exc.value.problems] == [ProblemKind.NOT_FOUND]
    assert "zd_mod" not in sys.modules


def test_the_cli_lists_the_rest_and_says_which_distribution_is_broken(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from plugyard.cli import main

    write(
        site,
        {
            "cli_broken-1.dist-info/METADATA": metadata("cli-broken"),
            "cli_broken-1.dist-info/entry_points.txt": eps(f"[{GROUP}]", "no equals here"),
        },
    )
    write(site, dist_info("cli_fine-1.dist-info", "cli-fine", "1", "cli_fine = m:f"))
    assert main(["list", "--group", GROUP, "--json"]) == 0
    out, err = capsys.readouterr()
    assert [p["name"] for p in json.loads(out)["plugins"]] == ["cli_fine"]
    assert "cli_broken-1.dist-info" in err
    assert "has no '='" in err
