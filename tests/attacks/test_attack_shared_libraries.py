"""Class 4: the shared libraries an extension module loads, vendored in ``<name>.libs``.

``atk-lib``'s plugin loads its compiled extension ``atklib._ext`` in
``setup``; the extension links ``atklib.libs/libatkhelper-1a2b3c4d.so.1``
through ``$ORIGIN/../atklib.libs``, as auditwheel vendors libraries. The
planted library has the same symbol and a constructor that marks, which runs
the moment the dynamic linker loads it. Every library of the distribution
is hashed again just before the extension loads.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from attacks.attackkit import HELPER_LIB, Env
from attacks.conftest import MakeEnv, Wheels

pytestmark = pytest.mark.slow

LIB = f"atklib.libs/{HELPER_LIB}"


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv, attack_wheels: Wheels) -> Env:
    if attack_wheels.evil_library is None:
        pytest.skip("no C compiler to build the extension module")
    return make_env("atk-lib", "atk-dependent")


@pytest.fixture(name="library")
def fixture_library(env: Env) -> Iterator[Path]:
    """The vendored library, restored after the test (and anything added beside it removed)."""
    path = env.site / LIB
    saved = path.read_bytes()
    yield path
    path.write_bytes(saved)
    for extra in path.parent.iterdir():
        if extra.name != HELPER_LIB:
            extra.unlink()


@pytest.fixture(name="evil_library")
def fixture_evil_library(attack_wheels: Wheels) -> Path:
    assert attack_wheels.evil_library is not None
    return attack_wheels.evil_library


def test_the_genuine_extension_loads_its_vendored_library(env: Env, marker: Path) -> None:
    report = env.host(marker)

    assert report.results["libvictim"] == 42
    assert report.loaders["atklib._ext"] == "_VerifiedExtensionLoader"
    assert report.states["lib-dependent"] == "active"


def test_a_library_swapped_after_verification_never_loads(
    env: Env, library: Path, evil_library: Path, marker: Path
) -> None:
    """The swap happens after the distribution verified, before ``setup`` loads the extension."""
    report = env.host(
        marker, attack=f"import shutil; shutil.copyfile({str(evil_library)!r}, {str(library)!r})"
    )
    verify = env.verify_group()

    assert not marker.exists(), marker.read_text()
    error = report.refused("libvictim", "hash-mismatch", LIB)
    assert "the extension module 'atklib._ext' is not loaded" in str(error["problems"])
    assert "atklib._ext" not in report.loaders
    report.dependents_failed("lib-dependent")
    verify.reports("atk-lib", "hash-mismatch", LIB)


def test_a_library_swapped_before_verification_is_refused(
    env: Env, library: Path, evil_library: Path, marker: Path
) -> None:
    shutil.copyfile(evil_library, library)

    report = env.host(marker)

    assert not marker.exists(), marker.read_text()
    report.refused("libvictim", "hash-mismatch", LIB)
    report.dependents_failed("lib-dependent")


def test_a_library_added_beside_the_vendored_ones_is_refused(
    env: Env, library: Path, evil_library: Path, marker: Path
) -> None:
    """An extension loads vendored libraries by name, whatever their suffix: all are signed."""
    shutil.copyfile(evil_library, library.parent / "libatkextra-99999999.so.1")

    report = env.host(marker)

    assert not marker.exists(), marker.read_text()
    report.refused("libvictim", "unlisted-file", "atklib.libs/libatkextra-99999999.so.1")
    report.dependents_failed("lib-dependent")
    env.verify_group().reports("atk-lib", "unlisted-file", "atklib.libs/libatkextra")


def test_a_library_added_after_verification_is_refused_before_the_extension_loads(
    env: Env, library: Path, evil_library: Path, marker: Path
) -> None:
    added = library.parent / "libatkextra-99999999.so.1"
    report = env.host(
        marker, attack=f"import shutil; shutil.copyfile({str(evil_library)!r}, {str(added)!r})"
    )

    assert not marker.exists(), marker.read_text()
    report.refused("libvictim", "unlisted-file", str(added))
    report.dependents_failed("lib-dependent")
