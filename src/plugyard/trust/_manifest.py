"""The signed manifest and its DSSE envelope.

The manifest lists ``[path, hash, size]`` for every file of a wheel except
``RECORD`` and the signature file, with the distribution's canonical name,
version and dist-info directory. It is encoded as canonical JSON (sorted
keys, no spaces, UTF-8) and wrapped in a DSSE envelope whose Ed25519
signatures cover the DSSE pre-authentication encoding (PAE) of the payload.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .._model import canonical
from .._value import Value
from ._files import record_hash
from ._keys import Keyring, key_id
from ._problems import Problem, ProblemKind

#: The DSSE payload type of a plugyard manifest.
PAYLOAD_TYPE = "application/vnd.plugyard.manifest+json"
#: The signature file's name inside the dist-info directory.
SIGNATURE_FILE = "plugyard-signature.json"
#: Larger signature files are refused unread: a manifest of ~20,000 files fits.
MAX_ENVELOPE_SIZE = 4 * 1024 * 1024
#: More signatures than this are refused: rotation needs two or three.
MAX_SIGNATURES = 16

_HASH = re.compile(r"^sha256=[A-Za-z0-9_-]{43}$")
# Every hash of a manifest, one per line: what _HASH accepts, in one call.
_HASHES = re.compile(r"sha256=[A-Za-z0-9_-]{43}(?:\nsha256=[A-Za-z0-9_-]{43})*", re.ASCII)
_BAD_PARTS = frozenset({"", ".", ".."})
# Paths path_problem() certainly accepts, checked in one call: components of
# ASCII letters, digits and ``_.+-`` not starting with a dot, no __pycache__,
# no bytecode suffix. Any other path is left to path_problem().
_PLAIN_PATH = re.compile(
    r"(?!(?:.*/)?__pycache__(?:/|\Z))(?!.*\.py[co]\Z)[\w+-][\w.+-]*(?:/[\w+-][\w.+-]*)*",
    re.ASCII,
)
# Every path of a manifest, one per line, made of such components (in one call;
# bytecode and __pycache__ are looked for apart, without backtracking).
_PLAIN_LINE = r"[\w+-][\w.+-]*(?:/[\w+-][\w.+-]*)*"
_PLAIN_PATHS = re.compile(rf"{_PLAIN_LINE}(?:\n{_PLAIN_LINE})*", re.ASCII)
_BYTECODE_LINE = re.compile(r"\.py[co](?:\n|\Z)")
_ED25519_SIGNATURE_SIZE = 64


class ManifestError(ValueError):
    """The payload or envelope is malformed; the message says how."""


def hash_bytes(data: bytes) -> str:
    """The ``RECORD``-style SHA-256 of ``data``."""
    return record_hash(hashlib.sha256(data).digest())


def digest_of(hash_text: str) -> bytes:
    """The raw digest of a ``sha256=...`` string (which must be valid)."""
    return base64.urlsafe_b64decode(hash_text.removeprefix("sha256=") + "=")


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe wheel member path, or ``None`` if it is.

    Safe means relative, ``/``-separated, no empty, ``.`` or ``..``
    component, no backslash, NUL or drive letter, and no bytecode.
    """
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return "absolute or not a '/'-separated relative path"
    parts = path.split("/")
    if not _BAD_PARTS.isdisjoint(parts):
        return "has an empty, '.' or '..' component"
    if ":" in parts[0]:
        return "starts with a drive letter or a URL scheme"
    if "__pycache__" in parts or path.endswith((".pyc", ".pyo")):
        return "is compiled bytecode: ship sources; bytecode is neither signed nor trusted"
    return None


class ManifestFile(NamedTuple):
    """One file of a signed manifest: ``(path, digest, size)``.

    A named tuple rather than an attrs class: one is made per file of every
    verification.
    """

    path: str
    digest: str
    size: int


# The fields' documentation (a named tuple's fields are properties of the class).
ManifestFile.path.__doc__ = "Its path in the wheel."
ManifestFile.digest.__doc__ = "``sha256=`` + urlsafe base64 of its SHA-256, as in ``RECORD``."
ManifestFile.size.__doc__ = "Its size in bytes."


class Manifest(Value):
    """What a signature vouches for: one wheel's files.

    Attributes:
        name: The distribution's canonical name.
        version: Its version, as its ``METADATA`` spells it.
        dist_info: The ``<name>-<version>.dist-info`` directory.
        files: Every file but ``RECORD`` and the signature, sorted by path.
    """

    __slots__ = ("dist_info", "files", "name", "version")

    name: str
    version: str
    dist_info: str
    files: tuple[ManifestFile, ...]

    def __init__(
        self, name: str, version: str, dist_info: str, files: tuple[ManifestFile, ...]
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "dist_info", dist_info)
        object.__setattr__(self, "files", files)

    @property
    def data_dir(self) -> str:
        """The wheel's ``<name>-<version>.data`` directory."""
        return self.dist_info.removesuffix(".dist-info") + ".data"

    def installed_path(self, path: str) -> str:
        """Where a wheel member lands, relative to the site directory.

        ``.data/purelib`` and ``.data/platlib`` members land beside the
        dist-info directory (plugyard assumes purelib and platlib are one
        directory, as in virtual environments).
        """
        for scheme in ("purelib", "platlib"):
            prefix = f"{self.data_dir}/{scheme}/"
            if path.startswith(prefix):
                return path[len(prefix) :]
        return path

    def installed_files(self) -> dict[str, ManifestFile]:
        """The files keyed by where they land, relative to the site directory."""
        data_dir = f"{self.data_dir}/"
        if not any(f.path.startswith(data_dir) for f in self.files):
            return {f.path: f for f in self.files}
        return {self.installed_path(f.path): f for f in self.files}

    def to_payload(self) -> bytes:
        """The canonical JSON that is signed."""
        doc = {
            "dist_info": self.dist_info,
            "files": [[f.path, f.digest, f.size] for f in self.files],
            "name": self.name,
            "version": self.version,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> Manifest:
        """Parse and check a payload; it must be in canonical form.

        Raises:
            ManifestError: it is not a well-formed manifest.
        """
        doc = _load_json(payload, "manifest")
        if not isinstance(doc, dict) or set(doc) != {"dist_info", "files", "name", "version"}:
            raise ManifestError("a manifest is an object of dist_info, files, name and version")
        name, version, dist_info, files = (
            doc[k] for k in ("name", "version", "dist_info", "files")
        )
        if not isinstance(name, str) or not name or canonical(name) != name:
            raise ManifestError(f"name {name!r} is not a canonical distribution name")
        if not isinstance(version, str) or not version or len(version) > 200:
            raise ManifestError(f"version {version!r} is not a version string")
        if (
            not isinstance(dist_info, str)
            or not dist_info.endswith(".dist-info")
            or path_problem(dist_info) is not None
            or "/" in dist_info
        ):
            raise ManifestError(f"dist_info {dist_info!r} is not a dist-info directory name")
        if not isinstance(files, list):
            raise ManifestError("files is not a list")
        unsigned = frozenset({f"{dist_info}/RECORD", f"{dist_info}/{SIGNATURE_FILE}"})
        entries = _fast_entries(files, unsigned)
        if entries is None:
            entries = tuple([_parse_entry(entry, unsigned) for entry in files])
        paths = [f.path for f in entries]
        if f"{dist_info}/METADATA" not in paths:
            raise ManifestError(f"the manifest does not list {dist_info}/METADATA")
        if any(a >= b for a, b in itertools.pairwise(paths)):
            raise ManifestError("the manifest's files are not sorted by path, each once")
        manifest = cls(name, version, dist_info, entries)
        if manifest.to_payload() != payload:
            raise ManifestError("the manifest is not in canonical form (sorted keys, compact)")
        return manifest


def _fast_entries(files: list[Any], unsigned: frozenset[str]) -> tuple[ManifestFile, ...] | None:
    """The entries, when every one is plainly valid (checked in a few calls); else ``None``.

    ``None`` leaves them to :func:`_parse_entry`, which says what is wrong.
    """
    if not all(type(e) is list and len(e) == 3 for e in files):
        return None
    paths = [e[0] for e in files]
    digests = [e[1] for e in files]
    if not (
        all(type(p) is str for p in paths)
        and all(type(d) is str for d in digests)
        and all(type(e[2]) is int and e[2] >= 0 for e in files)
    ):
        return None
    lines = "\n".join(paths)
    if (
        "__pycache__" in lines
        or _PLAIN_PATHS.fullmatch(lines) is None
        or _BYTECODE_LINE.search(lines) is not None
        or _HASHES.fullmatch("\n".join(digests)) is None
        or not unsigned.isdisjoint(paths)
    ):
        return None
    return tuple(map(ManifestFile._make, files))


def _parse_entry(entry: object, unsigned: frozenset[str]) -> ManifestFile:
    if not isinstance(entry, list) or len(entry) != 3:
        raise ManifestError(f"file entry {entry!r} is not [path, hash, size]")
    path, digest, size = entry
    if not isinstance(path, str) or (
        _PLAIN_PATH.fullmatch(path) is None and path_problem(path) is not None
    ):
        raise ManifestError(f"file path {path!r} is not a safe relative path")
    if path in unsigned:
        raise ManifestError(f"{path} cannot be in the manifest")
    if not isinstance(digest, str) or not _HASH.match(digest):
        raise ManifestError(f"hash {digest!r} of {path} is not sha256=<urlsafe base64>")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestError(f"size {size!r} of {path} is not a non-negative integer")
    return ManifestFile(path, digest, size)


def _load_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and over-long integers.
        raise ManifestError(f"the {what} is not JSON: {exc}") from None


def make_manifest(
    name: str, version: str, dist_info: str, files: Mapping[str, tuple[str, int]]
) -> Manifest:
    """Build a manifest from ``{path: (hash, size)}``."""
    entries = tuple(ManifestFile(p, h, s) for p, (h, s) in sorted(files.items()))
    return Manifest(canonical(name), version, dist_info, entries)


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding the signatures cover."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


class Envelope(Value):
    """A parsed DSSE envelope.

    Attributes:
        payload: The decoded payload.
        signatures: ``(keyid hint or None, raw signature)`` pairs.
    """

    __slots__ = ("payload", "signatures")

    payload: bytes
    signatures: tuple[tuple[str | None, bytes], ...]

    def __init__(self, payload: bytes, signatures: tuple[tuple[str | None, bytes], ...]) -> None:
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "signatures", signatures)

    def to_json(self) -> bytes:
        """The envelope as written into the wheel."""
        doc = {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [
                {"keyid": hint, "sig": base64.b64encode(sig).decode("ascii")}
                if hint is not None
                else {"sig": base64.b64encode(sig).decode("ascii")}
                for hint, sig in self.signatures
            ],
        }
        return (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse an envelope; the payload stays unchecked until a signature verifies.

        Raises:
            ManifestError: it is not a DSSE envelope of a plugyard manifest.
        """
        if len(data) > MAX_ENVELOPE_SIZE:
            raise ManifestError(f"the signature file is larger than {MAX_ENVELOPE_SIZE} bytes")
        doc = _load_json(data, "signature file")
        if not isinstance(doc, dict):
            raise ManifestError("the signature file is not a DSSE envelope (a JSON object)")
        if doc.get("payloadType") != PAYLOAD_TYPE:
            raise ManifestError(f"payloadType is not {PAYLOAD_TYPE!r}")
        payload = _b64(doc.get("payload"), "payload")
        signatures = doc.get("signatures")
        if not isinstance(signatures, list) or not 1 <= len(signatures) <= MAX_SIGNATURES:
            raise ManifestError(f"signatures is not a list of 1 to {MAX_SIGNATURES} entries")
        pairs = []
        for entry in signatures:
            if not isinstance(entry, dict):
                raise ManifestError("a signature is not an object")
            hint = entry.get("keyid")
            if hint is not None and (not isinstance(hint, str) or len(hint) > 128):
                raise ManifestError("a keyid is not a short string")
            sig = _b64(entry.get("sig"), "sig")
            if len(sig) != _ED25519_SIGNATURE_SIZE:
                raise ManifestError(f"a signature is {len(sig)} bytes, not an Ed25519 signature")
            pairs.append((hint or None, sig))
        return cls(payload, tuple(pairs))

    def signed(self, key: Ed25519PrivateKey) -> Envelope:
        """This envelope with ``key``'s signature added (once per key)."""
        kid = key_id(key)
        sig = key.sign(pae(PAYLOAD_TYPE, self.payload))
        if (kid, sig) in self.signatures:
            return self
        return Envelope(self.payload, (*self.signatures, (kid, sig)))


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ManifestError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ManifestError(f"{what} is not valid base64") from None


class Opened(Value):
    """What opening an envelope with a keyring gave."""

    __slots__ = ("manifest", "problems", "signers")

    manifest: Manifest | None
    signers: tuple[str, ...]
    problems: tuple[Problem, ...]

    def __init__(
        self, manifest: Manifest | None, signers: tuple[str, ...], problems: tuple[Problem, ...]
    ) -> None:
        object.__setattr__(self, "manifest", manifest)
        object.__setattr__(self, "signers", signers)
        object.__setattr__(self, "problems", problems)


def open_envelope(data: bytes | None, keyring: Keyring, where: str) -> Opened:
    """Check an envelope's signatures against ``keyring`` and parse its manifest.

    The key ids written in the envelope only choose which key to try first:
    every trusted key is tried, and only the ids computed from trusted keys
    count. A manifest is returned only once enough trusted keys in scope
    signed it.

    Args:
        data: The signature file's bytes, or ``None`` when it is missing.
        keyring: The trusted keys and the threshold.
        where: The signature file's path, for problems.
    """
    if data is None:
        return _fail(
            ProblemKind.MISSING_SIGNATURE,
            "not signed: there is no signature file; sign the wheel with `plugyard sign`",
            where,
        )
    try:
        envelope = Envelope.from_json(data)
    except ManifestError as exc:
        return _fail(ProblemKind.MALFORMED_SIGNATURE, f"malformed signature file: {exc}", where)
    message = pae(PAYLOAD_TYPE, envelope.payload)
    signers: list[str] = []
    for hint, sig in envelope.signatures:
        for key in _try_order(keyring, hint):
            if key.key_id in signers:
                continue
            try:
                key.key.verify(sig, message)
            except InvalidSignature:
                continue
            signers.append(key.key_id)
            break
    if not signers:
        hints = {h for h, _ in envelope.signatures if h}
        trusted_hints = sorted(h for h in hints if keyring.get(h) is not None)
        if trusted_hints:
            return _fail(
                ProblemKind.BAD_SIGNATURE,
                f"the signature by trusted key {trusted_hints[0][:16]} does not verify: "
                "the signed manifest or the signature was changed",
                where,
            )
        named = ", ".join(sorted(h[:16] for h in hints)) or "no key id given"
        return _fail(
            ProblemKind.UNKNOWN_KEY,
            f"no signature verifies with a trusted key (signed by: {named}); add the "
            "signer's public key to the keyring if you trust it",
            where,
        )
    try:
        manifest = Manifest.from_payload(envelope.payload)
    except ManifestError as exc:
        return _fail(ProblemKind.MALFORMED_MANIFEST, f"malformed signed manifest: {exc}", where)
    in_scope = tuple(k for k in signers if _allows(keyring, k, manifest.name))
    if len(in_scope) >= keyring.threshold:
        return Opened(manifest, in_scope, ())
    if len(in_scope) < len(signers):
        return _fail(
            ProblemKind.KEY_OUT_OF_SCOPE,
            f"signed by trusted keys not scoped to {manifest.name!r}; add the name to the "
            "key's .scope file if that key may vouch for it",
            where,
        )
    return _fail(
        ProblemKind.THRESHOLD_NOT_MET,
        f"{len(in_scope)} trusted key(s) signed; the keyring requires {keyring.threshold}",
        where,
    )


def _allows(keyring: Keyring, kid: str, name: str) -> bool:
    key = keyring.get(kid)
    return key is not None and key.allows(name)


def _try_order(keyring: Keyring, hint: str | None) -> Iterable[Any]:
    hinted = keyring.get(hint) if hint else None
    if hinted is None:
        return keyring.keys
    return (hinted, *(k for k in keyring.keys if k is not hinted))


def _fail(kind: ProblemKind, message: str, where: str) -> Opened:
    return Opened(None, (), (Problem(kind, message, where),))
