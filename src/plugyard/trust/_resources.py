"""Signed files read back after verification: the bytes only if they still have the signed hash.

The verified importer reads every module's source through
:func:`read_verified`; the package-data reader (``_traversable.py``) is
built on it and loads with the first ``importlib.resources`` call on a
verified package.
"""

from __future__ import annotations

import hashlib
import os

from ._files import read_all, record_hash
from ._problems import Problem, ProblemKind, SignatureError

#: A signed file: its absolute path, its SHA-256 digest, its distribution.
Signed = tuple[str, bytes, str]


def read_verified(path: str, digest: bytes, distribution: str) -> bytes:
    """The content of a signed file, if it still has the signed hash.

    Raises:
        SignatureError: it cannot be read or differs from what was signed.
    """
    try:
        data = read_all(path)
    except OSError as exc:
        raise SignatureError(
            distribution,
            [Problem(ProblemKind.MISSING_FILE, f"cannot be read after verification: {exc}", path)],
        ) from None
    if hashlib.sha256(data).digest() != digest:
        raise SignatureError(
            distribution,
            [
                Problem(
                    ProblemKind.HASH_MISMATCH,
                    "changed since it was verified",
                    path,
                    expected=record_hash(digest),
                    actual=record_hash(hashlib.sha256(data).digest()),
                )
            ],
        )
    return data


def refuse_unlisted(path: str, distribution: str, what: str) -> None:
    """Raise if an unsigned file is where a signed one was asked for.

    Raises:
        SignatureError: the file exists.
        FileNotFoundError: it does not.
    """
    if os.path.lexists(path):
        raise SignatureError(
            distribution,
            [
                Problem(
                    ProblemKind.UNLISTED_FILE,
                    f"is read as {what} but is not in the signed manifest",
                    path,
                )
            ],
        )
    raise FileNotFoundError(f"{path} is not a signed file of {distribution!r}")
