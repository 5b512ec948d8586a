"""Signed wheels, verified before import.

Sign a wheel's files (not its ``RECORD``, which every installer rewrites):
:func:`sign_wheel` adds ``<dist-info>/plugyard-signature.json``, a DSSE
envelope of a manifest listing every file's SHA-256 and size. Before
importing a plugin, :func:`verify_distribution` checks the signature against
a :class:`Keyring` and every installed file against the manifest;
:class:`VerifiedImporter` then imports the distribution from the bytes it
verifies, never from ``__pycache__``.

The names are imported on first use: verifying before an import needs the
keyring, the manifest and the importer, not the signing side (zip files,
temporary files) that :func:`sign_wheel` brings.
"""

from __future__ import annotations

from .._public import import_on_first_use

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._detached import DETACHED_SUFFIX, sign_file, verify_file
    from ._entrypoints import check_entry_point
    from ._importer import VerifiedImporter, default_cache_dir
    from ._installed import verify_distribution
    from ._keys import Keyring, TrustedKey, generate_key, key_id, load_private_key, load_public_key
    from ._manifest import PAYLOAD_TYPE, SIGNATURE_FILE, Manifest, ManifestFile
    from ._problems import (
        InvalidKeyError,
        InvalidWheelError,
        Problem,
        ProblemKind,
        SignatureError,
        VerificationResult,
    )
    from ._wheel import sign_wheel, verify_wheel

#: Where each public name is defined.
_HOMES = {
    **dict.fromkeys(["DETACHED_SUFFIX", "sign_file", "verify_file"], "_detached"),
    "check_entry_point": "_entrypoints",
    **dict.fromkeys(["VerifiedImporter", "default_cache_dir"], "_importer"),
    "verify_distribution": "_installed",
    **dict.fromkeys(
        ["Keyring", "TrustedKey", "generate_key", "key_id", "load_private_key", "load_public_key"],
        "_keys",
    ),
    **dict.fromkeys(["PAYLOAD_TYPE", "SIGNATURE_FILE", "Manifest", "ManifestFile"], "_manifest"),
    **dict.fromkeys(
        [
            "InvalidKeyError",
            "InvalidWheelError",
            "Problem",
            "ProblemKind",
            "SignatureError",
            "VerificationResult",
        ],
        "_problems",
    ),
    **dict.fromkeys(["sign_wheel", "verify_wheel"], "_wheel"),
}

__all__ = [
    "DETACHED_SUFFIX",
    "PAYLOAD_TYPE",
    "SIGNATURE_FILE",
    "InvalidKeyError",
    "InvalidWheelError",
    "Keyring",
    "Manifest",
    "ManifestFile",
    "Problem",
    "ProblemKind",
    "SignatureError",
    "TrustedKey",
    "VerificationResult",
    "VerifiedImporter",
    "check_entry_point",
    "default_cache_dir",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign_file",
    "sign_wheel",
    "verify_distribution",
    "verify_file",
    "verify_wheel",
]


__getattr__, __dir__ = import_on_first_use(__name__, globals(), _HOMES)
