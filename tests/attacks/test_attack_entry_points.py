"""Class 1: entry points, names and versions that do not come from the verified metadata.

A listing of entry points is read before verification: from the files as
they were then, or from the index cache. Whatever it says, what is imported
is what the verified ``entry_points.txt`` declares, naming a module of the
signed manifest, and the version is the verified ``METADATA``'s.
``atk-helper`` is an unsigned distribution whose module marks when imported:
every attack here tries to get it imported as the plugin ``victim``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from attacks.attackkit import GROUP, Env
from attacks.conftest import MakeEnv

pytestmark = pytest.mark.slow

INFO = "atk_victim-1.0.dist-info"


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv) -> Env:
    return make_env("atk-victim", "atk-dependent", "atk-foreign", "atk-helper")


@pytest.fixture(name="entry_points")
def fixture_entry_points(env: Env) -> Iterator[Path]:
    """The victim's ``entry_points.txt``, restored (content and times) after the test."""
    path = env.site / INFO / "entry_points.txt"
    saved, st = path.read_bytes(), path.stat()
    yield path
    path.write_bytes(saved)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _redirect(path: Path) -> bytes:
    """Point the victim's entry point at the unsigned helper; return the genuine bytes."""
    genuine = path.read_bytes()
    path.write_bytes(genuine.replace(b"atkvictim:Victim", b"atkhelper:Helper"))
    return genuine


def test_an_entry_point_changed_until_listed_then_restored_is_refused(
    env: Env, entry_points: Path, marker: Path
) -> None:
    """The file says one thing when listed, another when verified: the verified one rules."""
    genuine = _redirect(entry_points)

    report = env.host(
        marker,
        ready=(
            "manager.candidates()\n"  # listed now, from the redirected file
            "open(config['path'], 'wb').write(bytes.fromhex(config['genuine']))\n"
        ),
        env={"PLUGYARD_NO_CACHE": "1"},
        path=str(entry_points),
        genuine=genuine.hex(),
    )

    assert not marker.exists(), marker.read_text()
    error = report.refused("victim", "undeclared-entry-point", f"{INFO}/entry_points.txt")
    assert "atkhelper:Helper" in error["message"]
    report.dependents_failed("dependent")
    assert "atkhelper" not in report.loaders


def test_a_poisoned_index_cache_cannot_redirect_an_entry_point(
    env: Env, entry_points: Path, marker: Path
) -> None:
    """The index cache is written from a redirected file, then the file is put back."""
    st = entry_points.stat()
    genuine = _redirect(entry_points)
    listed = env.cli("list", "--group", GROUP, "--json")  # writes the index cache
    assert listed.code == 0, listed.stderr
    entry_points.write_bytes(genuine)
    os.utime(entry_points, ns=(st.st_atime_ns, st.st_mtime_ns))
    stale = env.cli("list", "--group", GROUP, "--json")
    values = {p["name"]: p["value"] for p in json.loads(stale.stdout)["plugins"]}

    report = env.host(marker)
    verify = env.verify_group()

    assert not marker.exists(), marker.read_text()
    if values["victim"] == "atkhelper:Helper":  # the cache served the redirected listing
        report.refused("victim", "undeclared-entry-point", f"{INFO}/entry_points.txt")
        report.dependents_failed("dependent")
        verify.reports("atk-victim", "undeclared-entry-point")
    else:  # an index that notices the restored file has nothing stale to serve
        assert report.states["victim"] == "active"
        assert report.results["victim"] == "genuine"


def test_a_signed_entry_point_into_another_distributions_module_is_refused(
    env: Env, marker: Path
) -> None:
    report = env.host(marker)

    assert not marker.exists(), marker.read_text()
    error = report.refused(
        "foreign", "foreign-module", "atk_foreign-1.0.dist-info/entry_points.txt"
    )
    assert "'atkhelper'" in error["message"]
    report.dependents_failed("foreign-dependent")
    env.verify_group().reports("atk-foreign", "foreign-module")


def test_a_look_alike_dist_info_directory_listed_first_is_refused(env: Env, marker: Path) -> None:
    """``ATK_VICTIM-1.0.dist-info`` sorts before the real one and names the same distribution."""
    look_alike = env.site / "ATK_VICTIM-1.0.dist-info"
    shutil.copytree(env.site / INFO, look_alike)
    _redirect(look_alike / "entry_points.txt")
    try:
        report = env.host(marker, env={"PLUGYARD_NO_CACHE": "1"})
        verify = env.verify_group(env={"PLUGYARD_NO_CACHE": "1"})
    finally:
        shutil.rmtree(look_alike)

    assert not marker.exists(), marker.read_text()
    if report.states["victim"] == "active":
        # The index lists distributions as importlib.metadata does, and that took the
        # genuine copy: what runs is the signed code, never the look-alike's redirect.
        assert report.results["victim"] == "genuine"
        return
    report.refused("victim", "name-mismatch", "ATK_VICTIM-1.0.dist-info/plugyard-signature.json")
    report.dependents_failed("dependent")
    verify.reports("atk-victim", "name-mismatch")


def test_the_version_is_the_verified_metadatas_not_the_listings(env: Env, marker: Path) -> None:
    metadata = env.site / INFO / "METADATA"
    genuine = metadata.read_bytes()
    metadata.write_bytes(genuine.replace(b"Version: 1.0", b"Version: 9.0"))
    try:
        report = env.host(
            marker,
            ready=(
                "listed = {c.name: c.version for c in manager.candidates()}\n"
                "open(config['path'], 'wb').write(bytes.fromhex(config['genuine']))\n"
                "config['listed'] = listed['victim']\n"
            ),
            after="extra['version'] = str(manager.info('victim').version)",
            env={"PLUGYARD_NO_CACHE": "1"},
            path=str(metadata),
            genuine=genuine.hex(),
        )
    finally:
        metadata.write_bytes(genuine)

    assert not marker.exists()
    assert report.states["victim"] == "active"
    assert report.results["victim"] == "genuine"
    assert report.extra["version"] == "1.0"
