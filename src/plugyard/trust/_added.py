"""What the verified importer keeps of each distribution it was given, and of its modules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from ._layout import is_library_dir
from ._manifest import ManifestFile, digest_of
from ._resources import Signed


class AddedModule(NamedTuple):
    """A module of a verified distribution (a tuple: one is made per module of each one)."""

    name: str
    distribution: str
    path: str
    #: The verified hash, as the manifest writes it.
    digest: str
    is_package: bool
    is_extension: bool

    @property
    def raw_digest(self) -> bytes:
        """The verified SHA-256."""
        return digest_of(self.digest)


class AddedDistribution:
    """What the importer keeps of one verified distribution.

    The absolute paths of its files are worked out when first needed (for
    package data, ``pkgutil.get_data`` and extension modules), not when it
    is added.
    """

    __slots__ = ("_files", "_libraries", "name", "prefix", "signed", "version")

    def __init__(
        self, name: str, version: str | None, prefix: str, signed: Mapping[str, ManifestFile]
    ) -> None:
        self.name = name
        self.version = version
        self.prefix = prefix
        self.signed = signed
        self._files: dict[str, bytes] | None = None
        self._libraries: tuple[str, ...] | None = None

    def absolute(self, rel: str) -> str:
        """The absolute path of a site-relative one."""
        return self.prefix + rel.replace("/", os.sep)

    @property
    def files(self) -> Mapping[str, bytes]:
        """Every signed file's SHA-256, by absolute path."""
        if self._files is None:
            self._files = {self.absolute(r): digest_of(f.digest) for r, f in self.signed.items()}
        return self._files

    @property
    def libraries(self) -> tuple[str, ...]:
        """Absolute paths of the directories of vendored shared libraries."""
        if self._libraries is None:
            dirs = {rel.rpartition("/")[0] for rel in self.signed}
            self._libraries = tuple(sorted(self.absolute(d) for d in dirs if is_library_dir(d)))
        return self._libraries

    def package_files(self, directory: str) -> dict[str, Signed]:
        """The signed files below ``directory``, by ``/``-separated path relative to it."""
        prefix = directory + os.sep
        return {
            path[len(prefix) :].replace(os.sep, "/"): (path, digest, self.name)
            for path, digest in self.files.items()
            if path.startswith(prefix)
        }
