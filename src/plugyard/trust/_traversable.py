"""Package data of verified distributions, served from the bytes the manifest signed.

``importlib.resources.files(package)`` of a verified package is a
:class:`VerifiedTraversable`: it lists the package's signed files only, and
reading one reads it once, checks its SHA-256 against the manifest and
returns those bytes. A file changed since verification raises
:class:`SignatureError`; one added since is refused the same way, and one
that is neither signed nor there is missing. ``importlib.resources.as_file``
gives a temporary copy of the verified bytes. Code that opens files by path
(``open(os.path.join(os.path.dirname(__file__), ...))``) reads what is on
disk: plugyard cannot see those reads.

Imported by the first such call: ``importlib.resources`` brings tempfile
and shutil, which a verified import does not otherwise need.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator, Mapping
from typing import IO, Any

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable, TraversableResources
else:
    from importlib.abc import Traversable, TraversableResources

from ._resources import Signed, read_verified, refuse_unlisted


class VerifiedTraversable(Traversable):
    """A file or directory of a verified package, as the manifest lists them.

    Args:
        files: The package's signed files, by ``/``-separated path relative
            to the package directory.
        directory: The package directory on disk (for messages and unlisted files).
        distribution: The distribution, for errors.
        rel: This entry's path relative to the package directory; ``""`` is
            the package directory itself.
    """

    def __init__(
        self, files: Mapping[str, Signed], directory: str, distribution: str, rel: str = ""
    ) -> None:
        self._files = files
        self._directory = directory
        self._distribution = distribution
        self._rel = rel

    def __repr__(self) -> str:
        return f"<VerifiedTraversable {self._path()!r} of {self._distribution!r}>"

    def _path(self) -> str:
        return (
            os.path.join(self._directory, *self._rel.split("/")) if self._rel else self._directory
        )

    @property
    def name(self) -> str:
        """The entry's file name."""
        return self._rel.rpartition("/")[2] or os.path.basename(self._directory)

    def is_file(self) -> bool:
        """Whether it is a signed file."""
        return self._rel in self._files

    def is_dir(self) -> bool:
        """Whether signed files lie below it."""
        prefix = f"{self._rel}/" if self._rel else ""
        return any(rel.startswith(prefix) for rel in self._files) and not self.is_file()

    def iterdir(self) -> Iterator[VerifiedTraversable]:
        """Its signed files and the directories holding some, sorted."""
        prefix = f"{self._rel}/" if self._rel else ""
        children = {
            rel[len(prefix) :].partition("/")[0] for rel in self._files if rel.startswith(prefix)
        }
        if not children and not self.is_dir():
            raise NotADirectoryError(f"{self._path()} is not a signed directory")
        for child in sorted(children):
            yield self.joinpath(child)

    def joinpath(self, *descendants: str) -> VerifiedTraversable:
        """The entry at ``descendants`` below this one (which need not exist)."""
        parts = [p for d in descendants for p in str(d).replace(os.sep, "/").split("/") if p]
        rel = "/".join([*([self._rel] if self._rel else []), *parts])
        if any(p in {".", ".."} for p in parts):
            raise ValueError(f"{rel!r} leaves the package: resources are below it")
        return VerifiedTraversable(self._files, self._directory, self._distribution, rel)

    def __truediv__(self, child: str) -> VerifiedTraversable:
        return self.joinpath(child)

    def read_bytes(self) -> bytes:
        """The signed content.

        Raises:
            SignatureError: it changed since verification, or it is an unsigned file.
            FileNotFoundError: it is neither signed nor there.
        """
        signed = self._files.get(self._rel)
        if signed is None:
            refuse_unlisted(self._path(), self._distribution, "a package resource")
        assert signed is not None  # noqa: S101 - refuse_unlisted always raises
        return read_verified(*signed)

    def read_text(self, encoding: str | None = None) -> str:
        """The signed content, decoded (UTF-8 by default)."""
        return self.read_bytes().decode(encoding or "utf-8")

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
        """A file object over the signed content (``r`` or ``rb`` only)."""
        if mode not in {"r", "rb"}:
            raise ValueError(f"resources of a verified package are read-only, not {mode!r}")
        data = io.BytesIO(self.read_bytes())
        if mode == "rb":
            return data
        return io.TextIOWrapper(data, *args, **{"encoding": "utf-8", **kwargs})


class VerifiedResources(TraversableResources):
    """The ``importlib.resources`` reader of a verified package."""

    def __init__(self, root: VerifiedTraversable) -> None:
        self._root = root

    def files(self) -> VerifiedTraversable:
        """The package's signed files."""
        return self._root
