"""Which modules a manifest's files are, and which directories a distribution owns."""

from __future__ import annotations

import functools
import importlib.machinery
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from .._value import Value

#: Suffixes of files the import system (or ``site``) may run.
IMPORTABLE_SUFFIXES = tuple(
    sorted(
        {*importlib.machinery.all_suffixes(), ".py", ".pyc", ".pyo", ".pyw", ".so", ".pyd", ".pth"}
    )
)
#: Suffixes of the files the path-based finder imports a module from, in its order.
MODULE_SUFFIXES = tuple(importlib.machinery.all_suffixes())
#: Modules that ``site`` imports at every interpreter start-up, before any verification.
STARTUP_MODULES = frozenset({"sitecustomize", "usercustomize"})


class ModuleFile(NamedTuple):
    """One importable module of a distribution (a tuple: one is made per module, often).

    Attributes:
        name: The module's dotted name.
        path: Its file, relative to the site directory.
        is_package: Whether the file is a package's ``__init__``.
        is_extension: Whether it is a compiled extension module.
    """

    name: str
    path: str
    is_package: bool
    is_extension: bool

    @property
    def rank(self) -> int:
        """The import system's preference: packages, then extensions, then sources."""
        return 2 * self.is_package + self.is_extension


class Layout(Value):
    """The importable shape of a distribution.

    Attributes:
        modules: Every module by dotted name.
        namespaces: Dotted names of directories that are parents of modules
            but have no ``__init__``: implicit namespace packages.
        roots: Directories (relative to the site directory) of the outermost
            regular packages: everything below them belongs to the distribution.
    """

    __slots__ = ("modules", "namespaces", "roots")

    modules: dict[str, ModuleFile]
    namespaces: frozenset[str]
    roots: tuple[str, ...]

    def __init__(
        self, modules: dict[str, ModuleFile], namespaces: frozenset[str], roots: tuple[str, ...]
    ) -> None:
        object.__setattr__(self, "modules", modules)
        object.__setattr__(self, "namespaces", namespaces)
        object.__setattr__(self, "roots", roots)

    @property
    def loose_modules(self) -> tuple[ModuleFile, ...]:
        """Modules outside every root: top-level modules and namespace portions."""
        return tuple(m for m in self.modules.values() if _parent(m.name) not in self.modules)


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


_MODULE_ENDINGS = (".py", *importlib.machinery.EXTENSION_SUFFIXES)
_new = tuple.__new__


def module_for(path: str) -> ModuleFile | None:
    """The module a site-relative file path is, if the import system can import it."""
    if not path.endswith(_MODULE_ENDINGS):
        return None  # most files of a distribution that are no module stop here
    directory, slash, filename = path.rpartition("/")
    if filename.endswith(".py"):
        stem, is_extension = filename[:-3], False
    else:
        suffix = next(
            (s for s in importlib.machinery.EXTENSION_SUFFIXES if filename.endswith(s)), None
        )
        if suffix is None:
            return None
        stem, is_extension = filename[: -len(suffix)], True
    if not stem.isidentifier():
        return None
    # tuple.__new__: the named tuple's own __new__ is a Python function.
    if not slash:
        if stem == "__init__":
            return None
        return _new(ModuleFile, (stem, path, False, is_extension))
    package = _dotted(directory)
    if package is None:
        return None
    if stem == "__init__":
        return _new(ModuleFile, (package, path, True, is_extension))
    return _new(ModuleFile, (f"{package}.{stem}", path, False, is_extension))


@functools.lru_cache(maxsize=1024)
def _dotted(directory: str) -> str | None:
    """``a/b`` as ``a.b``, or ``None`` if a component is not an identifier."""
    parts = directory.split("/")
    return ".".join(parts) if all(part.isidentifier() for part in parts) else None


def layout_of(paths: Iterable[str]) -> Layout:
    """The layout of a distribution whose files land at ``paths`` (site-relative)."""
    modules: dict[str, ModuleFile] = {}
    for path in paths:
        module = module_for(path)
        if module is None:
            continue
        old = modules.get(module.name)
        if old is None or module.rank > old.rank:
            modules[module.name] = module
    packages = {name for name, module in modules.items() if module.is_package}
    namespaces = set()
    for name in modules:
        parent = name.rpartition(".")[0]
        while parent and parent not in packages:
            namespaces.add(parent)
            parent = parent.rpartition(".")[0]
    roots = tuple(
        sorted(
            name.replace(".", "/") for name in packages if not _has_package_parent(name, packages)
        )
    )
    return Layout(modules, frozenset(namespaces), roots)


def _has_package_parent(name: str, packages: set[str]) -> bool:
    parent = name.rpartition(".")[0]
    while parent:
        if parent in packages:
            return True
        parent = parent.rpartition(".")[0]
    return False


def is_library_dir(directory: str) -> bool:
    """Whether a site-relative directory holds vendored shared libraries.

    ``<name>.libs`` beside the packages is where auditwheel and delvewheel put
    them, ``<package>/.dylibs`` where delocate does; an extension module
    loads them by path, whatever their suffix.
    """
    last = directory.rpartition("/")[2]
    return last.endswith(".libs") or last == ".dylibs"


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def shadows(directory: str, last: str) -> Iterator[str]:
    """Files in ``directory`` that the import system would import as the module ``last``.

    A module file (``last.py``, ``last.pyc``, an extension) or a regular
    package (``last/__init__.*``) found in any directory searched makes the
    import system ignore the namespace portions it found: any such file
    shadows a namespace package named ``last``.
    """
    prefix = f"{directory}{os.sep}{last}"
    for suffix in MODULE_SUFFIXES:
        if _is_file(prefix + suffix):
            yield prefix + suffix
    if os.path.isdir(prefix):
        for suffix in MODULE_SUFFIXES:
            init = f"{prefix}{os.sep}__init__{suffix}"
            if _is_file(init):
                yield init


def search_dirs(entries: Sequence[str]) -> list[str]:
    """Import path entries as the path-based finder searches them: ``""`` is the cwd."""
    seen: dict[str, None] = {}
    for entry in entries:
        if isinstance(entry, str):
            seen.setdefault(os.path.abspath(entry or "."), None)
    return list(seen)
