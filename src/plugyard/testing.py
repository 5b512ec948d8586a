"""Fixtures for testing plugins, registered with pytest as the ``plugyard`` plugin.

Installing plugyard makes these fixtures available in every pytest run:

``plugyard_registry``
    A fresh :class:`~plugyard.Registry` with a group no other test uses.
``plugyard_manager``
    A :class:`~plugyard.PluginManager` over ``plugyard_registry`` that sees
    no installed plugins, shut down after the test.
``make_distribution``
    A factory for throwaway installed distributions: it writes a
    ``.dist-info`` directory (METADATA, entry_points.txt, RECORD) and the
    given source files into a temporary site directory that is put on
    ``sys.path`` for the test, so a manager finds the entry points and
    imports the modules as if the distribution had been installed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import itertools
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import pytest

from ._manager import PluginManager
from ._registry import Registry

__all__ = ["MakeDistribution", "write_distribution"]

_groups = itertools.count()


class MakeDistribution(Protocol):
    """The type of the ``make_distribution`` fixture."""

    def __call__(
        self,
        name: str,
        version: str = "1.0",
        *,
        entry_points: Mapping[str, Mapping[str, str]] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> Path:
        """Install a distribution into the test's site directory; return its dist-info."""
        ...


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def write_distribution(
    site: Path,
    name: str,
    version: str = "1.0",
    *,
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write a distribution into ``site`` as an installer would; return its dist-info.

    Args:
        site: The site directory (created if missing).
        name: The distribution's name.
        version: Its version.
        entry_points: ``{group: {name: value}}``.
        files: Source files to install, ``{relative path: text}``, e.g.
            ``{"myplugin/__init__.py": "..."}``.
    """
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    dist_info = site / f"{stem}.dist-info"
    dist_info.mkdir(parents=True)
    written: dict[str, bytes] = {}
    for relative, text in (files or {}).items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written[relative] = text.encode()
    meta = {"METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n"}
    if entry_points:
        meta["entry_points.txt"] = "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
            for group, eps in entry_points.items()
        )
    for filename, text in meta.items():
        (dist_info / filename).write_text(text, encoding="utf-8")
        written[f"{dist_info.name}/{filename}"] = text.encode()
    rows = [f"{path},{_record_hash(data)},{len(data)}" for path, data in written.items()]
    rows.append(f"{dist_info.name}/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n", encoding="utf-8")
    importlib.invalidate_caches()
    return dist_info


@pytest.fixture
def plugyard_registry() -> Registry:
    """A fresh registry with a group no other test uses."""
    return Registry(f"plugyard.testing.group{next(_groups)}")


@pytest.fixture
def plugyard_manager(plugyard_registry: Registry) -> Iterator[PluginManager]:
    """A manager over ``plugyard_registry`` that sees no installed plugins."""
    with PluginManager(plugyard_registry, entry_points=False) as manager:
        yield manager


@pytest.fixture
def make_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeDistribution]:
    """Install throwaway distributions into a site directory on ``sys.path``.

    Modules the distributions provide are removed from ``sys.modules`` after
    the test, so the next test imports its own.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)

    def make(
        name: str,
        version: str = "1.0",
        *,
        entry_points: Mapping[str, Mapping[str, str]] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> Path:
        return write_distribution(site, name, version, entry_points=entry_points, files=files)

    yield make
    for module in set(sys.modules) - before:
        file = getattr(sys.modules[module], "__file__", None) or ""
        if file.startswith(str(site)):
            del sys.modules[module]
