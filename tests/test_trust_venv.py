"""Real wheels, signed, installed with pip and ``installer``, verified and imported in a venv.

A throwaway project is built with ``pip wheel``, signed with keys made by
:func:`generate_key`, and installed with pip (bytecode compiled, as users get
it) into a venv that has plugyard installed from its own wheel. Each attack
is a copy of that installation, changed one way. One child process in the
venv then does what the manager does for every copy: verify, and import
through :class:`VerifiedImporter` only if verification passed. Planted code
writes its case name to a marker file, so "refused before import" means the
marker stays empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plugyard.trust import (
    Keyring,
    generate_key,
    load_private_key,
    sign_wheel,
    verify_distribution,
)
from trust_helpers import forge_pyc, install_wheel
from wheelhouse import Venv, build_wheels, create_venv

pytestmark = pytest.mark.slow

DIST = "trust-demo"
INFO = "trust_demo-1.0.dist-info"
SIG = f"{INFO}/plugyard-signature.json"

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "{version}"

[project.scripts]
{name} = "{package}:main"

[project.entry-points."plugyard.tests"]
demo = "{package}:main"

[tool.hatch.build.targets.wheel]
packages = ["src/{package}"]
"""

SOURCES = {
    "__init__.py": "from . import core\nVALUE = core.VALUE\n\ndef main():\n    print(VALUE)\n",
    "core.py": 'VALUE = "genuine"\n',
    "sub/__init__.py": "",
    "sub/deep.py": "DEEP = True\n",
    "data.txt": "resource",
}


def _evil(case: str) -> str:
    return (
        f"import os\nopen(os.environ['TRUST_MARKER'], 'a').write('{case}\\n')\nVALUE = \"pwned\"\n"
    )


def _project(root: Path, name: str, version: str, package: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        PYPROJECT.format(name=name, version=version, package=package)
    )
    for rel, text in SOURCES.items():
        path = root / "src" / package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class World:
    """Everything the tests share: keys, wheels, the venv and the changed copies."""

    def __init__(self, root: Path, venv: Venv, wheels: dict[str, Path]) -> None:
        self.root = root
        self.venv = venv
        keys = root / "keys"
        release, release_pub = generate_key(keys, "release", passphrase="s3cret")  # noqa: S106
        rogue, _ = generate_key(keys, "rogue")
        self.keyring = root / "keyring"
        self.keyring.mkdir()
        shutil.copy(release_pub, self.keyring / "release.pem")
        key = load_private_key(release, "s3cret")
        self.unsigned = wheels[DIST]
        self.signed = sign_wheel(self.unsigned, key, _mkdir(root / "signed"))
        self.rogue_signed = sign_wheel(
            self.unsigned, load_private_key(rogue), _mkdir(root / "rogue")
        )
        self.other_signed = sign_wheel(wheels["trust-other"], key, _mkdir(root / "signed"))
        self.marker = root / "marker.txt"
        self.cases: dict[str, Path] = {}

    def copy(self, case: str) -> Path:
        """A copy of the pip installation, to change for ``case``."""
        site = self.root / "cases" / case
        for name in ("trustdemo", INFO):
            shutil.copytree(self.venv.site_packages / name, site / name, symlinks=True)
        self.cases[case] = site
        return site


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pip_install_compiled(venv: Venv, wheel: Path) -> None:
    """``pip install`` as users run it: bytecode compiled, RECORD listing it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv.python), "install", "--no-index",
         "--no-deps", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_REQUIRE_VIRTUALENV": "0"},
    )  # fmt: skip


@pytest.fixture(name="world", scope="module")
def fixture_world(
    tmp_path_factory: pytest.TempPathFactory,
    wheels: dict[str, Path],
    find_links: tuple[Path, ...],
) -> World:
    root = tmp_path_factory.mktemp("trust")
    projects = [
        _project(root / "projects" / "demo", DIST, "1.0", "trustdemo"),
        _project(root / "projects" / "other", "trust-other", "2.0", "trustother"),
    ]
    built = build_wheels(projects, root / "built")
    venv = create_venv(root / "venv", find_links, [wheels["plugyard"]])
    world = World(root, venv, built)
    _pip_install_compiled(venv, world.signed)
    _make_cases(world)
    return world


def _make_cases(world: World) -> None:
    world.cases["pip"] = world.venv.site_packages
    world.cases["installer"] = install_wheel(world.signed, world.root / "installer")
    world.cases["unsigned"] = install_wheel(world.unsigned, world.root / "unsigned")

    site = world.copy("modified-py")
    (site / "trustdemo" / "core.py").write_text(_evil("modified-py"))

    site = world.copy("added-py")
    (site / "trustdemo" / "sub" / "extra.py").write_text(_evil("added-py"))

    site = world.copy("planted-pyc")
    forge_pyc(site / "trustdemo" / "core.py", _evil("planted-pyc"))

    site = world.copy("entry-points")
    eps = site / INFO / "entry_points.txt"
    eps.write_text(eps.read_text().replace("trustdemo:main", "os:system"))

    site = world.copy("deleted")
    (site / "trustdemo" / "sub" / "deep.py").unlink()

    other = install_wheel(world.other_signed, world.root / "other")
    site = world.copy("copied-signature")
    shutil.copy(other / "trust_other-2.0.dist-info" / "plugyard-signature.json", site / SIG)

    site = world.copy("rogue-key")
    with_rogue = install_wheel(world.rogue_signed, world.root / "rogue-install")
    shutil.copy(with_rogue / SIG, site / SIG)

    site = world.copy("truncated")
    (site / SIG).write_bytes((site / SIG).read_bytes()[:200])

    site = world.copy("garbage")
    (site / SIG).write_bytes(b"\x89PNG\r\n\x1a\n not a signature")

    site = world.copy("editable")
    (site / INFO / "direct_url.json").write_text(
        json.dumps({"url": "file:///src/trust-demo", "dir_info": {"editable": True}})
    )


# What the manager does: verify, and import only what verified.
GATE = """
import importlib.resources, json, os, sys
from plugyard.trust import Keyring, VerifiedImporter, verify_distribution

config = json.loads(os.environ["TRUST_CONFIG"])
ring = Keyring.from_directory(config["keyring"])
outcomes = {}
for case, site in config["cases"].items():
    result = verify_distribution("trust-demo", ring, path=[site])
    outcome = {"ok": result.ok, "problems": [[p.kind.value, p.path] for p in result.problems]}
    if result.ok:
        with VerifiedImporter(config["cache"]) as importer:
            importer.add(result)
            import trustdemo, trustdemo.sub.deep
            outcome["value"] = trustdemo.VALUE
            outcome["file"] = trustdemo.__file__
            outcome["loader"] = type(trustdemo.__spec__.loader).__name__
            outcome["deep"] = trustdemo.sub.deep.DEEP
            outcome["resource"] = (
                importlib.resources.files("trustdemo").joinpath("data.txt").read_text()
            )
        for name in [m for m in sys.modules if m.partition(".")[0] == "trustdemo"]:
            del sys.modules[name]
    outcomes[case] = outcome
print(json.dumps(outcomes))
"""


@pytest.fixture(name="outcomes", scope="module")
def fixture_outcomes(world: World) -> dict[str, dict[str, Any]]:
    config = {
        "keyring": str(world.keyring),
        "cache": str(world.root / "code-cache"),
        "cases": {case: str(site) for case, site in world.cases.items()},
    }
    done = world.venv.run(
        GATE, env={"TRUST_CONFIG": json.dumps(config), "TRUST_MARKER": str(world.marker)}
    )
    outcomes: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return outcomes


@pytest.mark.parametrize("case", ["pip", "installer", "planted-pyc"])
def test_genuine_installs_verify_and_import_through_the_verified_importer(
    world: World, outcomes: dict[str, dict[str, Any]], case: str
) -> None:
    outcome = outcomes[case]

    assert outcome["ok"], outcome["problems"]
    assert outcome["value"] == "genuine"
    assert outcome["deep"] is True
    assert outcome["resource"] == "resource"
    assert outcome["loader"] == "_VerifiedLoader"
    assert outcome["file"] == str(world.cases[case] / "trustdemo" / "__init__.py")


def test_pip_really_wrote_bytecode_and_a_console_script(world: World) -> None:
    record = (world.venv.site_packages / INFO / "RECORD").read_text()

    assert "trustdemo/__pycache__/core." in record
    assert "/bin/trust-demo," in record
    assert (world.venv.path / "bin" / "trust-demo").exists()
    assert (world.venv.site_packages / SIG).exists()


@pytest.mark.parametrize(
    ("case", "kind", "path"),
    [
        ("modified-py", "hash-mismatch", "trustdemo/core.py"),
        ("added-py", "unlisted-file", "trustdemo/sub/extra.py"),
        ("entry-points", "hash-mismatch", f"{INFO}/entry_points.txt"),
        ("deleted", "missing-file", "trustdemo/sub/deep.py"),
        ("copied-signature", "name-mismatch", SIG),
        ("copied-signature", "version-mismatch", SIG),
        ("rogue-key", "unknown-key", SIG),
        ("truncated", "malformed-signature", SIG),
        ("garbage", "malformed-signature", SIG),
        ("unsigned", "missing-signature", SIG),
        ("editable", "editable-install", f"{INFO}/direct_url.json"),
    ],
)
def test_tampered_installs_are_refused_before_import(
    world: World, outcomes: dict[str, dict[str, Any]], case: str, kind: str, path: str
) -> None:
    outcome = outcomes[case]

    assert not outcome["ok"]
    assert [kind, path] in outcome["problems"]
    assert "value" not in outcome
    assert not world.marker.exists() or world.marker.read_text() == ""


def test_the_forged_pyc_would_run_under_the_default_import_system(world: World) -> None:
    """The planted-pyc case verifies and imports genuine code above; here is why that matters."""
    site = world.cases["planted-pyc"]
    probe_marker = world.root / "default-import-marker.txt"

    done = world.venv.run(
        f"import sys; sys.path.insert(0, {str(site)!r}); import trustdemo; print(trustdemo.VALUE)",
        env={"TRUST_MARKER": str(probe_marker)},
    )

    assert done.stdout.strip() == "pwned"
    assert probe_marker.read_text() == "planted-pyc\n"


def test_verification_here_agrees_with_the_venv(world: World) -> None:
    ring = Keyring.from_directory(world.keyring)

    assert verify_distribution(DIST, ring, path=[world.cases["pip"]]).ok
    assert not verify_distribution(DIST, ring, path=[world.cases["modified-py"]]).ok


def test_the_console_script_still_runs(world: World) -> None:
    done = subprocess.run(
        [str(world.venv.path / "bin" / "trust-demo")], capture_output=True, text=True, check=True
    )

    assert done.stdout.strip() == "genuine"
