"""Class 8: the verified importer's code cache, swapped by someone who can write a parent of it.

The cache holds marshalled code objects: whoever can make plugyard read an
entry of theirs runs code under the name of a verified module. The attacker
here can write a directory above the cache; once the host has imported its
first plugin (so a check made once would be behind it), it renames the
cache's ``plugyard`` directory and puts a symlink to its own in its place,
holding an entry for ``atkvictim/lazy.py`` (the key is no secret: the path,
the source's hash, the interpreter's magic number). ``atkvictim.lazy`` is then
imported lazily. Nothing is wrong with the distribution: the cache is refused,
with a warning naming the directory, and the module compiled from its
verified source.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
from pathlib import Path

import pytest

from attacks.attackkit import Env, evil
from attacks.conftest import MakeEnv
from plugyard.trust._codecache import CodeCache

pytestmark = pytest.mark.slow

ATTACKER_UID = 65534  # nobody


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv) -> Env:
    return make_env("atk-victim", "atk-dependent")


def _attacker_cache(env: Env, root: Path) -> Path:
    """The attacker's ``plugyard`` directory: an entry that runs planted code for lazy.py."""
    source = env.site / "atkvictim" / "lazy.py"
    digest = hashlib.sha256(source.read_bytes()).digest()
    code = compile(evil("code from the attacker's cache ran"), str(source), "exec")
    theirs = root / "attacker" / "plugyard"
    (theirs / "code").mkdir(parents=True)
    entry = theirs / "code" / CodeCache.key(str(source), digest)
    entry.write_bytes(importlib.util.MAGIC_NUMBER + digest + marshal.dumps(code))
    return theirs


def _swap(cache_home: Path, theirs: Path) -> str:
    """Attack code: the cache's plugyard directory replaced by a symlink to the attacker's."""
    ours = cache_home / "plugyard"
    return (
        f"import os; os.rename({str(ours)!r}, {str(ours)!r} + '.moved'); "
        f"os.symlink({str(theirs)!r}, {str(ours)!r})"
    )


def test_a_cache_below_a_directory_others_can_write_is_refused(
    env: Env, tmp_path: Path, marker: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may rename what is in it
    cache_home = shared / "cache"
    cache_home.mkdir(mode=0o700)

    report = env.host(
        marker,
        attack=_swap(cache_home, _attacker_cache(env, tmp_path)),
        env={"XDG_CACHE_HOME": str(cache_home), "ATTACK_LAZY": "atkvictim.lazy"},
    )

    assert not marker.exists(), marker.read_text()
    assert report.results["victim"] == "genuine"
    assert report.loaders["atkvictim.lazy"] == "_VerifiedLoader"
    assert f"not caching verified code in {cache_home}/plugyard/code" in report.stderr
    assert f"{shared} is writable by other users and not sticky" in report.stderr
    assert env.verify_group().code == 0  # the distribution itself is fine


def test_a_cache_swapped_after_it_was_opened_is_never_followed(
    env: Env, tmp_path: Path, marker: Path
) -> None:
    """The cache directory is opened once; its entries are opened relative to that directory."""
    cache_home = tmp_path / "cache"
    cache_home.mkdir(mode=0o700)

    report = env.host(
        marker,
        attack=_swap(cache_home, _attacker_cache(env, tmp_path)),
        env={"XDG_CACHE_HOME": str(cache_home), "ATTACK_LAZY": "atkvictim.lazy"},
    )

    assert not marker.exists(), marker.read_text()
    assert report.results["victim"] == "genuine"
    assert "not caching" not in report.stderr
    moved = cache_home / "plugyard.moved" / "code"
    lazy = str(env.site / "atkvictim" / "lazy.py")
    digest = hashlib.sha256(Path(lazy).read_bytes()).digest()
    assert (moved / CodeCache.key(lazy, digest)).exists()  # written where it was opened


def test_a_new_process_refuses_the_symlinked_cache(env: Env, tmp_path: Path, marker: Path) -> None:
    cache_home = tmp_path / "cache"
    cache_home.mkdir(mode=0o700)
    theirs = _attacker_cache(env, tmp_path)
    (cache_home / "plugyard").symlink_to(theirs)

    report = env.host(
        marker, env={"XDG_CACHE_HOME": str(cache_home), "ATTACK_LAZY": "atkvictim.lazy"}
    )

    assert not marker.exists(), marker.read_text()
    assert report.results["victim"] == "genuine"
    assert f"{cache_home}/plugyard is a symbolic link, which is not followed" in report.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="making files of another user needs root")
def test_a_cache_home_of_another_user_is_refused(env: Env, tmp_path: Path, marker: Path) -> None:
    """The attacker made the (predictable) cache directory first, in a shared place."""
    theirs = _attacker_cache(env, tmp_path)
    for path in (theirs.parent, theirs, theirs / "code", *(theirs / "code").iterdir()):
        os.chown(path, ATTACKER_UID, ATTACKER_UID)

    report = env.host(
        marker, env={"XDG_CACHE_HOME": str(theirs.parent), "ATTACK_LAZY": "atkvictim.lazy"}
    )

    assert not marker.exists(), marker.read_text()
    assert report.results["victim"] == "genuine"
    assert f"{theirs.parent} is owned by another user (uid {ATTACKER_UID})" in report.stderr
