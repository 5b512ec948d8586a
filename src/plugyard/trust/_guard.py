"""Keeping the verified importer the only finder of verified modules.

Putting a finder first on ``sys.meta_path`` once is not enough: code that
restores ``sys.meta_path`` from a snapshot, or inserts an import hook ahead
of it, would let the default ``PathFinder`` serve the next verified module,
``__pycache__`` and all. Three things keep the importer effective, each for
a way in:

- ``import`` statements (and ``__import__``) raise the ``import`` audit
  event before any finder is asked. An audit hook, which nothing can
  remove, puts the importer first again on the live ``sys.meta_path``
  whenever the module is one the importer claims.
- ``importlib.import_module`` raises no such event: while an importer is
  active, ``importlib.import_module`` is wrapped to do the same before it
  imports. And a finder ahead of the importer that searches the path (the
  default ``PathFinder``, and the import hooks built on it) asks the path
  entry finder of each directory: for the directories of verified modules,
  that finder is a :class:`Guard` that answers for verified names itself and
  passes the rest on, whatever called the import.
- The trust gate calls :meth:`VerifiedImporter.install` before each import
  of an entry point, which puts the importer first again.

A finder ahead of the importer that finds modules without the path, by name
and a location of its own, reached other than by an ``import`` statement or
``importlib.import_module`` (``importlib.util.find_spec``, or an
``import_module`` bound before plugyard wrapped it), is not covered;
``docs/security.md`` lists it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import pkgutil
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import importlib.machinery

    from ._importer import VerifiedImporter

_active: list[weakref.ref[VerifiedImporter]] = []
_lock = threading.Lock()
_hooked = False


def activate(importer: VerifiedImporter) -> None:
    """Keep ``importer`` first before every ``import`` of a name it claims."""
    global _hooked
    with _lock:
        if not any(ref() is importer for ref in _active):
            _active.append(weakref.ref(importer))
        if not _hooked:
            sys.addaudithook(_audit)
            importlib.import_module = _import_module
            _hooked = True


def deactivate(importer: VerifiedImporter) -> None:
    """Stop keeping ``importer`` first (it was uninstalled on purpose)."""
    with _lock:
        _active[:] = [ref for ref in _active if ref() not in (importer, None)]


def put_first(importer: VerifiedImporter) -> None:
    """Make ``importer`` the first finder on the live ``sys.meta_path``."""
    meta_path = sys.meta_path
    if meta_path and meta_path[0] is importer:
        return
    while importer in meta_path:
        meta_path.remove(importer)
    meta_path.insert(0, importer)


def _keep_first(name: str) -> None:
    for ref in _active:
        importer = ref()
        if importer is not None and importer.claims(name):
            put_first(importer)
            return


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "import" or not _active:
        return
    # An audit hook that raises would break the import it watches.
    with contextlib.suppress(Exception):
        _keep_first(args[0])


_original_import_module = importlib.import_module


@functools.wraps(_original_import_module)
def _import_module(name: str, package: str | None = None) -> ModuleType:
    if _active:
        with contextlib.suppress(ImportError, ValueError):  # a bad name: import_module says so
            _keep_first(importlib.util.resolve_name(name, package))
    return _original_import_module(name, package)


def watch(importer: VerifiedImporter, directories: Iterable[str]) -> None:
    """Guard the path entry finders of ``directories`` (and of ``sys.path`` entries naming them)."""
    wanted = set(directories)
    spellings = [e for e in sys.path if isinstance(e, str) and os.path.abspath(e or ".") in wanted]
    cache = sys.path_importer_cache
    for directory in [*wanted, *spellings]:
        finder = cache.get(directory)
        if isinstance(finder, Guard) and finder.importer is importer:
            continue
        cache[directory] = Guard(importer, finder, directory)


def _finder(directory: str) -> Any:
    """The path entry finder the path hooks make for ``directory``, as ``PathFinder`` would."""
    for hook in sys.path_hooks:
        try:
            return hook(directory)
        except ImportError:  # noqa: PERF203 - as PathFinder does: the next hook may take it
            continue
    return None


class Guard:
    """A path entry finder that answers for an importer's verified names and passes on the rest.

    Args:
        importer: The verified importer (held weakly).
        base: The path entry finder it stands in front of; ``None`` to make
            it from the path hooks, as ``PathFinder`` would, when first needed.
        directory: The directory it finds modules in.
    """

    def __init__(self, importer: VerifiedImporter, base: Any, directory: str) -> None:
        self._importer = weakref.ref(importer)
        self._base = base
        self._resolved = base is not None
        self.path = directory

    @property
    def base(self) -> Any:
        """The path entry finder behind this one, if the path hooks make one."""
        if not self._resolved:
            self._base = _finder(self.path)
            self._resolved = True
        return self._base

    @property
    def importer(self) -> VerifiedImporter | None:
        """The importer it answers for, while it lives."""
        return self._importer()

    def find_spec(
        self, fullname: str, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The verified module's spec from the importer; otherwise what the base finds.

        Raises:
            SignatureError: as :meth:`VerifiedImporter.find_spec`.
        """
        importer = self._importer()
        if importer is not None and importer.active and importer.claims(fullname):
            parent = fullname.rpartition(".")[0]
            search = getattr(sys.modules.get(parent), "__path__", None) if parent else None
            return importer.find_spec(fullname, search, target)
        base = self.base
        if base is None:
            return None
        spec: importlib.machinery.ModuleSpec | None = base.find_spec(fullname, target)
        return spec

    def invalidate_caches(self) -> None:
        """Pass on to the base finder."""
        invalidate = getattr(self.base, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()

    def iter_modules(self, prefix: str = "") -> Iterator[tuple[str, bool]]:
        """What ``pkgutil.iter_modules`` lists through the base finder."""
        if self.base is None:
            return iter(())
        found: Iterator[tuple[str, bool]] = pkgutil.iter_importer_modules(  # type: ignore[attr-defined]
            self.base, prefix
        )
        return found

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet, or not ours to pass on
            raise AttributeError(name)
        return getattr(self.base, name)
