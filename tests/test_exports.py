"""The public surface: __all__ lists exactly the public names."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest

import plugyard
import plugyard.exceptions


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (what it imports is then its own)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def _public_names(module: object) -> set[str]:
    """Names a module binds that are neither private, modules, nor typing helpers."""
    imported = ("typing", "collections.abc", "__future__")
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name != "TYPE_CHECKING"
        and not isinstance(value, type(importlib))
        and getattr(value, "__module__", type(value).__module__) not in imported
    }


def test_exceptions_all_equals_public_names() -> None:
    assert set(plugyard.exceptions.__all__) == _public_names(plugyard.exceptions)


def test_top_level_all_equals_what_it_serves() -> None:
    """Every name in ``plugyard.__all__`` resolves, and nothing else public is bound."""
    code = (
        "import plugyard, types\n"
        "from plugyard import *\n"
        "print(sorted(n for n, v in vars(plugyard).items() if not n.startswith('_')"
        " and n != 'TYPE_CHECKING' and type(v).__module__ != '__future__'"
        " and not isinstance(v, types.ModuleType)))\n"
    )
    done = _python(code)
    assert done.stdout.strip() == str(sorted(set(plugyard.__all__) - {"__version__"}))
    assert set(dir(plugyard)) >= set(plugyard.__all__)


def test_import_plugyard_imports_none_of_its_modules() -> None:
    """``import plugyard`` is nearly free: every public name but the errors comes when used."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import plugyard\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = _python(code)
    new = ast.literal_eval(done.stdout.strip())
    assert [m for m in new if m.split(".")[0] == "plugyard"] == [
        "plugyard",
        "plugyard._errorbase",
        "plugyard._public",
        "plugyard._sandbox_errors",
        "plugyard.exceptions",
    ]
    # importlib (for the lazy imports) and what it needs; nothing heavier.
    assert {m for m in new if m.split(".")[0] != "plugyard"} <= {
        "__future__",
        "importlib",
        "importlib._bootstrap",
        "importlib._bootstrap_external",
        "warnings",
    }


def test_submodules_are_reachable_as_attributes() -> None:
    code = "import plugyard\nprint(plugyard.exceptions.__name__, plugyard.trust.__name__)\n"
    done = _python(code)
    assert done.stdout.split() == ["plugyard.exceptions", "plugyard.trust"]


def test_version_comes_from_installed_metadata() -> None:
    assert plugyard.__version__ == importlib.metadata.version("plugyard")


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        plugyard.nope  # noqa: B018


def test_public_classes_print_as_plugyard() -> None:
    for name in plugyard.__all__:
        value = getattr(plugyard, name)
        if isinstance(value, type):
            assert value.__module__ == "plugyard", name


def test_import_leaves_out_what_only_some_features_need() -> None:
    """asyncio, msgpack, cryptography and packaging's parsers load only when used."""
    code = (
        "import sys, plugyard\n"
        "heavy = ['asyncio', 'msgpack', 'cryptography', 'tempfile',"
        " 'packaging.specifiers', 'packaging.requirements', 'stevedore', 'prometheus_client']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = _python(code)
    assert done.stdout.strip() == "[]"


def test_every_exception_is_importable_from_the_top_level() -> None:
    """Users write ``except plugyard.PluginError``; every error is there, the same class."""
    for name in plugyard.exceptions.__all__:
        assert getattr(plugyard, name) is getattr(plugyard.exceptions, name), name
        assert name in plugyard.__all__
