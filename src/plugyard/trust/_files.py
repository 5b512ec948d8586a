"""Reading files an attacker may have replaced, without hanging or trusting their size."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ._manifest import record_hash

_CHUNK = 1024 * 1024
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """Open a regular file for reading; a FIFO or device planted in its place must not block.

    Raises:
        OSError: it cannot be opened or is not a regular file.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{os.fspath(path)} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_small(path: Path, limit: int) -> bytes | None:
    """The file's first ``limit`` bytes, or ``None`` if it is not a readable regular file."""
    try:
        fd, _ = open_regular(path)
    except OSError:
        return None
    chunks = []
    try:
        while limit > 0 and (chunk := os.read(fd, min(limit, _CHUNK))):
            chunks.append(chunk)
            limit -= len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The ``RECORD``-style SHA-256 and size of a regular file.

    Raises:
        OSError: it cannot be read or is not a regular file.
    """
    # os-level calls: for a few hundred small files, file objects cost more than hashing.
    # (open_regular, inlined: this runs once per file of every verified distribution.)
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{os.fspath(path)} is not a regular file")
        digest = hashlib.sha256(os.read(fd, _CHUNK))
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return record_hash(digest.digest()), st.st_size


def read_all(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a regular file.

    Raises:
        OSError: it cannot be read or is not a regular file.
    """
    fd, st = open_regular(path)
    try:
        chunks = []
        while chunk := os.read(fd, max(st.st_size + 1, 4096)):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
