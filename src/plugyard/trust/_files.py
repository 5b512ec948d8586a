"""Reading files an attacker may have replaced, without hanging or trusting their size."""

from __future__ import annotations

import binascii
import hashlib
import os
import stat

_CHUNK = 1024 * 1024
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def record_hash(digest: bytes) -> str:
    """A SHA-256 digest as ``RECORD`` writes it: ``sha256=`` + urlsafe base64, no padding."""
    # base64.urlsafe_b64encode without its two Python-level calls: this runs once per file.
    encoded = binascii.b2a_base64(digest, newline=False).translate(_URLSAFE)
    return "sha256=" + encoded.rstrip(b"=").decode("ascii")


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


def read_small(path: str | os.PathLike[str], limit: int) -> bytes | None:
    """The file's first ``limit`` bytes, or ``None`` if it is not a readable regular file."""
    try:
        fd, st = open_regular(path)
    except OSError:
        return None
    chunks = []
    try:
        # One byte more than its size: a regular file that did not grow is read
        # whole in one call, and the short read says it ended.
        want = min(limit, st.st_size + 1, _CHUNK)
        while limit > 0 and (chunk := os.read(fd, want)):
            chunks.append(chunk)
            limit -= len(chunk)
            if len(chunk) < want:
                break
            want = min(limit, _CHUNK)
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


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes.

    Raises:
        OSError: it cannot be read, is not a regular file, or is larger.
    """
    fd, st = open_regular(path)
    try:
        if st.st_size > limit:
            raise OSError(f"{os.fspath(path)} is larger than {limit} bytes")
        chunks = []
        while chunk := os.read(fd, limit + 1):
            chunks.append(chunk)
            limit -= len(chunk)
            if limit < 0:
                raise OSError(f"{os.fspath(path)} grew while it was read")
    finally:
        os.close(fd)
    return b"".join(chunks)


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
