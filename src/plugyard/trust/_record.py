"""Reconciling an installed ``RECORD`` with the signed manifest.

``RECORD`` is not signed (every installer rewrites it), but it says where
the installer put each file, and a tampered wheel can make it put files
anywhere: ``<name>.data/data/lib64/python3.X/site-packages/evil.pth`` lands
in site-packages through the ``lib64 → lib`` symlink of a virtual
environment. So every row that leaves the site directory lexically is
resolved, symlinks and all, and must either come back to a signed file or
be a console script the verified ``entry_points.txt`` declares, in a
directory that is not on the import path.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from ._files import read_small
from ._layout import layout_of, module_for, search_dirs
from ._manifest import ManifestFile
from ._problems import Problem, ProblemKind
from ._scan import INSTALLER_FILES, is_bytecode_of_listed

_MAX_TEXT = 16 * 1024 * 1024
# A RECORD path that is absolute, has a ``..`` or ``.`` component, or a
# backslash: resolved before it is compared.
_UNUSUAL_RECORD_PATH = re.compile(r"\A/|\\|(?:\A|/)\.\.?(?:/|\Z)|\A[A-Za-z]:")
#: Entry point groups whose entries installers turn into files in the scripts directory.
SCRIPT_GROUPS = ("console_scripts", "gui_scripts")
# What installers name a script on each platform: pip's launchers on
# Windows, setuptools' old wrappers.
_SCRIPT_SUFFIXES = ("", ".exe", "-script.py", "-script.pyw", ".pya")


def scripts_of(entry_points: Collection[tuple[str, str, str]]) -> frozenset[str]:
    """The file names installers may give the scripts ``entry_points`` declare."""
    return frozenset(
        name + suffix
        for group, name, _ in entry_points
        if group in SCRIPT_GROUPS
        for suffix in _SCRIPT_SUFFIXES
    )


def check_record(
    site: Path, info: str, files: Mapping[str, ManifestFile], scripts: frozenset[str]
) -> Iterator[Problem]:
    """Problems of the installed ``RECORD`` of dist-info directory ``info`` against ``files``.

    Args:
        site: The site directory.
        info: The dist-info directory's name.
        files: The signed files by site-relative path.
        scripts: The file names declared console scripts may have (:func:`scripts_of`).
    """
    record_rel = f"{info}/RECORD"
    raw = read_small(f"{site}{os.sep}{info}{os.sep}RECORD", _MAX_TEXT)
    if raw is None:
        yield Problem(ProblemKind.RECORD_MISMATCH, "there is no installed RECORD", record_rel)
        return
    try:
        rows = _csv_rows(raw.decode("utf-8"))
    except (UnicodeDecodeError, csv.Error) as exc:
        yield Problem(ProblemKind.RECORD_MISMATCH, f"RECORD is not UTF-8 CSV: {exc}", record_rel)
        return
    listed: set[str] = set()
    info_prefix = f"{info}/"
    resolver: _Resolver | None = None
    for row in rows:
        if not row or not row[0]:
            continue
        rel = row[0]
        entry = files.get(rel)
        if entry is not None:  # a signed path: plain and relative by construction
            listed.add(rel)
            yield from _hash_differs(rel, row, entry)
            continue
        if "\0" in rel:
            yield Problem(
                ProblemKind.RECORD_MISMATCH,
                "a RECORD row is no file path: it holds a NUL byte",
                rel.replace("\0", "\\0"),
            )
            continue
        unusual = _UNUSUAL_RECORD_PATH.search(rel) is not None
        if unusual:
            resolver = resolver or _Resolver(site)
            inside = resolver.inside(rel)
            if inside is None:
                problem = resolver.outside_problem(rel, scripts)
                if problem is not None:
                    yield problem
                continue
            rel = inside
            listed.add(rel)
            entry = files.get(rel)
            if entry is not None:
                yield from _hash_differs(rel, row, entry)
                continue
        if rel.startswith(info_prefix) and rel[len(info_prefix) :] in INSTALLER_FILES:
            continue
        if is_bytecode_of_listed(rel, files):
            continue
        if unusual:
            yield Problem(
                ProblemKind.OUTSIDE_DISTRIBUTION,
                f"RECORD installs a file through {row[0]!r} that lands at {rel!r} in the site "
                "directory (symlinks resolved); the signed manifest does not list it",
                row[0],
                actual=rel,
            )
            continue
        yield Problem(
            ProblemKind.UNLISTED_FILE, "RECORD lists a file the signed manifest does not", rel
        )
    for rel in sorted(files.keys() - listed):
        yield Problem(ProblemKind.RECORD_MISMATCH, "is not listed in the installed RECORD", rel)


class _Resolver:
    """Where unusual ``RECORD`` paths really lead; made only when a row needs it."""

    def __init__(self, site: Path) -> None:
        self.site = str(site)
        self.real_site = os.path.realpath(site)
        self._import_dirs: set[str] | None = None

    def inside(self, row: str) -> str | None:
        """The site-relative path ``row`` resolves to, or ``None`` if it leaves the site."""
        real = os.path.realpath(os.path.join(self.site, row))
        if real.startswith(self.real_site + os.sep):
            return real[len(self.real_site) + 1 :].replace(os.sep, "/")
        return None

    def import_dirs(self) -> set[str]:
        if self._import_dirs is None:
            self._import_dirs = {
                os.path.realpath(d) for d in search_dirs([self.site, *sys.path])
            } | {self.real_site}
        return self._import_dirs

    def outside_problem(self, row: str, scripts: frozenset[str]) -> Problem | None:
        """Why a row that leaves the site directory is wrong; ``None`` for a declared script."""
        real = os.path.realpath(os.path.join(self.site, row))
        directory, _, name = real.rpartition(os.sep)
        on_path = directory in self.import_dirs()
        # A console script's directory is on the path of every console script
        # run from it; its name is no module unless it looks like one.
        importable = name.endswith(".pth") or module_for(name) is not None
        if name in scripts and not (on_path and importable):
            return None
        where = "on the import path" if on_path else "outside the site directory"
        return Problem(
            ProblemKind.OUTSIDE_DISTRIBUTION,
            f"RECORD installs a file {where} ({real}) that the signed manifest does not list "
            "and that is no console script its entry points declare",
            row,
            actual=real,
        )


def _csv_rows(text: str) -> list[list[str]]:
    """The rows ``csv.reader`` reads from ``text``, without it when nothing needs it.

    With no quote, NUL or carriage return, and no field that could pass the
    field size limit, a CSV row is its line split at commas.

    Raises:
        csv.Error: the text is not CSV.
    """
    if '"' in text or "\0" in text or "\r" in text or len(text) > csv.field_size_limit():
        return list(csv.reader(io.StringIO(text, newline="")))
    return [line.split(",") for line in text.split("\n")]


def record_modules(dist_info: Path) -> frozenset[str]:
    """The dotted names of the modules an installed ``RECORD`` lists, packages included.

    For telling whose code a module is when the distribution was not
    verified (so there is no signed manifest to ask); a ``RECORD`` that
    cannot be read lists nothing.
    """
    raw = read_small(dist_info / "RECORD", _MAX_TEXT)
    if raw is None:
        return frozenset()
    try:
        rows = _csv_rows(raw.decode("utf-8", errors="replace"))
    except csv.Error:
        return frozenset()
    return frozenset(layout_of(row[0] for row in rows if row and row[0]).modules)


def _hash_differs(rel: str, row: list[str], entry: ManifestFile) -> Iterator[Problem]:
    """The problem of a RECORD row whose hash is not the signed one (none if it has none)."""
    if len(row) > 1 and row[1] and row[1] != entry.digest:
        yield Problem(
            ProblemKind.RECORD_MISMATCH,
            "RECORD's hash differs from the signed manifest",
            rel,
            expected=entry.digest,
            actual=row[1],
        )
