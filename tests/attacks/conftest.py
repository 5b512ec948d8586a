"""Fixtures of the attack suite: the attack projects built, signed and installed.

The wheels are built with hatchling once per session, and signed once, with
the ``plugyard keygen`` and ``plugyard sign`` commands. Each test module
makes the virtual environments it attacks (pip, plugyard's wheel and its
dependencies from the session's wheelhouse), so that one module's attacks
never leak into another's.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from attacks.attackkit import (
    PROJECTS,
    RELEASE_SIGNED,
    Env,
    compile_extension,
    install_with_installer,
    plugyard_cli,
)
from wheelhouse import build_wheels, create_venv


@attrs.frozen
class Keys:
    """The signing keys and the host's keyring directory.

    Attributes:
        release: The release key's private key file.
        vendor: A second signer's private key file (``vendor.pem``).
        vendor_public: Its public key file.
        ring: A keyring directory trusting the release key only.
    """

    release: Path
    vendor: Path
    vendor_public: Path
    ring: Path


@attrs.frozen
class Wheels:
    """The attack wheels by distribution name (signed ones signed), and the evil library.

    Attributes:
        by_name: Each project's wheel, signed as :data:`RELEASE_SIGNED` says.
        unsigned: Each project's wheel as built.
        evil_library: A shared library that could stand in for ``atk-lib``'s.
    """

    by_name: dict[str, Path]
    unsigned: dict[str, Path]
    evil_library: Path | None


@pytest.fixture(name="keys", scope="session")
def fixture_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("attack-keys")
    plugyard_cli("keygen", "--out", root / "keys", "--id", "release")
    plugyard_cli("keygen", "--out", root / "keys", "--id", "vendor")
    ring = root / "ring"
    ring.mkdir()
    shutil.copy(root / "keys" / "release.pub.pem", ring / "release.pem")
    return Keys(
        root / "keys" / "release.pem",
        root / "keys" / "vendor.pem",
        root / "keys" / "vendor.pub.pem",
        ring,
    )


@pytest.fixture(name="attack_wheels", scope="session")
def fixture_attack_wheels(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Wheels:
    root = tmp_path_factory.mktemp("attack-projects")
    projects = {name: project.write(root / "src") for name, project in PROJECTS.items()}
    evil_library = None
    if shutil.which("cc") or shutil.which("gcc"):
        evil_library = compile_extension(projects["atk-lib"], root / "built-c")
    else:
        del projects["atk-lib"]
    built = build_wheels(projects.values(), root / "built")
    signed_dir = root / "signed"
    signed_dir.mkdir()
    by_name = dict(built)
    for name, key in [*((n, keys.release) for n in RELEASE_SIGNED), ("atk-vendor", keys.vendor)]:
        if name not in built:
            continue
        plugyard_cli("sign", built[name], "--key", key, "--out", f"{signed_dir}/")
        by_name[name] = signed_dir / built[name].name
    return Wheels(by_name, dict(built), evil_library)


MakeEnv = Callable[..., Env]


@pytest.fixture(name="make_env", scope="module")
def fixture_make_env(
    tmp_path_factory: pytest.TempPathFactory,
    wheels: dict[str, Path],
    find_links: tuple[Path, ...],
    attack_wheels: Wheels,
    keys: Keys,
) -> MakeEnv:
    """Make a venv with plugyard and the named attack distributions (see ``Env``).

    ``installer=[...]`` names distributions installed with the ``installer``
    library instead of pip; a :class:`Path` is a wheel to install as it is.
    """
    numbers = itertools.count()

    def make_env(*names: str | Path, installer: tuple[str | Path, ...] = ()) -> Env:
        def wheel(item: str | Path) -> Path:
            return item if isinstance(item, Path) else attack_wheels.by_name[item]

        root = tmp_path_factory.mktemp(f"attack-env{next(numbers)}")
        venv = create_venv(root / "venv", find_links, [wheels["plugyard"], *map(wheel, names)])
        for item in installer:
            install_with_installer(venv, wheel(item))
        return Env(venv, keys.ring, root)

    return make_env


@pytest.fixture(name="marker")
def fixture_marker(tmp_path: Path) -> Path:
    """The file planted code would write; the test checks it was never made."""
    return tmp_path / "attacker-code-ran"
