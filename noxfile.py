"""Development sessions: tests, lint, typecheck, docs, demo and benchmarks."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite, slow integration tests included, with coverage."""
    session.install("-e", ".[test]")
    # coverage starts before pytest, which imports plugyard early through the
    # pytest11 entry point of plugyard.testing; pytest-cov would start too late.
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report", "--fail-under=90")


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
    """Benchmark plugyard against stevedore, pluggy and importlib.metadata.

    ``nox -s bench -- --only scaling`` runs the scaling rows alone.
    """
    # A regular (not editable) install, so import times are what users see;
    # the peers, and installer, which the signing rows install their wheel with.
    session.install(".", "stevedore>=5.0", "pluggy>=1.5", "installer>=0.7")
    session.run("python", "benchmarks/run.py", *session.posargs)
    if not session.posargs:
        session.run("python", "benchmarks/reload.py")


CONTRIB = sorted(str(p) for p in Path("contrib_plugins").iterdir() if p.is_dir())


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Install the contrib plugins, then list, graph and run them with the CLI."""
    session.install(".")
    session.install(*CONTRIB)
    group = ["--group", "plugyard.demo"]
    session.log("The installed plugins, found through entry points; nothing is imported yet:")
    session.run("plugyard", "list", *group)
    session.log("Their dependencies and the order they are set up in:")
    session.run("plugyard", "graph", *group)
    session.log("One plugin at the end of the chain, run with its dependencies:")
    session.run("plugyard", "run", "report", "The quick brown fox jumps over the lazy dog", *group)
    session.run("plugyard", "run", "shout", "plugins,   verified and ordered", *group)
