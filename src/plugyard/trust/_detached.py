"""Detached signatures of single-file plugins.

A single-file plugin (``shout.py`` in a plugin directory) is signed like a
small wheel: :func:`sign_file` writes ``shout.py.sig`` beside it, a DSSE
envelope of the same manifest a signed wheel carries. The manifest lists the
file under the module name plugyard imports it as (``plugyard_file_shout.py``)
and a ``METADATA`` made of its name and version, so renaming the file or
changing its ``__version__`` breaks the signature. When plugyard installs
the file into its data directory it writes exactly that layout, with the
envelope as the dist-info's ``plugyard-signature.json``: from there on
:func:`verify_distribution` and :class:`VerifiedImporter` treat it as any
installed distribution.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .._model import canonical
from .._singlefile import SingleFile, identify
from .._value import evolve
from ..exceptions import InvalidPluginError
from ._files import read_small
from ._identity import compare_files, identity_problems
from ._keys import Keyring, StrPath
from ._manifest import (
    MAX_ENVELOPE_SIZE,
    Envelope,
    Manifest,
    ManifestError,
    hash_bytes,
    make_manifest,
    open_envelope,
)
from ._problems import InvalidWheelError, Problem, ProblemKind, VerificationResult

#: Appended to a single-file plugin's name to name its detached signature.
DETACHED_SUFFIX = ".sig"
_MAX_SOURCE = 16 * 1024 * 1024


def signature_path(path: StrPath) -> Path:
    """Where the detached signature of the file at ``path`` is: ``path`` + ``.sig``."""
    return Path(f"{os.fspath(path)}{DETACHED_SUFFIX}")


def file_manifest(identity: SingleFile, source: bytes) -> Manifest:
    """The manifest a detached signature of ``source`` covers."""
    return make_manifest(
        canonical(identity.distribution),
        identity.version,
        identity.dist_info,
        {
            identity.filename: (hash_bytes(source), len(source)),
            f"{identity.dist_info}/METADATA": (
                hash_bytes(identity.metadata),
                len(identity.metadata),
            ),
        },
    )


def _read_source(path: Path) -> bytes:
    data = read_small(path, _MAX_SOURCE)
    if data is None:
        raise FileNotFoundError(f"cannot read {path} (missing, not a regular file, or too large)")
    return data


def sign_file(path: StrPath, private_key: Ed25519PrivateKey, out: StrPath | None = None) -> Path:
    """Sign a single-file plugin: write its detached signature, ``<file>.sig``.

    Signing a signed file with another key adds a signature, if the file
    still holds what the first signature covers. The signature file is
    written beside its destination and renamed into place.

    Args:
        path: The plugin's ``.py`` file.
        private_key: The signer's key (see :func:`load_private_key`).
        out: Where to write the signature; ``<path>.sig`` by default.

    Returns:
        The signature file's path.

    Raises:
        InvalidWheelError: the file cannot be signed (its name or
            ``__version__`` is invalid, or an existing signature covers
            other content).
        OSError: it cannot be read or the signature cannot be written.
    """
    source_path = Path(path)
    source = _read_source(source_path)
    try:
        identity = identify(source_path, source)
    except InvalidPluginError as exc:
        raise InvalidWheelError(
            source_path, [Problem(ProblemKind.UNREADABLE, exc.reason, source_path.name)]
        ) from None
    payload = file_manifest(identity, source).to_payload()
    target = Path(out) if out is not None else signature_path(source_path)
    envelope = Envelope(payload, ())
    existing = read_small(target, MAX_ENVELOPE_SIZE + 1) if target.exists() else None
    if existing is not None:
        try:
            envelope = Envelope.from_json(existing)
        except ManifestError as exc:
            raise InvalidWheelError(
                source_path,
                [
                    Problem(
                        ProblemKind.MALFORMED_SIGNATURE,
                        f"the existing signature file is malformed ({exc}); remove it to sign anew",
                        target.name,
                    )
                ],
            ) from None
        if envelope.payload != payload:
            raise InvalidWheelError(
                source_path,
                [
                    Problem(
                        ProblemKind.HASH_MISMATCH,
                        "the file differs from what its existing signatures cover; remove "
                        f"{target.name} to sign it anew",
                        target.name,
                    )
                ],
            )
    _write_atomically(target, envelope.signed(private_key).to_json())
    return target


def _write_atomically(target: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".plugyard-", suffix=".sig.tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def verify_file(
    path: StrPath, keyring: Keyring, signature: StrPath | None = None
) -> VerificationResult:
    """Verify a single-file plugin against its detached signature.

    Never raises for a missing, malformed or wrong signature: everything
    found is in the result's ``problems``.

    Args:
        path: The plugin's ``.py`` file.
        keyring: The trusted keys.
        signature: The signature file; ``<path>.sig`` by default.
    """
    source_path = Path(path)
    sig_path = Path(signature) if signature is not None else signature_path(source_path)
    fallback = canonical(source_path.name.removesuffix(".py"))
    try:
        source = _read_source(source_path)
    except OSError as exc:
        problem = Problem(ProblemKind.NOT_FOUND, str(exc), source_path.name)
        return VerificationResult(fallback, None, (problem,), location=source_path)
    try:
        identity = identify(source_path, source)
    except InvalidPluginError as exc:
        problem = Problem(ProblemKind.UNREADABLE, exc.reason, source_path.name)
        return VerificationResult(fallback, None, (problem,), location=source_path)
    name = canonical(identity.distribution)
    expected = file_manifest(identity, source)
    data = read_small(sig_path, MAX_ENVELOPE_SIZE + 1)
    opened = open_envelope(data, keyring, sig_path.name)
    problems = list(opened.problems)
    manifest = opened.manifest
    if manifest is not None:
        found = list(
            identity_problems(
                manifest, identity.dist_info, name, identity.version, whose="this file's"
            )
        )
        if not found:
            members = {f.path: (f.digest, f.size) for f in expected.files}
            found = list(compare_files(manifest.files, members))
        problems.extend(_named(found, identity.filename, source_path.name))
    return VerificationResult(
        name,
        identity.version,
        tuple(problems),
        opened.signers if manifest is not None else (),
        manifest,
        source_path,
    )


def _named(problems: Iterable[Problem], module_file: str, filename: str) -> Iterable[Problem]:
    """Problems about the module file, named by the file the user has."""
    for problem in problems:
        yield evolve(problem, path=filename) if problem.path == module_file else problem
