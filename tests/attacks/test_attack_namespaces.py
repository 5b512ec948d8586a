"""Class 2: namespace packages shadowed by a module or a regular package of the same name.

``atk-ns`` installs the signed plugin ``nsvictim`` as ``atkns/nsvictim/``,
with no ``atkns/__init__.py``: ``atkns`` is a namespace package, and so is
``atkns.nsvictim.space`` inside the plugin. A module ``atkns.py``, a
``atkns.pyc`` or an ``atkns/__init__.py`` anywhere the import system looks
would be imported instead, before verification or planted after it for a
lazy import. The verified importer makes verified namespaces itself and
refuses such shadows; verification reports them.
"""

from __future__ import annotations

import importlib.util
import marshal
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attacks.attackkit import Env, evil
from attacks.conftest import MakeEnv, Wheels

pytestmark = pytest.mark.slow


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv) -> Env:
    return make_env("atk-ns", "atk-dependent")


def test_a_verified_namespace_package_is_made_by_the_verified_importer(
    env: Env, marker: Path
) -> None:
    report = env.host(marker, env={"ATTACK_LAZY": "atkns.nsvictim.space.impl"})

    assert report.states["nsvictim"] == "active"
    assert report.results["nsvictim"] == "genuine"
    assert report.loaders["atkns"] == "_NamespaceLoader"
    assert report.loaders["atkns.nsvictim.space"] == "_NamespaceLoader"
    assert report.loaders["atkns.nsvictim.space.impl"] == "_VerifiedLoader"
    assert report.states["ns-dependent"] == "active"


def test_a_module_of_another_distribution_hiding_the_namespace_is_refused(
    env: Env, marker: Path, attack_wheels: Wheels
) -> None:
    pip = [sys.executable, "-m", "pip", "--python", str(env.venv.python)]
    subprocess.run(
        [*pip, "install", "--no-index", "--no-deps", attack_wheels.by_name["atk-shadow"]],
        check=True,
        capture_output=True,
    )
    try:
        assert (env.site / "atkns.py").exists()  # pip put it beside the namespace
        report = env.host(marker)
        verify = env.verify_group()
    finally:
        subprocess.run([*pip, "uninstall", "-y", "atk-shadow"], check=True, capture_output=True)

    assert not marker.exists(), marker.read_text()
    report.refused("nsvictim", "shadowed", "atkns.py")
    report.dependents_failed("ns-dependent")
    verify.reports("atk-ns", "shadowed", "atkns.py")


def _pyc(source: str) -> bytes:
    """A sourceless ``.pyc`` of ``source``, as the import system loads one."""
    code = compile(source, "atkns.py", "exec")
    return importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code)


@pytest.mark.parametrize("shadow", ["atkns/__init__.py", "atkns.py", "atkns.pyc"])
def test_a_shadow_on_an_earlier_path_entry_is_refused(
    env: Env, marker: Path, tmp_path: Path, shadow: str
) -> None:
    earlier = tmp_path / "earlier"
    planted = earlier / shadow
    planted.parent.mkdir(parents=True)
    source = evil(f"{shadow} on an earlier sys.path entry ran")
    if shadow.endswith(".pyc"):
        planted.write_bytes(_pyc(source))
    else:
        planted.write_text(source)

    report = env.host(marker, before=f"sys.path.insert(0, {str(earlier)!r})")
    verify = env.verify_group(env={"PYTHONPATH": str(earlier)})

    assert not marker.exists(), marker.read_text()
    report.refused("nsvictim", "shadowed", str(planted))
    report.dependents_failed("ns-dependent")
    verify.reports("atk-ns", "shadowed", str(planted))


def test_a_shadow_planted_after_verification_for_a_lazy_import_is_refused(
    env: Env, marker: Path
) -> None:
    """``atkns.nsvictim.space`` is imported in ``setup``; ``space.py`` appears just before."""
    planted = env.site / "atkns" / "nsvictim" / "space.py"
    try:
        report = env.host(
            marker,
            attack=f"open({str(planted)!r}, 'w').write({evil('space.py ran')!r})",
            env={"ATTACK_LAZY": "atkns.nsvictim.space.impl"},
        )
        verify = env.verify_group()
    finally:
        planted.unlink(missing_ok=True)
        shutil.rmtree(planted.parent / "__pycache__", ignore_errors=True)

    assert not marker.exists(), marker.read_text()
    report.refused("nsvictim", "shadowed", str(planted))
    report.dependents_failed("ns-dependent")
    verify.reports("atk-ns", "shadowed", "atkns/nsvictim/space.py")
