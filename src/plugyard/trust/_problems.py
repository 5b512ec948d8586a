"""What verification finds: problems, results and the errors raised for them."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING

from .._value import Value
from ..exceptions import InvalidKeyError, InvalidWheelError, SignatureError

if TYPE_CHECKING:
    from ._manifest import Manifest

__all__ = [
    "InvalidKeyError",
    "InvalidWheelError",
    "Problem",
    "ProblemKind",
    "SignatureError",
    "VerificationResult",
]


class ProblemKind(str, enum.Enum):
    """What is wrong with a wheel or an installed distribution."""

    #: There is no ``plugyard-signature.json``.
    MISSING_SIGNATURE = "missing-signature"
    #: The signature file is not a DSSE envelope plugyard can read.
    MALFORMED_SIGNATURE = "malformed-signature"
    #: No signature verifies with any key of the keyring.
    UNKNOWN_KEY = "unknown-key"
    #: A signature names a trusted key but does not verify: payload or signature changed.
    BAD_SIGNATURE = "bad-signature"
    #: Trusted keys signed, but none is scoped to this distribution.
    KEY_OUT_OF_SCOPE = "key-out-of-scope"
    #: Fewer distinct trusted keys signed than the keyring's threshold.
    THRESHOLD_NOT_MET = "threshold-not-met"
    #: The signed payload is not a manifest plugyard can read.
    MALFORMED_MANIFEST = "malformed-manifest"
    #: The manifest is for another distribution (or dist-info directory).
    NAME_MISMATCH = "name-mismatch"
    #: The manifest is for another version.
    VERSION_MISMATCH = "version-mismatch"
    #: A file's content differs from the manifest (``expected``/``actual`` hashes).
    HASH_MISMATCH = "hash-mismatch"
    #: A file of the manifest is not there.
    MISSING_FILE = "missing-file"
    #: A file is there that the manifest does not list.
    UNLISTED_FILE = "unlisted-file"
    #: ``RECORD`` disagrees with the files or the manifest.
    RECORD_MISMATCH = "record-mismatch"
    #: A wheel member plugyard refuses to sign (bytecode, unsafe path, ``.data`` scheme).
    FORBIDDEN_FILE = "forbidden-file"
    #: An editable install, or a ``.pth`` file that puts unverified code on the path.
    EDITABLE_INSTALL = "editable-install"
    #: The distribution is not installed, or not as a dist-info directory on disk.
    NOT_FOUND = "not-found"
    #: A file cannot be read, or the wheel is not a zip archive.
    UNREADABLE = "unreadable"
    #: A module was imported through the normal import system before verification.
    IMPORTED_UNVERIFIED = "imported-unverified"
    #: Two verified distributions provide the same module.
    MODULE_CONFLICT = "module-conflict"
    #: A module or regular package elsewhere on the import path would be imported
    #: instead of a namespace package the distribution installs into.
    SHADOWED = "shadowed"
    #: The entry point to import is not one the verified ``entry_points.txt`` declares.
    UNDECLARED_ENTRY_POINT = "undeclared-entry-point"
    #: An entry point names a module that is not in the distribution's signed manifest.
    FOREIGN_MODULE = "foreign-module"
    #: A file the distribution installs outside its own directories lands on the
    #: import path, or where nothing it declares (a console script) explains it.
    OUTSIDE_DISTRIBUTION = "outside-distribution"
    #: Code admitted unverified (trust mode ``warn`` or ``off``, or refused) registered,
    #: replaced or claimed a plugin that must be verified.
    UNVERIFIED_CODE = "unverified-code"

    def __str__(self) -> str:
        return self.value


class Problem(Value):
    """One thing verification found wrong.

    Attributes:
        kind: What is wrong.
        message: A sentence for people, naming the file and what to do.
        path: The file concerned, as the wheel or ``RECORD`` names it
            (relative to the site directory for installed files), or ``None``.
        expected: For a hash or name mismatch, what the signed manifest says.
        actual: For a hash or name mismatch, what was found.
    """

    __slots__ = ("actual", "expected", "kind", "message", "path")

    kind: ProblemKind
    message: str
    path: str | None
    expected: str | None
    actual: str | None

    def __init__(
        self,
        kind: ProblemKind,
        message: str,
        path: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        _set = object.__setattr__
        _set(self, "kind", kind)
        _set(self, "message", message)
        _set(self, "path", path)
        _set(self, "expected", expected)
        _set(self, "actual", actual)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class VerificationResult(Value):
    """What verifying a wheel or an installed distribution found.

    Attributes:
        distribution: The distribution's canonical name (as given, when it
            could not be read).
        version: Its version, when known.
        problems: Everything found wrong; empty when verification passed.
        signers: Key ids of the trusted keys whose signatures verified and
            whose scope covers the distribution.
        manifest: The signed manifest, when a trusted signature verified.
        location: The wheel file, or the site directory holding the dist-info
            directory of an installed distribution.
        installed: Whether this is about an installed distribution (which
            :class:`VerifiedImporter` can import) rather than a wheel.
        entry_points: ``(group, name, value)`` of every entry point the
            verified ``entry_points.txt`` declares, read from the bytes whose
            hash was checked (empty when verification did not get that far).
    """

    __slots__ = (
        "distribution",
        "entry_points",
        "installed",
        "location",
        "manifest",
        "problems",
        "signers",
        "version",
    )

    distribution: str
    version: str | None
    problems: tuple[Problem, ...]
    signers: tuple[str, ...]
    manifest: Manifest | None
    location: Path | None
    installed: bool
    entry_points: tuple[tuple[str, str, str], ...]

    def __init__(
        self,
        distribution: str,
        version: str | None,
        problems: tuple[Problem, ...],
        signers: tuple[str, ...] = (),
        manifest: Manifest | None = None,
        location: Path | None = None,
        installed: bool = False,
        entry_points: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        _set = object.__setattr__
        _set(self, "distribution", distribution)
        _set(self, "version", version)
        _set(self, "problems", problems)
        _set(self, "signers", signers)
        _set(self, "manifest", manifest)
        _set(self, "location", location)
        _set(self, "installed", installed)
        _set(self, "entry_points", entry_points)

    @property
    def ok(self) -> bool:
        """Whether verification passed: a trusted manifest and no problem."""
        return not self.problems and self.manifest is not None

    def raise_for_problems(self) -> VerificationResult:
        """Return this result if it is ok.

        Raises:
            SignatureError: verification found problems.
        """
        if not self.ok:
            raise SignatureError(
                self.distribution,
                self.problems
                or (Problem(ProblemKind.MISSING_SIGNATURE, "no trusted manifest was found"),),
            )
        return self
