"""stevedore's own tests for its managers pass with plugyard's verified managers in their place.

A fresh venv gets plugyard and a signed wheel of the stevedore installed
here (``nox -s stevedore`` runs this against the oldest and the newest 5.x);
``stevedore_suite.py`` then runs stevedore's tests (shipped in its wheel,
``stevedore/tests/``) with plugyard's managers bound to a policy that
requires a signature, so every test plugin is verified before it loads.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import stevedore_suite
from plugyard.trust import sign_wheel
from wheelhouse import create_venv, fill_wheelhouse, installed_requirements

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent


@pytest.fixture(name="report", scope="module")
def fixture_report(
    wheels: dict[str, Path],
    find_links: tuple[Path, ...],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Run the suite once in a venv with plugyard and a signed stevedore; its JSON report."""
    root = tmp_path_factory.mktemp("stevedore-suite")
    key = Ed25519PrivateKey.generate()
    ring = root / "ring"
    ring.mkdir()
    (ring / "suite.pem").write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    wanted = version("stevedore")
    (wheel,) = [w for w in find_links[0].glob("stevedore-*.whl") if w.name.split("-")[1] == wanted]
    (root / "signed").mkdir()
    signed = sign_wheel(wheel, key, root / "signed")
    # stevedore 5.0's own tests import testtools.
    extras = installed_requirements(["testtools"])
    fill_wheelhouse(find_links[0], extras)
    venv = create_venv(root / "venv", find_links, [wheels["plugyard"], signed, *extras])
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['stevedore_suite', {str(ring)!r}]\n"
        f"runpy.run_path({str(HERE / 'stevedore_suite.py')!r}, run_name='__main__')\n"
    )
    done = venv.run(code, check=False)
    assert done.stdout.strip(), done.stderr
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["returncode"] = done.returncode
    return found


def test_stevedores_manager_tests_pass_with_plugyards_managers(report: dict[str, Any]) -> None:
    failures = "\n".join(f"{name}: {text[-600:]}" for name, text in report["failed"].items())
    assert report["failed"] == {}, failures
    assert report["returncode"] == 0
    assert report["ran"] >= 80
    assert len(report["passed"]) >= report["ran"] - len(stevedore_suite.DIFFERENCES) - 2


def test_every_manager_the_tests_use_is_plugyards(report: dict[str, Any]) -> None:
    placed = report["placed"]
    for module in ["test_driver", "test_extension", "test_named", "test_hook", "test_dispatch"]:
        assert placed[module], module
    assert set(placed["test_test_manager"]) & {"DriverManager", "driver"}


def test_stevedore_and_its_test_plugins_were_imported_from_verified_bytes(
    report: dict[str, Any],
) -> None:
    assert report["loader"] == "_VerifiedLoader"


def test_only_the_known_differences_differ(report: dict[str, Any]) -> None:
    """Each difference fails, for the reason given; none passes unnoticed."""
    assert set(report["differences"]) == set(stevedore_suite.DIFFERENCES)
    assert report["differences_passing"] == []
