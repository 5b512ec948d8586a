"""plugyard lists what importlib.metadata lists, for distributions installed for real.

One venv gets plugyard and a distribution in each layout tools leave behind:
a wheel installed by pip, ``pip install -e`` with setuptools and with
hatchling, an unzipped and a zipped ``.egg`` and a zip holding a
``.dist-info`` (each put on ``sys.path`` by a ``.pth`` file, as easy_install
and zipapp tools do), and a ``sys.meta_path`` finder, installed by a ``.pth``,
that serves a distribution from memory and shadows one on disk. In that
venv's interpreter, ``importlib.metadata.entry_points(group=...)``,
plugyard's index (without and with its cache), ``PluginManager.candidates()``
and ``plugyard list --json`` are compared, distribution by distribution.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from wheelhouse import (
    Venv,
    build_wheels,
    create_venv,
    fill_wheelhouse,
    installed_requirements,
)

pytestmark = pytest.mark.slow

GROUP = "parity.installs"


def project(root: Path, name: str, backend: str) -> Path:
    """A project with one module and one entry point in GROUP, built by ``backend``."""
    module = name.replace("-", "_")
    directory = root / name
    directory.mkdir(parents=True)
    build = {
        "setuptools": '[build-system]\nrequires = ["setuptools>=64"]\n'
        'build-backend = "setuptools.build_meta"\n'
        f"[tool.setuptools]\npy-modules = [{module!r}]\n",
        "hatchling": '[build-system]\nrequires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n'
        f'[tool.hatch.build.targets.wheel]\nonly-include = ["{module}.py"]\n'
        # Editable by a .pth naming the project directory (no `editables` needed).
        'dev-mode-dirs = ["."]\n',
    }[backend]
    (directory / "pyproject.toml").write_text(
        build + f'[project]\nname = "{name}"\nversion = "1.2"\n'
        f'[project.entry-points."{GROUP}"]\n{module} = "{module}:plugin"\n'
    )
    (directory / f"{module}.py").write_text("def plugin(data=None):\n    return data\n")
    return directory


def _run(args: list[str | Path], cwd: Path | None = None) -> None:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _egg(root: Path, name: str) -> Path:
    """A zipped ``.egg`` built by setuptools' ``bdist_egg``."""
    directory = project(root, name, "setuptools")
    setup = "from setuptools import setup; setup()"
    _run([sys.executable, "-c", setup, "bdist_egg", "--dist-dir", root / "eggs"], cwd=directory)
    (egg,) = (root / "eggs").glob(f"{name.replace('-', '_')}-*.egg")
    return egg


FINDER = '''
"""A sys.meta_path finder serving a distribution from memory (installed by a .pth)."""
import importlib.metadata, pathlib, sys

FILES = {
    "METADATA": "Metadata-Version: 2.1\\nName: shadowed-dist\\nVersion: 9.0\\n\\n",
    "entry_points.txt": "[parity.installs]\\nfrom_memory = memory_mod:plugin\\n",
}


class _Dist(importlib.metadata.Distribution):
    def read_text(self, filename):
        return FILES.get(str(filename))

    def locate_file(self, path):
        return pathlib.Path("/nonexistent") / path


class MemoryFinder:
    def find_spec(self, *args):
        return None

    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):
        yield _Dist()


def install():
    if not any(isinstance(f, MemoryFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MemoryFinder())
'''

COMPARE = """
import importlib.metadata, json, os, subprocess, sys
import plugyard
from plugyard import _discovery
group = {group!r}
theirs = [[e.name, e.value, e.dist.name] for e in importlib.metadata.entry_points(group=group)]
index = [[e.name, e.value, e.distribution or None] for e in _discovery.entry_points(group)]
uncached = [
    [e.name, e.value, e.distribution or None]
    for e in _discovery.entry_points(group, use_cache=False)
]
layouts = {{e.distribution: e.layout for e in _discovery.entry_points(group)}}
cands = [
    [c.name, c.value, c.distribution]
    for c in plugyard.PluginManager(group=group).candidates()
]
cli = subprocess.run(
    [os.path.join(os.path.dirname(sys.executable), "plugyard"), "list", "--group", group, "--json"],
    capture_output=True, text=True, check=True,
)
listed = [[p["name"], p["value"], p["distribution"]] for p in json.loads(cli.stdout)["plugins"]]
print(json.dumps({{"theirs": theirs, "index": index, "uncached": uncached, "candidates": cands,
                  "cli": listed, "layouts": layouts}}))
"""


@pytest.fixture(name="listings", scope="module")
def fixture_listings(
    wheels: dict[str, Path], find_links: tuple[Path, ...], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("parity-installs")
    # The build backends of the editable installs, as installed here.
    backends = installed_requirements(["setuptools", "wheel", "hatchling"])
    fill_wheelhouse(find_links[0], backends)
    venv = create_venv(root / "venv", find_links, [wheels["plugyard"], *backends])
    site = venv.site_packages
    # A wheel, installed by pip.
    built = build_wheels([project(root / "src", "wheel-dist", "setuptools")], root / "wheels")
    venv.pip_install(*built.values())
    # Editable installs, built by this interpreter's setuptools and hatchling.
    for name, backend in [("st-editable", "setuptools"), ("hatch-editable", "hatchling")]:
        path = project(root / "src", name, backend)
        venv.pip_install("--no-build-isolation", "--no-deps", "-e", str(path))
    # A zipped and an unzipped egg, on sys.path through a .pth file.
    zipped = _egg(root / "src", "zipped-egg")
    unzipped = root / "eggs-unzipped" / _egg(root / "src", "unzipped-egg").name
    with zipfile.ZipFile(next((root / "src" / "eggs").glob("unzipped_egg-*.egg"))) as egg:
        egg.extractall(unzipped)
    # A zip holding a .dist-info, as zipapp and pex leave them.
    target = root / "zip-target"
    zip_wheel = build_wheels([project(root / "src", "zip-dist", "setuptools")], root / "zw")
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", target,
          *zip_wheel.values()])  # fmt: skip
    app = root / "app.zip"
    with zipfile.ZipFile(app, "w") as archive:
        for path in sorted(target.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(target).as_posix())
    (site / "parity-paths.pth").write_text(f"{zipped}\n{unzipped}\n{app}\n")
    # A meta_path finder, and the distribution on disk it shadows.
    (site / "memfinder.py").write_text(textwrap.dedent(FINDER))
    (site / "memfinder.pth").write_text("import memfinder; memfinder.install()\n")
    built = build_wheels([project(root / "src", "shadowed-dist", "setuptools")], root / "sw")
    venv.pip_install(*built.values())
    done = venv.run(COMPARE.format(group=GROUP), env={"XDG_CACHE_HOME": str(root / "cache")})
    return {"result": json.loads(done.stdout.strip().splitlines()[-1]), "venv": venv}


CASES = {
    "wheel installed by pip": "wheel-dist",
    "pip install -e with setuptools": "st-editable",
    "pip install -e with hatchling": "hatch-editable",
    "a zipped .egg": "zipped-egg",
    "an unzipped .egg": "unzipped-egg",
    "a zip holding a .dist-info": "zip-dist",
    "a sys.meta_path finder": "shadowed-dist",
}


def _of(rows: list[list[Any]], dist: str) -> list[list[Any]]:
    return [row for row in rows if row[2] == dist]


@pytest.mark.parametrize("case", list(CASES))
def test_each_layout_lists_as_importlib_metadata_lists_it(
    listings: dict[str, Any], case: str
) -> None:
    result, dist = listings["result"], CASES[case]
    expected = _of(result["theirs"], dist)
    assert expected, f"importlib.metadata lists nothing of {dist}"
    for ours in ("index", "uncached", "candidates", "cli"):
        assert sorted(_of(result[ours], dist)) == sorted(expected), ours


def test_the_finder_shadows_the_copy_on_disk(listings: dict[str, Any]) -> None:
    result = listings["result"]
    assert _of(result["theirs"], "shadowed-dist") == [
        ["from_memory", "memory_mod:plugin", "shadowed-dist"]
    ]
    assert result["layouts"]["shadowed-dist"] == "finder"


def test_the_whole_listing_is_the_same_in_the_same_order(listings: dict[str, Any]) -> None:
    result = listings["result"]
    assert result["index"] == result["uncached"] == result["theirs"]
    assert sorted(result["candidates"]) == sorted(result["cli"]) == sorted(result["theirs"])


def test_only_dist_info_directories_are_verifiable(listings: dict[str, Any]) -> None:
    layouts = listings["result"]["layouts"]
    assert layouts["wheel-dist"] == "dist-info"
    assert layouts["st-editable"] == layouts["hatch-editable"] == "dist-info"
    assert layouts["zipped-egg"] == "zip"
    assert layouts["unzipped-egg"] == "egg"
    assert layouts["zip-dist"] == "zip"


def test_a_require_policy_refuses_what_cannot_be_verified(listings: dict[str, Any]) -> None:
    venv: Venv = listings["venv"]
    code = textwrap.dedent(
        f"""
        import json
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        import plugyard
        from plugyard.trust import Keyring, TrustedKey
        ring = Keyring.from_keys([TrustedKey(Ed25519PrivateKey.generate().public_key())])
        policy = plugyard.TrustPolicy(mode="require", keyring=ring)
        from plugyard.stevedore import ExtensionManager
        refused = {{}}
        def refuse(manager, ep, error):
            refused[ep.name] = str(error)
        ExtensionManager({GROUP!r}, trust=policy, on_load_failure_callback=refuse)
        print(json.dumps(refused))
        """
    )
    refused = json.loads(venv.run(code).stdout)
    assert "cannot be verified" in refused["zipped_egg"]
    assert "cannot be verified" in refused["from_memory"]
    assert "failed verification" in refused["wheel_dist"]
    assert set(refused) >= {"wheel_dist", "zipped_egg", "unzipped_egg", "zip_dist", "from_memory"}
