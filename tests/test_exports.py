"""The public surface: __all__ lists exactly the public names."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import plugyard
import plugyard.exceptions


@pytest.mark.parametrize("module", [plugyard, plugyard.exceptions])
def test_all_equals_public_names(module: object) -> None:
    imported = ("typing", "collections.abc", "__future__")
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, type(importlib))
        and getattr(value, "__module__", type(value).__module__) not in imported
    }
    exported = set(module.__all__)  # type: ignore[attr-defined]
    lazy = {"__version__", "to_prometheus"}  # made on first use by the module's __getattr__
    assert exported - lazy == public
    assert all(getattr(module, name) is not None for name in exported & lazy)


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
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_exception_is_importable_from_the_top_level() -> None:
    """Users write ``except plugyard.PluginError``; every error is there, the same class."""
    for name in plugyard.exceptions.__all__:
        assert getattr(plugyard, name) is getattr(plugyard.exceptions, name), name
        assert name in plugyard.__all__
