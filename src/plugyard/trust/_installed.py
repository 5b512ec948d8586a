"""Verifying an installed distribution, file by file, before anything of it is imported.

About ``__pycache__``: installers compile bytecode next to the sources they
install (pip does by default), and Python writes more at import time, so
``__pycache__/<module>.<tag>.pyc`` files of listed sources are expected and
not reported. Such a file can be planted with the source's mtime and size,
and the default import system would run it instead of the verified source;
no check of the ``.pyc`` itself can help (its hash in ``RECORD`` is written
by the same installer an attacker can imitate). So the defence is in the
importer: :class:`VerifiedImporter` never reads ``__pycache__`` and compiles
the verified source itself. A ``.pyc`` that belongs to no listed source, or
any other unlisted importable file, is reported.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata as std_metadata
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from ._files import hash_file, read_small
from ._keys import Keyring, StrPath
from ._layout import IMPORTABLE_SUFFIXES, Layout, layout_of
from ._manifest import (
    MAX_ENVELOPE_SIZE,
    SIGNATURE_FILE,
    Manifest,
    ManifestFile,
    hash_bytes,
    open_envelope,
)
from ._problems import Problem, ProblemKind, VerificationResult
from ._wheel import identity_problems, parse_metadata


class DistributionLike(Protocol):
    """A ``Distribution`` of ``importlib.metadata`` or of the ``importlib_metadata`` backport."""

    def read_text(self, filename: str) -> str | None:
        """The text of a metadata file."""


#: Files installers add to a dist-info directory, which no signature can cover.
INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD", SIGNATURE_FILE})
_MAX_TEXT = 16 * 1024 * 1024
# A RECORD path that is absolute, has a ``..`` or ``.`` component in the
# middle, or a backslash: normalized before it is compared.
_UNUSUAL_RECORD_PATH = re.compile(r"\A/|\\|/\./|(?:\A|/)\.\.(?:/|\Z)")


def verify_distribution(
    dist_or_name: str | DistributionLike,
    keyring: Keyring,
    path: Sequence[StrPath] | None = None,
) -> VerificationResult:
    """Verify an installed distribution before importing anything of it.

    Checks, in order: that it is a dist-info directory on disk and not an
    editable install; its signature against ``keyring``; that the signed
    manifest is for this name, version and dist-info directory; the hash of
    every manifest file on disk; the installed ``RECORD`` (only
    installer-written files, bytecode of listed sources and files outside
    the site directory such as console scripts may be extra); and that its
    package directories hold no unlisted importable file.

    Args:
        dist_or_name: A distribution name (any spelling), or a
            ``Distribution`` from ``importlib.metadata`` or
            ``importlib_metadata``.
        keyring: The trusted keys.
        path: Where to look for a distribution given by name, as
            ``sys.path``; by default ``sys.path``.

    Returns:
        The result; it never raises for a malformed or tampered installation.
        Pass an ``ok`` result to :meth:`VerifiedImporter.add` to import it.
    """
    if isinstance(dist_or_name, str):
        given = canonicalize_name(dist_or_name)
        found = (
            std_metadata.distributions(name=dist_or_name)
            if path is None
            else std_metadata.distributions(name=dist_or_name, path=[os.fspath(p) for p in path])
        )
        dist: DistributionLike | None = next(iter(found), None)
        if dist is None:
            return _failed(given, ProblemKind.NOT_FOUND, "is not installed", dist_or_name)

        def name_given() -> str:
            return given

    else:
        dist = dist_or_name

        def name_given() -> str:
            # Only when METADATA names none: ``dist.name`` parses METADATA anew.
            return canonicalize_name(str(getattr(dist, "name", None) or "unknown"))

    # No public API names a distribution's metadata directory; PathDistribution
    # keeps it as ``_path`` in both importlib.metadata and importlib_metadata.
    info = getattr(dist, "_path", None)
    if not isinstance(info, Path) or not info.name.endswith(".dist-info") or not info.is_dir():
        return _failed(
            name_given(),
            ProblemKind.NOT_FOUND,
            "is not installed as a .dist-info directory on disk; eggs, zip imports and "
            "other layouts cannot be verified",
            str(info),
        )
    return _verify_dist_info(info, name_given, keyring)


def _failed(name: str, kind: ProblemKind, message: str, where: str | None) -> VerificationResult:
    return VerificationResult(name, None, (Problem(kind, message, where),), installed=True)


def _verify_dist_info(
    info: Path, name_given: Callable[[], str], keyring: Keyring
) -> VerificationResult:
    site = info.parent
    raw = read_small(info / "METADATA", _MAX_TEXT)
    meta_name, version = parse_metadata(raw) if raw is not None else (None, None)
    name = canonicalize_name(meta_name) if meta_name else name_given()

    def result(
        problems: Sequence[Problem], manifest: Manifest | None = None, signers: tuple[str, ...] = ()
    ) -> VerificationResult:
        return VerificationResult(
            name, version, _unique(problems), signers, manifest, site, installed=True
        )

    editable = _editable(info)
    if editable is not None:
        return result([editable])
    signature = f"{info.name}/{SIGNATURE_FILE}"
    data = read_small(info / SIGNATURE_FILE, MAX_ENVELOPE_SIZE + 1)
    opened = open_envelope(data, keyring, signature)
    manifest = opened.manifest
    if manifest is None:
        return result(opened.problems)
    problems = list(
        identity_problems(
            manifest, info.name, name if meta_name else None, version, whose="the installed"
        )
    )
    if problems:
        # A manifest of another distribution: comparing files would only add noise.
        return result(problems, manifest, opened.signers)
    files = manifest.installed_files()
    # METADATA was read whole above: hash those bytes, the ones that were parsed.
    read = {f"{info.name}/METADATA": raw} if raw is not None and len(raw) < _MAX_TEXT else {}
    problems.extend(_hash_files(site, files, read))
    layout = layout_of(files)
    problems.extend(_check_record(site, info, files))
    problems.extend(_scan_dist_info(site, info, files))
    problems.extend(_scan_packages(site, files, layout))
    problems.extend(_check_pth(site, files))
    return result(problems, manifest, opened.signers)


def _unique(problems: Sequence[Problem]) -> tuple[Problem, ...]:
    seen: set[tuple[ProblemKind, str | None]] = set()
    out = []
    for p in problems:
        if (p.kind, p.path) not in seen:
            seen.add((p.kind, p.path))
            out.append(p)
    return tuple(out)


def _editable(info: Path) -> Problem | None:
    raw = read_small(info / "direct_url.json", _MAX_TEXT)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    dir_info = doc.get("dir_info") if isinstance(doc, dict) else None
    if isinstance(dir_info, dict) and dir_info.get("editable") is True:
        return Problem(
            ProblemKind.EDITABLE_INSTALL,
            "is an editable install: its code lives outside the installed files and "
            "no signature covers it; install the signed wheel instead",
            f"{info.name}/direct_url.json",
        )
    return None


def _hash_files(
    site: Path, files: dict[str, ManifestFile], read: Mapping[str, bytes]
) -> Iterator[Problem]:
    """Hash every file of the manifest; ``read`` holds the content of files already read."""
    prefix = f"{site}{os.sep}"
    for rel, entry in files.items():
        try:
            content = read.get(rel)
            digest = hash_bytes(content) if content is not None else hash_file(prefix + rel)[0]
        except FileNotFoundError:
            yield Problem(ProblemKind.MISSING_FILE, "is in the signed manifest but missing", rel)
            continue
        except OSError as exc:
            yield Problem(ProblemKind.UNREADABLE, f"cannot be read: {exc}", rel)
            continue
        if digest != entry.digest:
            yield Problem(
                ProblemKind.HASH_MISMATCH,
                "content differs from the signed manifest",
                rel,
                expected=entry.digest,
                actual=digest,
            )


def _is_bytecode_of_listed(rel: str, files: dict[str, ManifestFile]) -> bool:
    """Whether ``rel`` is ``<dir>/__pycache__/<stem>.<tag>.pyc`` of a listed ``<dir>/<stem>.py``."""
    head, _, name = rel.rpartition("/")
    if not name.endswith(".pyc") or not (head == "__pycache__" or head.endswith("/__pycache__")):
        return False
    package = head.removesuffix("__pycache__")
    return f"{package}{name.partition('.')[0]}.py" in files


def _check_record(site: Path, info: Path, files: dict[str, ManifestFile]) -> Iterator[Problem]:
    record_rel = f"{info.name}/RECORD"
    raw = read_small(info / "RECORD", _MAX_TEXT)
    if raw is None:
        yield Problem(ProblemKind.RECORD_MISMATCH, "there is no installed RECORD", record_rel)
        return
    try:
        rows = _csv_rows(raw.decode("utf-8"))
    except (UnicodeDecodeError, csv.Error) as exc:
        yield Problem(ProblemKind.RECORD_MISMATCH, f"RECORD is not UTF-8 CSV: {exc}", record_rel)
        return
    site_text = os.path.normpath(site)
    listed: set[str] = set()
    info_prefix = f"{info.name}/"
    for row in rows:
        if not row or not row[0]:
            continue
        rel = row[0]
        if _UNUSUAL_RECORD_PATH.search(rel) is not None:
            # Lexical, as the installer wrote it: resolving symlinks would change the answer.
            resolved = os.path.normpath(os.path.join(site_text, rel))  # noqa: PTH118
            rel = os.path.relpath(resolved, site_text).replace(os.sep, "/")
        else:
            resolved = ""
        if rel == ".." or rel.startswith("../"):
            if _importable_elsewhere(resolved):
                yield Problem(
                    ProblemKind.UNLISTED_FILE,
                    "RECORD installs an importable file on the import path outside the "
                    "distribution; the signed manifest does not list it",
                    row[0],
                )
            continue
        listed.add(rel)
        entry = files.get(rel)
        if entry is not None:
            if len(row) > 1 and row[1] and row[1] != entry.digest:
                yield Problem(
                    ProblemKind.RECORD_MISMATCH,
                    "RECORD's hash differs from the signed manifest",
                    rel,
                    expected=entry.digest,
                    actual=row[1],
                )
            continue
        if rel.startswith(info_prefix) and rel[len(info_prefix) :] in INSTALLER_FILES:
            continue
        if _is_bytecode_of_listed(rel, files):
            continue
        yield Problem(
            ProblemKind.UNLISTED_FILE, "RECORD lists a file the signed manifest does not", rel
        )
    for rel in sorted(files.keys() - listed):
        yield Problem(ProblemKind.RECORD_MISMATCH, "is not listed in the installed RECORD", rel)


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


def _importable_elsewhere(resolved: str) -> bool:
    if not resolved.endswith(IMPORTABLE_SUFFIXES):
        return False
    parent = Path(resolved).parent
    return any(Path(p or ".").absolute() == parent for p in sys.path)


def _scan_dist_info(site: Path, info: Path, files: dict[str, ManifestFile]) -> Iterator[Problem]:
    # An added entry_points.txt would declare entry points the signer never did.
    for rel in _walk(site, info.name):
        if rel in files or rel.partition("/")[2] in INSTALLER_FILES:
            continue
        yield Problem(
            ProblemKind.UNLISTED_FILE, "is in the dist-info directory but not signed", rel
        )


def _walk(site: Path, top: str) -> list[str]:
    """Site-relative paths of the files below ``site/top`` (symlinks not followed).

    What ``os.walk`` finds, in its order: a symlink to a directory is neither
    a file nor walked into; an unreadable directory is skipped. ``top`` is a
    normalized ``/``-separated relative path. One ``scandir`` per directory
    and no other system call (``os.walk`` adds an ``lstat`` per directory).
    """
    base = f"{site}{os.sep}"
    found: list[str] = []
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
            if not is_link:
                subdirs.append(f"{rel_dir}/{entry.name}")
        pending.extend(reversed(subdirs))  # depth first, in directory order, as os.walk
    return found


def _scan_packages(site: Path, files: dict[str, ManifestFile], layout: Layout) -> Iterator[Problem]:
    for root in layout.roots:
        for rel in _walk(site, root):
            if rel in files or not rel.endswith(IMPORTABLE_SUFFIXES):
                continue
            if _is_bytecode_of_listed(rel, files):
                continue
            yield Problem(
                ProblemKind.UNLISTED_FILE,
                "is an importable file in the package that the signed manifest does not list",
                rel,
            )
    # Outside the roots, other distributions may share a directory (namespace
    # packages, site-packages itself); look only for files that would shadow
    # or replace this distribution's modules.
    for name in sorted(layout.namespaces):
        base = name.replace(".", "/")
        for candidate in _module_files(site, base, "__init__"):
            if candidate not in files:
                yield Problem(
                    ProblemKind.UNLISTED_FILE,
                    f"turns the namespace package {name!r} into a regular package",
                    candidate,
                )
    for module in layout.loose_modules:
        if module.is_package:
            continue
        base, _, stem = module.path.rpartition("/")
        stem = module.name.rpartition(".")[2]
        for candidate in _module_files(site, base, stem):
            if candidate not in files:
                yield Problem(
                    ProblemKind.UNLISTED_FILE,
                    f"would be imported instead of the module {module.name!r}",
                    candidate,
                )


def _module_files(site: Path, base: str, stem: str) -> Iterator[str]:
    """Existing files that the import system would load as ``base/stem``."""
    prefix = f"{base}/" if base else ""
    names = [f"{stem}{suffix}" for suffix in IMPORTABLE_SUFFIXES if suffix != ".pth"]
    names.extend(f"{stem}/__init__{suffix}" for suffix in IMPORTABLE_SUFFIXES)
    site_prefix = f"{site}{os.sep}"
    for name in names:
        rel = f"{prefix}{name}"
        if os.path.isfile(site_prefix + rel):  # noqa: PTH113 - a Path per candidate costs more
            yield rel


def _check_pth(site: Path, files: dict[str, ManifestFile]) -> Iterator[Problem]:
    for rel in files:
        if "/" in rel or not rel.endswith(".pth"):
            continue
        raw = read_small(site / rel, _MAX_TEXT) or b""
        for line in raw.decode("utf-8", errors="replace").splitlines():
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            yield Problem(
                ProblemKind.EDITABLE_INSTALL,
                "a .pth file adds a directory to the import path or runs code at start-up "
                f"({text[:60]!r}); code reached that way is not covered by the signature",
                rel,
            )
            break
