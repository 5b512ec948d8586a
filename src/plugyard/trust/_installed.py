"""Verifying an installed distribution, file by file, before anything of it is imported.

About ``__pycache__``: installers compile bytecode next to the sources they
install (pip does by default), and Python writes more at import time, so
``__pycache__/<module>.<tag>.pyc`` files of listed sources are expected and
not reported. Such a file can be planted with the source's mtime and size,
and the default import system would run it instead of the verified source;
no check of the ``.pyc`` itself can help (its hash in ``RECORD`` is written
by the same installer an attacker can imitate). So the defence is in the
importer: :class:`VerifiedImporter` never reads ``__pycache__`` and compiles
the verified source itself. A ``.pyc`` that belongs to no listed source is
inert in ``__pycache__`` (no import system runs it without its source) and
reported anywhere else, as is any other unlisted importable file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .._model import canonical
from ._entrypoints import parse_entry_points
from ._files import hash_file, read_small, record_hash
from ._identity import identity_problems, parse_metadata
from ._keys import Keyring, StrPath
from ._layout import layout_of
from ._manifest import (
    MAX_ENVELOPE_SIZE,
    SIGNATURE_FILE,
    Manifest,
    ManifestFile,
    hash_bytes,
    open_envelope,
)
from ._problems import Problem, ProblemKind, VerificationResult
from ._record import check_record, scripts_of
from ._scan import (
    namespace_shadows,
    scan_dist_info,
    scan_libraries,
    scan_packages,
    startup_files,
)


class DistributionLike(Protocol):
    """A ``Distribution`` of ``importlib.metadata`` or of the ``importlib_metadata`` backport."""

    def read_text(self, filename: str) -> str | None:
        """The text of a metadata file."""


_MAX_TEXT = 16 * 1024 * 1024
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


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
        from importlib import metadata as std_metadata  # slow to import: only to find by name

        given = canonical(dist_or_name)
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
            return canonical(str(getattr(dist, "name", None) or "unknown"))

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


def verify_dist_info(dist_info: StrPath, keyring: Keyring, name: str) -> VerificationResult:
    """:func:`verify_distribution` of the ``.dist-info`` directory ``dist_info`` on disk.

    What the trust gate calls before each verified import: it knows the
    directory from the entry point, so nothing of ``importlib.metadata`` is
    needed. ``name`` names the distribution where its METADATA names none.
    """
    info = Path(dist_info)
    if not info.name.endswith(".dist-info") or not info.is_dir():
        return _failed(
            canonical(name or "unknown"),
            ProblemKind.NOT_FOUND,
            "is not installed as a .dist-info directory on disk; eggs, zip imports and "
            "other layouts cannot be verified",
            str(info),
        )
    return _verify_dist_info(info, lambda: canonical(name or "unknown"), keyring)


def _failed(name: str, kind: ProblemKind, message: str, where: str | None) -> VerificationResult:
    return VerificationResult(name, None, (Problem(kind, message, where),), installed=True)


def _verify_dist_info(
    info: Path, name_given: Callable[[], str], keyring: Keyring
) -> VerificationResult:
    site = info.parent
    prefix = f"{info}{os.sep}"  # str paths: a Path per file costs more than reading it
    raw = read_small(prefix + "METADATA", _MAX_TEXT)
    if raw is not None and len(raw) >= _MAX_TEXT:
        # Not read whole, and what is parsed must be what is hashed.
        return _failed(
            name_given(),
            ProblemKind.UNREADABLE,
            f"METADATA is larger than {_MAX_TEXT} bytes",
            f"{info.name}/METADATA",
        )
    meta_name, version = parse_metadata(raw) if raw is not None else (None, None)
    name = canonical(meta_name) if meta_name else name_given()

    def result(
        problems: Sequence[Problem], manifest: Manifest | None = None, signers: tuple[str, ...] = ()
    ) -> VerificationResult:
        return VerificationResult(
            name, version, _unique(problems), signers, manifest, site, installed=True
        )

    editable = _editable(prefix, info.name)
    if editable is not None:
        return result([editable])
    signature = f"{info.name}/{SIGNATURE_FILE}"
    data = read_small(prefix + SIGNATURE_FILE, MAX_ENVELOPE_SIZE + 1)
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
    # Read whole the files whose content is used (METADATA above, entry_points.txt
    # here): the bytes hashed are the bytes parsed, whatever changes on disk.
    read: dict[str, bytes] = {} if raw is None else {f"{info.name}/METADATA": raw}
    eps_rel = f"{info.name}/entry_points.txt"
    eps_raw = read_small(prefix + "entry_points.txt", _MAX_TEXT) if eps_rel in files else None
    if eps_raw is not None and len(eps_raw) < _MAX_TEXT:
        read[eps_rel] = eps_raw
    problems.extend(_hash_files(site, files, read))
    entry_points: tuple[tuple[str, str, str], ...] = ()
    if eps_rel in read and not any(p.path == eps_rel for p in problems):
        entry_points = parse_entry_points(read[eps_rel])
    layout = layout_of(files)
    problems.extend(check_record(site, info.name, files, scripts_of(entry_points)))
    problems.extend(scan_dist_info(site, info.name, files))
    problems.extend(scan_packages(site, files, layout))
    problems.extend(scan_libraries(site, files))
    problems.extend(startup_files(files))
    problems.extend(_check_pth(site, files))
    problems.extend(namespace_shadows(site, files, layout, sys.path))
    return VerificationResult(
        name,
        version,
        _unique(problems),
        opened.signers,
        manifest,
        site,
        installed=True,
        entry_points=entry_points,
    )


def _unique(problems: Sequence[Problem]) -> tuple[Problem, ...]:
    seen: set[tuple[ProblemKind, str | None]] = set()
    out = []
    for p in problems:
        if (p.kind, p.path) not in seen:
            seen.add((p.kind, p.path))
            out.append(p)
    return tuple(out)


def _editable(prefix: str, info: str) -> Problem | None:
    raw = read_small(prefix + "direct_url.json", _MAX_TEXT)
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
            f"{info}/direct_url.json",
        )
    return None


def _hash_files(
    site: Path, files: dict[str, ManifestFile], read: Mapping[str, bytes]
) -> Iterator[Problem]:
    """Hash every file of the manifest; ``read`` holds the content of files already read.

    The manifest says each file's size, so one ``read`` of one byte more
    gets a regular file of that size whole and shows it ends there: no
    ``fstat`` and no second read in the common case. Anything else (larger,
    smaller, not a regular file) takes the long way, which says what it is.
    """
    prefix = f"{site}{os.sep}"
    sha256 = hashlib.sha256
    for rel, entry in files.items():
        content = read.get(rel)
        if content is None:
            try:
                fd = os.open(prefix + rel, _READ_FLAGS)
            except FileNotFoundError:
                yield Problem(
                    ProblemKind.MISSING_FILE, "is in the signed manifest but missing", rel
                )
                continue
            except OSError as exc:
                yield Problem(ProblemKind.UNREADABLE, f"cannot be read: {exc}", rel)
                continue
            try:
                content = os.read(fd, entry.size + 1)
            except OSError as exc:
                yield Problem(ProblemKind.UNREADABLE, f"cannot be read: {exc}", rel)
                continue
            finally:
                os.close(fd)
            if len(content) != entry.size:
                try:
                    digest = hash_file(prefix + rel)[0]
                except OSError as exc:
                    yield Problem(ProblemKind.UNREADABLE, f"cannot be read: {exc}", rel)
                    continue
            else:
                digest = record_hash(sha256(content).digest())
        else:
            digest = hash_bytes(content)
        if digest != entry.digest:
            yield Problem(
                ProblemKind.HASH_MISMATCH,
                "content differs from the signed manifest",
                rel,
                expected=entry.digest,
                actual=digest,
            )


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
