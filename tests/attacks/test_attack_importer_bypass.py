"""Class 7: the verified importer removed from ``sys.meta_path``, or a finder put ahead of it.

``atkvictim/core.py`` and ``atkvictim/lazy.py`` get a planted
``__pycache__`` ``.pyc`` with the source's mtime and size, which the default
import system runs instead of the verified source. The host then restores
``sys.meta_path`` from a snapshot taken before plugyard, or puts an import
hook ahead of the verified importer, before the victim is imported or just
before its ``setup`` imports ``atkvictim.lazy``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from attacks.attackkit import Env, evil
from attacks.conftest import MakeEnv
from trust_helpers import forge_pyc

pytestmark = pytest.mark.slow

#: An import hook as most are written: the path search, then (here) nothing of its own.
PATH_HOOK = """
import importlib.abc, importlib.machinery
class PathHook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.machinery.PathFinder.find_spec(fullname, path, target)
sys.meta_path.insert(0, PathHook())
"""

#: A finder that serves a module by name from a location of its own.
NAME_HOOK = """
import importlib.abc, importlib.util
class NameHook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "atkvictim.lazy":
            return importlib.util.spec_from_file_location(fullname, config["evil"])
        return None
sys.meta_path.insert(0, NameHook())
"""


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv) -> Env:
    env = make_env("atk-victim", "atk-dependent", "atk-provider")
    for name in ("core", "lazy"):
        forge_pyc(
            env.site / "atkvictim" / f"{name}.py",
            evil(f"planted {name}.pyc ran", "VALUE = LAZY = 'pwned'\n"),
        )
    return env


@pytest.fixture(name="lazy")
def fixture_lazy(env: Env) -> Iterator[Path]:
    """``atkvictim/lazy.py``, restored after the test (its planted ``.pyc`` too)."""
    path = env.site / "atkvictim" / "lazy.py"
    pyc = next((path.parent / "__pycache__").glob("lazy.*.pyc"))
    saved, saved_pyc, st = path.read_bytes(), pyc.read_bytes(), path.stat()
    yield path
    path.write_bytes(saved)
    pyc.write_bytes(saved_pyc)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_the_planted_bytecode_would_run_under_the_default_import_system(
    env: Env, marker: Path
) -> None:
    done = env.venv.run(
        "import atkvictim.core as c; print(c.VALUE)", env={"ATTACK_MARKER": str(marker)}
    )

    assert done.stdout.strip() == "pwned"
    assert marker.read_text() == "planted core.pyc ran\n"


def test_a_meta_path_restored_from_a_snapshot_does_not_bypass_the_importer(
    env: Env, marker: Path
) -> None:
    report = env.host(
        marker,
        before="import sys; snapshot = list(sys.meta_path)",
        # Another signed plugin installs the importer; then the snapshot is restored.
        ready="manager.load('provided'); sys.meta_path[:] = sys.modules['__main__'].snapshot",
        env={"ATTACK_LAZY": "atkvictim.lazy"},
    )

    assert not marker.exists(), marker.read_text()
    assert report.results["victim"] == "genuine"
    assert report.loaders["atkvictim.core"] == "_VerifiedLoader"
    assert report.loaders["atkvictim.lazy"] == "_VerifiedLoader"
    assert report.results["dependent"] == "dependent uses victim"


@pytest.mark.parametrize(
    ("hook", "lazy"),
    [
        (PATH_HOOK, {"ATTACK_LAZY": "atkvictim.lazy"}),
        (NAME_HOOK, {"ATTACK_LAZY": "atkvictim.lazy"}),
        (NAME_HOOK, {"ATTACK_IMPORT": "atkvictim.lazy"}),
    ],
    ids=["path-hook, import_module", "name-hook, import_module", "name-hook, import statement"],
)
def test_a_finder_put_ahead_before_a_lazy_import_does_not_serve_it(
    env: Env, marker: Path, tmp_path: Path, hook: str, lazy: dict[str, str]
) -> None:
    (tmp_path / "evil_lazy.py").write_text(evil("a finder ahead served atkvictim.lazy"))

    report = env.host(marker, attack=hook, env=lazy, evil=str(tmp_path / "evil_lazy.py"))

    assert not marker.exists(), marker.read_text()
    assert report.results["victim"] == "genuine"
    assert report.loaders["atkvictim.lazy"] == "_VerifiedLoader"


def test_a_module_changed_behind_a_finder_put_ahead_is_refused(
    env: Env, lazy: Path, marker: Path
) -> None:
    attack = PATH_HOOK + f"\nopen({str(lazy)!r}, 'w').write({evil('changed lazy.py ran')!r})\n"

    report = env.host(marker, attack=attack, env={"ATTACK_LAZY": "atkvictim.lazy"})
    verify = env.verify_group()

    assert not marker.exists(), marker.read_text()
    report.refused("victim", "hash-mismatch", "atkvictim/lazy.py")
    report.dependents_failed("dependent")
    verify.reports("atk-victim", "hash-mismatch", "atkvictim/lazy.py")
