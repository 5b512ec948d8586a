"""Class 5: keyring and scope files that fail open.

The host trusts the release key for everything and a vendor key for the
distributions ``vendor-*`` only. ``atk-vendor`` is signed by the vendor key
but is not ``vendor-*``: its module marks when imported. A scope file the
keyring ignores (misnamed ``vendor.pub.scope``, a dangling symlink, one that
cannot be read) used to leave the vendor key trusted for everything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attacks.attackkit import Env
from attacks.conftest import Keys, MakeEnv

pytestmark = pytest.mark.slow


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv) -> Env:
    return make_env("atk-vendor", "atk-victim", "atk-dependent")


def _ring(keys: Keys, root: Path) -> Path:
    ring = root / "ring"
    shutil.copytree(keys.ring, ring)
    shutil.copy(keys.vendor_public, ring / "vendor.pub.pem")
    return ring


@pytest.mark.parametrize(
    ("scope", "make", "message"),
    [
        ("vendor.pub.scope", "text", "the scope of vendor.pub.pem is vendor.scope"),
        ("vendor.scope", "dangling", "symlink to nothing"),
        ("vendor.scope", "directory", "cannot be read"),
        ("vendor.scope", "latin-1", "is not UTF-8"),
        ("vendor.scope", "bad-line", "is not a distribution name or pattern"),
        ("vendor.scope.bak", "text", "is neither a public key"),
    ],
)
def test_a_scope_file_that_cannot_be_used_stops_the_host_and_verify(
    env: Env, keys: Keys, tmp_path: Path, marker: Path, scope: str, make: str, message: str
) -> None:
    ring = _ring(keys, tmp_path)
    target = ring / scope
    if make == "dangling":
        target.symlink_to(tmp_path / "vendor.scope-that-was-moved")
    elif make == "directory":
        target.mkdir()
    elif make == "latin-1":
        target.write_bytes("vendör-*\n".encode("latin-1"))
    elif make == "bad-line":
        target.write_text("vendor-*\natk-vendor; and everything\n")
    else:
        target.write_text("vendor-*\n")

    report = env.host(marker, keyring=ring)
    verify = env.verify_group(keyring=ring)

    assert not marker.exists(), marker.read_text()
    kind, path, text = report.extra["keyring_error"]
    assert kind == "InvalidKeyError"
    assert path == str(target)
    assert message in text
    assert report.extra["atk"] == []  # nothing of any plugin was imported
    assert verify.code == 2
    assert str(target) in verify.stderr
    assert message in verify.stderr


def test_a_key_is_trusted_only_for_the_names_its_scope_file_lists(
    env: Env, keys: Keys, tmp_path: Path, marker: Path
) -> None:
    ring = _ring(keys, tmp_path)
    (ring / "vendor.scope").write_text("# the vendor publishes its own plugins only\nvendor-*\n")

    report = env.host(marker, keyring=ring)
    verify = env.verify_group(keyring=ring)

    assert not marker.exists(), marker.read_text()
    report.refused("vendorplugin", "key-out-of-scope", "atk_vendor-1.0.dist-info")
    report.dependents_failed("vendor-dependent")
    assert report.results["victim"] == "genuine"  # the release key still vouches for it
    verify.reports("atk-vendor", "key-out-of-scope")


def test_a_scope_file_that_names_the_distribution_lets_its_key_vouch(
    env: Env, keys: Keys, tmp_path: Path, marker: Path
) -> None:
    """The same key and wheel verify once the scope covers them: the scope file is read."""
    ring = _ring(keys, tmp_path)
    (ring / "vendor.scope").write_text("atk-vendor\n")

    report = env.host(marker, keyring=ring)

    assert report.states["vendorplugin"] == "active"
    assert report.loaders["atkvendor"] == "_VerifiedLoader"
    assert marker.read_text() == "a vendor key vouched out of its scope\n"  # now within it
