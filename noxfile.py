"""Development sessions: tests, lint, typecheck, docs, demo and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# The Python plugin projects; contrib_plugins/node-wordfreq is a Node.js one.
CONTRIB = sorted(str(p.parent) for p in Path("contrib_plugins").glob("*/pyproject.toml"))
NODE_PLUGIN = "contrib_plugins/node-wordfreq"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite, slow integration tests included, with coverage."""
    session.install("-e", ".[test]")
    # The Node.js plugin's tests run it from its committed lockfile.
    session.run("npm", "ci", "--silent", "--prefix", NODE_PLUGIN, external=True)
    # coverage starts before pytest, which imports plugyard early through the
    # pytest11 entry point of plugyard.testing; pytest-cov would start too late.
    # The Python processes the tests start write data files of their own
    # (pyproject.toml's [tool.coverage.run]): combined before the report.
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", "--fail-under=90")


#: The oldest and the newest stevedore 5.x that Python 3.11 installs (5.10 needs 3.11).
STEVEDORE = ["5.0.0", "5.10.0"]


@nox.session(python=PYTHON)
@nox.parametrize("stevedore", STEVEDORE)
def stevedore(session: nox.Session, stevedore: str) -> None:
    """Test plugyard.stevedore, stevedore's own manager tests with it, and the peer checks."""
    session.install("-e", ".[test]", f"stevedore=={stevedore}")
    session.run(
        "pytest",
        "tests/test_stevedore.py",
        "tests/test_stevedore_suite.py",
        "tests/test_peers.py",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check src, tests and this file with mypy in strict mode."""
    session.install("-e", ".[test]", "mypy", "nox")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation; any warning fails the build."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(python=PYTHON)
def contrib(session: nox.Session) -> None:
    """Build the contrib plugins into wheels and test them installed in fresh venvs."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/test_contrib_wheels.py",
        "tests/test_installed_plugins.py",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark plugyard against stevedore, pluggy and importlib.metadata (issue 14's run).

    ``nox -s bench -- --quick`` checks that everything runs; ``nox -s bench -- --only
    scaling`` runs the scaling rows alone. stevedore turns its cache off when the
    interpreter's path starts with /tmp, so this session refuses to run from an
    environment there: ``nox --envdir ~/.cache/plugyard-nox -s bench`` puts it elsewhere.
    """
    location = str(getattr(session.virtualenv, "location", ""))
    if location[:4] == "/tmp" and os.environ.get("PLUGYARD_BENCH_ANY_CACHE") != "1":  # noqa: S108
        session.error(
            f"this session's environment is under /tmp ({location}), where stevedore turns "
            "its cache off and every comparison with it would handicap it; run "
            "`nox --envdir ~/.cache/plugyard-nox -s bench` (any directory not under /tmp)"
        )
    # A regular (not editable) install, so import times are what users see
    # (stevedore, installer and cryptography come with it); pluggy, the other peer.
    session.install(".", "pluggy>=1.5", "installer>=0.7")
    session.run("python", "benchmarks/run.py", *session.posargs)
    if not session.posargs:
        session.run("python", "benchmarks/reload.py")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Build the contrib plugins; list, order, run, sign, verify, attack, hot-reload, sandbox."""
    session.install(".")
    wheels = Path(session.create_tmp()) / "wheels"
    session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), *CONTRIB)
    session.install("--no-compile", *sorted(str(w) for w in wheels.glob("*.whl")))
    session.run("npm", "ci", "--silent", "--prefix", NODE_PLUGIN, external=True)
    session.run("python", "contrib_plugins/demo.py", str(wheels), session.create_tmp())
