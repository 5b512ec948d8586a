"""What lies in an installed distribution's directories besides its signed files.

Everything here compares the directories on disk with the signed manifest
(``files``, keyed by site-relative path) and yields a :class:`Problem` for
each file that would be imported, executed or loaded without being signed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ._layout import (
    IMPORTABLE_SUFFIXES,
    STARTUP_MODULES,
    Layout,
    is_library_dir,
    search_dirs,
    shadows,
)
from ._manifest import SIGNATURE_FILE, ManifestFile
from ._problems import Problem, ProblemKind

#: Files installers add to a dist-info directory, which no signature can cover.
INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD", SIGNATURE_FILE})

Files = Mapping[str, ManifestFile]


def is_bytecode_of_listed(rel: str, files: Files) -> bool:
    """Whether ``rel`` is ``<dir>/__pycache__/<stem>.<tag>.pyc`` of a listed ``<dir>/<stem>.py``."""
    if not rel.endswith(".pyc"):
        return False
    head, _, name = rel.rpartition("/")
    if not (head == "__pycache__" or head.endswith("/__pycache__")):
        return False
    package = head.removesuffix("__pycache__")
    return f"{package}{name.partition('.')[0]}.py" in files


def walk(site: Path, top: str, *, skip: str = "") -> tuple[list[str], list[str]]:
    """Site-relative paths of the files below ``site/top``, and of the symlinks to directories.

    Symlinks to directories are not walked into, nor directories named
    ``skip``; an unreadable directory is skipped. ``top`` is a normalized
    ``/``-separated relative path. One ``scandir`` per directory and no
    other system call for regular entries.
    """
    base = f"{site}{os.sep}"
    found: list[str] = []
    linked: list[str] = []
    pending = [top]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(base + rel_dir) as it:
                entries = list(it)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                found.append(f"{rel_dir}/{entry.name}")
                continue
            try:
                is_link = entry.is_symlink()
            except OSError:
                is_link = False
            if is_link:
                linked.append(f"{rel_dir}/{entry.name}")
            elif entry.name != skip:
                subdirs.append(f"{rel_dir}/{entry.name}")
        pending.extend(reversed(subdirs))  # depth first, in directory order, as os.walk
    return found, linked


def scan_dist_info(site: Path, info: str, files: Files) -> Iterator[Problem]:
    """Unsigned files in the dist-info directory.

    An added ``entry_points.txt`` would declare entry points the signer never did.
    """
    found, linked = walk(site, info)
    for rel in (*found, *linked):
        if rel in files or rel.partition("/")[2] in INSTALLER_FILES:
            continue
        yield Problem(
            ProblemKind.UNLISTED_FILE, "is in the dist-info directory but not signed", rel
        )


def scan_packages(site: Path, files: Files, layout: Layout) -> Iterator[Problem]:
    """Unsigned code inside the distribution's own directories, and beside its loose modules.

    ``__pycache__`` directories are not looked into: neither the verified
    importer nor the default import system runs bytecode from there without
    a listed source beside it, and the verified importer never reads it.
    """
    for root in layout.roots:
        found, linked = walk(site, root, skip="__pycache__")
        for rel in linked:
            yield Problem(
                ProblemKind.UNLISTED_FILE,
                "is a symbolic link to a directory inside the package; no installer makes "
                "one and the signed manifest does not list what it leads to",
                rel,
            )
        for rel in found:
            if rel in files:
                continue
            if not rel.endswith(IMPORTABLE_SUFFIXES) and not is_library_dir(rel.rpartition("/")[0]):
                continue
            yield Problem(
                ProblemKind.UNLISTED_FILE,
                "is an importable file in the package that the signed manifest does not list",
                rel,
            )
    # Outside the roots, other distributions may share a directory (namespace
    # packages, site-packages itself); look only for files that would shadow
    # or replace this distribution's modules.
    site_text = str(site)
    for module in layout.loose_modules:
        if module.is_package:
            continue
        base = module.path.rpartition("/")[0]
        stem = module.name.rpartition(".")[2]
        directory = os.path.join(site_text, *base.split("/")) if base else site_text
        prefix = f"{site_text}{os.sep}"
        for shadow in shadows(directory, stem):
            candidate = shadow[len(prefix) :].replace(os.sep, "/")
            if candidate not in files:
                yield Problem(
                    ProblemKind.UNLISTED_FILE,
                    f"would be imported instead of the module {module.name!r}",
                    candidate,
                )


def scan_libraries(site: Path, files: Files) -> Iterator[Problem]:
    """Unsigned files among the shared libraries the distribution vendors at the top level.

    An extension module loads them by name whatever their suffix, so every
    file there must be signed, not only importable ones.
    """
    tops = {rel.partition("/")[0] for rel in files if "/" in rel}
    for top in sorted(t for t in tops if is_library_dir(t)):
        found, linked = walk(site, top)
        for rel in (*found, *linked):
            if rel not in files:
                yield Problem(
                    ProblemKind.UNLISTED_FILE,
                    "is in a directory of shared libraries the extension modules load, "
                    "but the signed manifest does not list it",
                    rel,
                )


def startup_files(files: Files) -> Iterator[Problem]:
    """Signed modules that ``site`` runs at every start-up, before anything is verified."""
    for rel in files:
        if "/" not in rel and rel.partition(".")[0] in STARTUP_MODULES:
            yield Problem(
                ProblemKind.FORBIDDEN_FILE,
                "is run by every interpreter at start-up, before plugyard can verify "
                "anything; a signature cannot vouch for it",
                rel,
            )


def namespace_shadows(
    site: Path, files: Files, layout: Layout, import_path: Sequence[str]
) -> Iterator[Problem]:
    """Modules and regular packages on the import path that hide a namespace package.

    The import system makes a namespace package only when no directory it
    searches holds a module or a regular package of that name; one anywhere
    (another distribution's ``ns.py``, an ``ns/__init__.py`` in another
    ``sys.path`` entry) would be imported instead, and the distribution's
    portion with it would no longer be its own.
    """
    if not layout.namespaces:
        return
    site_text = str(site)
    top_dirs = search_dirs([site_text, *import_path])
    prefix = f"{site_text}{os.sep}"
    for name in sorted(layout.namespaces):
        parent, _, last = name.rpartition(".")
        for directory in _parent_dirs(parent, layout, site_text, top_dirs):
            for found in shadows(directory, last):
                rel = found
                if found.startswith(prefix):
                    rel = found[len(prefix) :].replace(os.sep, "/")
                if rel in files:
                    continue
                yield Problem(
                    ProblemKind.SHADOWED,
                    f"would be imported instead of the namespace package {name!r} this "
                    "distribution installs into; remove it or the distribution providing it",
                    rel,
                )


def _parent_dirs(parent: str, layout: Layout, site: str, top_dirs: list[str]) -> list[str]:
    """The directories the import system searches for a submodule of ``parent``."""
    if not parent:
        return top_dirs
    module = layout.modules.get(parent)
    if module is not None and module.is_package:
        return [os.path.join(site, *parent.split("."))]
    grand, _, last = parent.rpartition(".")
    dirs = [os.path.join(d, last) for d in _parent_dirs(grand, layout, site, top_dirs)]
    return [d for d in dirs if os.path.isdir(d)]
