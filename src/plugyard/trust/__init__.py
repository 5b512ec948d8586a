"""Signed wheels, verified before import.

Sign a wheel's files (not its ``RECORD``, which every installer rewrites):
:func:`sign_wheel` adds ``<dist-info>/plugyard-signature.json``, a DSSE
envelope of a manifest listing every file's SHA-256 and size. Before
importing a plugin, :func:`verify_distribution` checks the signature against
a :class:`Keyring` and every installed file against the manifest;
:class:`VerifiedImporter` then imports the distribution from the bytes it
verifies, never from ``__pycache__``.
"""

from __future__ import annotations

from .. import _public
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

_public.present_as(__name__, globals(), __all__)
