"""Reading metadata files the way ``importlib.metadata`` reads them, fast.

:func:`parse` reads ``entry_points.txt`` with ``importlib.metadata``'s own
rules; :func:`read_fast` reads one ordinary metadata directory: its entry
points and, only if it has some, the ``Name`` and ``Version`` headers of its
``METADATA``. Whatever is not ordinary (folded or unusual headers, a missing
``METADATA``, an unreadable file) raises :class:`DelegateError`, and the
caller asks ``importlib.metadata`` instead; a file ``importlib.metadata``
would fail on raises :class:`BrokenFileError`. Each file read is recorded with
its status, for the index cache.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from stat import S_ISDIR
from typing import Any

from ._indexcache import ABSENT, stamp


class BrokenFileError(Exception):
    """A file ``importlib.metadata`` would raise on."""


class DelegateError(Exception):
    """Something the fast reader does not read exactly as ``importlib.metadata``: ask it."""


_NORMALIZE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """A name as ``importlib.metadata`` compares distributions: PEP 503, dashes as underscores."""
    return _NORMALIZE.sub("_", name).lower()


def parse(text: str) -> list[tuple[str, str, str]]:
    """Parse ``entry_points.txt`` as ``importlib.metadata`` does: ``(group, name, value)``.

    Lines are stripped; empty ones and ``#`` comments are skipped; a line
    that starts with ``[`` and ends with ``]`` starts a section, named by it
    without its brackets; lines before the first section are ignored; every
    other line is ``name = value``, split at the first ``=``.

    Raises:
        ValueError: a line in a section has no ``=`` (``importlib.metadata``
            raises a ``TypeError`` for the whole listing).
    """
    found: list[tuple[str, str, str]] = []
    group = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if line[0] == "[" and line[-1] == "]":
            # One string for every file's group: a thousand plugins keep one.
            group = sys.intern(line.strip("[]"))
            continue
        if group is None:
            continue
        name, eq, value = line.partition("=")
        if not eq:
            raise ValueError(f"entry_points.txt line {number} has no '=': {line[:80]!r}")
        found.append((group, name.strip(), value.strip()))
    return found


# -- reading one distribution ------------------------------------------------------

_CHUNK = 8192
_MAX_HEAD = 1 << 20  # headers longer than this are handed to importlib.metadata
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_SEP = os.sep


def _read(path: str, deps: list[Any], size: int | None = None) -> bytes | None:
    """The bytes of ``path`` (the first ``size`` of them), its status added to ``deps``.

    Returns ``None`` where ``read_text`` sees no file: missing, or a directory.
    """
    try:
        fd = os.open(path, _READ)
    except (FileNotFoundError, NotADirectoryError):
        deps.append((path, ABSENT))
        return None
    except OSError as exc:
        raise DelegateError(str(exc)) from None
    try:
        st = os.fstat(fd)
        deps.append((path, (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)))
        if S_ISDIR(st.st_mode):
            return None
        want = st.st_size if size is None else min(size, st.st_size)
        data = os.read(fd, want + 1)  # a regular file: all of it at once
        if size is None and len(data) != st.st_size:  # short read, or it grew
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    except OSError as exc:
        raise DelegateError(str(exc)) from None
    finally:
        os.close(fd)


def read_entry_points(meta: str, deps: list[Any]) -> list[tuple[str, str, str]]:
    """The entry points of the metadata directory ``meta``, as ``importlib.metadata`` reads them.

    Raises:
        BrokenFileError: ``importlib.metadata`` would fail on the file.
        DelegateError: it cannot be read.
    """
    data = _read(meta + _SEP + "entry_points.txt", deps)
    if data is None:
        # One created later changes the directory: watch that too.
        deps.append((meta, stamp(meta)))
        return []
    try:
        return parse(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BrokenFileError(
            f"entry_points.txt is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except ValueError as exc:
        raise BrokenFileError(str(exc)) from None


def _head_end(raw: bytes) -> tuple[bytes, int]:
    """Lines ended as the email parser ends them (CR LF, CR or LF), and where the headers end."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in raw else raw
    return data, 0 if data[:1] == b"\n" else data.find(b"\n\n")


def read_head(meta: str, names: Sequence[str], deps: list[Any]) -> str:
    """The header block of the first of ``names`` that is there and not empty.

    Raises:
        DelegateError: none is, or the headers are not UTF-8 or very long.
    """
    for filename in names:
        path = meta + _SEP + filename
        raw = _read(path, deps, _CHUNK)
        if not raw:
            continue  # missing or empty: importlib.metadata reads the next one
        data, end = _head_end(raw)
        if end < 0 and len(raw) > _CHUNK:
            raw = _read(path, deps, _MAX_HEAD) or b""
            deps.pop()  # recorded twice
            data, end = _head_end(raw)
            if end < 0 and len(raw) > _MAX_HEAD:
                raise DelegateError("very long headers")
        try:
            return data[: end if end >= 0 else len(data)].decode("utf-8")
        except UnicodeDecodeError:
            raise DelegateError("not UTF-8") from None
    raise DelegateError("no metadata file")


# How nearly every METADATA starts, none of its three headers folded: read at C speed.
_COMMON = re.compile(
    r"Metadata-Version:[^\n]*\nName:[ \t]*([^\n]*)\nVersion:[ \t]*([^\n]*)(?:\n(?![ \t])|\Z)"
)


def name_version(head: str) -> tuple[str, str]:
    """``Name`` and ``Version`` as the email parser reads them, for plain headers only.

    Raises:
        DelegateError: something the email parser reads in a way this does not
            (folded, unusual or missing headers).
    """
    common = _COMMON.match(head)
    if common is not None:
        return common[1], common[2]
    name = version = None
    last = ""
    for number, line in enumerate(head.split("\n")):
        first = line[:1]
        if first in (" ", "\t"):
            if not number or last in ("name", "version"):
                raise DelegateError("folded header")
            continue
        colon = line.find(":")
        key = line[:colon]
        if colon <= 0 or line.startswith("From ") or not (key.isascii() and key.isprintable()):
            raise DelegateError("not a plain header")
        if " " in key:
            raise DelegateError("not a plain header")
        lowered = key.lower()
        last = ""
        if lowered == "name" and name is None:
            name = line[colon + 1 :].lstrip(" \t")
            last = lowered
        elif lowered == "version" and version is None:
            version = line[colon + 1 :].lstrip(" \t")
            last = lowered
        elif name is not None and version is not None:
            return name, version
    if name is None or version is None:
        raise DelegateError("no Name or no Version")
    return name, version


def read_fast(meta: str, layout: str, key: str, rows: list[Any], deps: list[Any]) -> None:
    """Append the rows of one ordinary metadata directory to ``rows``, its files to ``deps``.

    Raises:
        BrokenFileError: ``importlib.metadata`` would fail on its ``entry_points.txt``.
        DelegateError: it is not ordinary; ask ``importlib.metadata``.
    """
    found = read_entry_points(meta, deps)
    if not found:
        return
    # Only distributions with entry points pay for reading their metadata.
    names = ("METADATA",) if layout == "dist-info" else ("METADATA", "PKG-INFO")
    name, version = name_version(read_head(meta, names, deps))
    version = sys.intern(version)  # shared with every distribution of the same version
    rows.extend((ep, group, value, name, version, meta, layout, key) for group, ep, value in found)
