"""Real wheels in real virtual environments, for the slow integration tests.

Three steps, each a plain function so a test can use one alone:

- :func:`build_wheels` builds plugyard or a plugin project into a wheel with
  ``pip wheel --no-build-isolation`` (so hatchling must be installed here).
- :func:`fill_wheelhouse` puts wheels of plugyard's runtime dependencies (as
  its wheel declares them, at the versions installed here, see
  :func:`installed_requirements`) in a directory, fetching only those missing.
- :func:`create_venv` makes a virtual environment without pip and installs
  into it with this interpreter's pip (``pip --python``), from local wheels
  only: no network, and no second or so per venv spent on ``ensurepip``.

The fixtures in ``conftest.py`` tie them together once per session.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import attrs
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib_plugins"

# Quiet, non-interactive pip that ignores the user's own "require a venv".
_PIP_ENV = {
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_REQUIRE_VIRTUALENV": "0",
}


def contrib_projects() -> list[Path]:
    """The plugin projects under ``contrib_plugins/``, sorted by directory name."""
    return sorted(p.parent for p in CONTRIB.glob("*/pyproject.toml"))


class CommandError(subprocess.CalledProcessError):
    """A command failed; unlike its base, the message shows what it printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def _run(
    args: Sequence[str | Path],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text.

    Raises:
        CommandError: it exited non-zero and ``check`` is true.
    """
    args = [str(a) for a in args]
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandError(result.returncode, args, result.stdout, result.stderr)
    return result


def _pip(*args: str | Path) -> None:
    _run([sys.executable, "-m", "pip", *args], env=_PIP_ENV)


def build_wheels(projects: Iterable[Path], dest: Path) -> dict[str, Path]:
    """Build a wheel of each project into ``dest``, in one pip run.

    Args:
        projects: Directories with a ``pyproject.toml``.
        dest: Where the wheels go; created if missing. A wheel of the same
            file name already there is replaced.

    Returns:
        Each built wheel by its canonical distribution name.
    """
    dest.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    # A fresh directory tells which wheels this call built.
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp, *projects)
        for wheel in Path(tmp).glob("*.whl"):
            built[parse_wheel_filename(wheel.name)[0]] = wheel.replace(dest / wheel.name)
    return built


def build_with_hatchling(project: Path, dest: Path) -> Path:
    """Build one hatchling project into a wheel in ``dest``, in this process (no pip run).

    Returns:
        The wheel.
    """
    from hatchling.builders.wheel import WheelBuilder

    dest.mkdir(parents=True, exist_ok=True)
    (wheel,) = WheelBuilder(str(project)).build(directory=str(dest), versions=["standard"])
    return Path(wheel)


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's metadata, those of its extras too."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.BytesParser().parsebytes(archive.read(name))
    return metadata.get_all("Requires-Dist") or []


def installed_requirements(requirements: Iterable[str]) -> list[str]:
    """Pin ``requirements`` and all they need to the versions installed here.

    Follows requirements transitively, with markers evaluated for this
    interpreter and no extras (so a wheel's extras are left out).

    Returns:
        ``name==version`` strings, sorted by name.

    Raises:
        LookupError: a requirement is not installed here, e.g. one just added
            to ``pyproject.toml``: reinstall the test environment.
    """
    pins: dict[NormalizedName, str] = {}
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        name = canonicalize_name(req.name)
        if name in pins or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            pins[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise LookupError(
                f"{req} is needed but not installed in {sys.prefix}; reinstall the test "
                "environment (pip install -e '.[test]')"
            ) from None
        todo.extend(importlib.metadata.requires(name) or ())
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _usable_wheels(directory: Path) -> set[tuple[NormalizedName, str]]:
    """``(name, version)`` of the wheels in ``directory`` this interpreter can install."""
    supported = set(sys_tags())
    found = set()
    for wheel in directory.glob("*.whl"):
        name, version, _, tags = parse_wheel_filename(wheel.name)
        if tags & supported:
            found.add((name, str(version)))
    return found


def fill_wheelhouse(dest: Path, requirements: Iterable[str]) -> Path:
    """Make sure ``dest`` has a wheel for each pinned requirement; returns ``dest``.

    Only the missing ones are fetched (``pip wheel``, so through pip's index
    and cache), so a persistent ``dest`` needs the network once. Safe to run
    from two test sessions at once: wheels arrive by atomic rename.

    Args:
        dest: The wheelhouse directory; created if missing.
        requirements: ``name==version`` strings.
    """
    dest.mkdir(parents=True, exist_ok=True)
    have = _usable_wheels(dest)
    missing = []
    for line in requirements:
        req = Requirement(line)
        (spec,) = req.specifier
        if (canonicalize_name(req.name), spec.version) not in have:
            missing.append(line)
    if missing:
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            _pip("wheel", "--no-deps", "--wheel-dir", tmp, *missing)
            for wheel in Path(tmp).glob("*.whl"):
                wheel.replace(dest / wheel.name)
    return dest


@attrs.frozen
class Venv:
    """A virtual environment made by :func:`create_venv`.

    Attributes:
        path: Its root directory.
        python: Its interpreter.
        site_packages: Where it installs pure-Python packages.
        find_links: The wheel directories :meth:`pip_install` resolves from.
    """

    path: Path
    python: Path
    site_packages: Path
    find_links: tuple[Path, ...]

    def run(
        self, code: str, *, check: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -I -c code`` in this environment and capture its output.

        ``-I`` keeps the caller's ``PYTHONPATH``, user site-packages and current
        directory out, so only what is installed here can be imported.

        Args:
            code: The program.
            check: Raise :class:`CommandError` (a
                :class:`subprocess.CalledProcessError` whose message shows the
                child's output and traceback) on a non-zero exit.
            env: Variables to add to the inherited environment.
        """
        return _run([self.python, "-I", "-c", code], check=check, env=env, cwd=self.path)

    def pip_install(self, *wheels: str | Path) -> None:
        """Install wheels (or requirement strings) with their dependencies, offline.

        Dependencies are resolved from :attr:`find_links` only.
        """
        links = [arg for link in self.find_links for arg in ("--find-links", str(link))]
        _pip("--python", self.python, "install", "--no-index", "--no-compile", *links, *wheels)


class MakeVenv(Protocol):
    """The ``make_venv`` fixture: a fresh venv with plugyard and ``install`` in it.

    Each item of ``install`` is a wheel path, the name of a distribution the
    ``wheels`` fixture built (``"plugyard-demo-stats"``), or a requirement
    string resolved from the same wheel directories.
    """

    def __call__(self, *install: str | Path) -> Venv: ...


def create_venv(path: Path, find_links: Iterable[Path], install: Iterable[str | Path] = ()) -> Venv:
    """Create a virtual environment at ``path`` and install ``install`` into it.

    The environment has no pip of its own and does not see this interpreter's
    site-packages.

    Args:
        path: Where to create it: a missing or empty directory.
        find_links: Directories of wheels to install from (no index is used).
        install: Wheels or requirement strings to install right away.
    """
    _run([sys.executable, "-m", "venv", "--without-pip", path])
    scripts = "Scripts" if sys.platform == "win32" else "bin"
    python = path / scripts / ("python.exe" if sys.platform == "win32" else "python")
    site_packages = _run(
        [python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    ).stdout.strip()
    venv = Venv(path, python, Path(site_packages), tuple(find_links))
    wheels = list(install)
    if wheels:
        venv.pip_install(*wheels)
    return venv
