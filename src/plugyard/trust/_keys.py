"""Ed25519 keys, their ids, and the keyring a verifier trusts."""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._model import canonical
from .._value import Value
from ._files import read_limited
from ._problems import InvalidKeyError

StrPath = Union[str, "os.PathLike[str]"]

#: The file beside ``<name>.pem`` that limits a key to some distributions.
SCOPE_SUFFIX = ".scope"
#: Larger key or scope files are refused unread.
_MAX_KEYRING_FILE = 1024 * 1024


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The id of a key: the hex SHA-256 of its raw 32-byte public key.

    Verifiers compute it from keys they trust; the id written in a signature
    is only a hint for which key to try first.
    """
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _passphrase_bytes(passphrase: str | bytes | None) -> bytes | None:
    if isinstance(passphrase, str):
        return passphrase.encode("utf-8")
    return passphrase


def generate_key(
    out_dir: StrPath, name: str = "plugyard", *, passphrase: str | bytes | None = None
) -> tuple[Path, Path]:
    """Create an Ed25519 key pair as ``<name>.pem`` and ``<name>.pub.pem`` in ``out_dir``.

    The private key is PKCS #8 PEM, readable by its owner only (mode 0600),
    encrypted when a passphrase is given. ``out_dir`` is created if needed.
    Existing files are never overwritten.

    Args:
        out_dir: Where to write both files.
        name: The files' stem; a label for people, not the key id.
        passphrase: Encrypts the private key file.

    Returns:
        The paths of the private and the public key file.

    Raises:
        FileExistsError: either file already exists.
        InvalidKeyError: ``name`` is not a plain file name.
    """
    if not name or name in {".", ".."} or "/" in name or os.sep in name or "\0" in name:
        raise InvalidKeyError(f"key name {name!r} must be a plain file name")
    directory = Path(out_dir)
    private_path = directory / f"{name}.pem"
    public_path = directory / f"{name}.pub.pem"
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise FileExistsError(
                errno.EEXIST,
                "refusing to overwrite an existing key file; pick another name or "
                "directory, or delete the old key if it is really no longer needed",
                str(path),
            )
    key = Ed25519PrivateKey.generate()
    secret = _passphrase_bytes(passphrase)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write_new(private_path, private_pem, 0o600)
    try:
        _write_new(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink()
        raise
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL closes the race between the exists() check and the write;
    # fchmod sets the mode whatever the umask.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    finally:
        if fd != -1:
            os.close(fd)


def load_private_key(path: StrPath, passphrase: str | bytes | None = None) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a PEM file.

    Raises:
        OSError: the file cannot be read.
        InvalidKeyError: it is not an Ed25519 private key, it is encrypted and
            the passphrase is missing or wrong.
    """
    file = Path(path)
    data = file.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, _passphrase_bytes(passphrase))
    except TypeError:
        msg = (
            "is encrypted: pass its passphrase"
            if passphrase is None
            else "is not encrypted: pass no passphrase"
        )
        raise InvalidKeyError(f"private key {file} {msg}", path=file) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidKeyError(
            f"{file} is not a PEM private key, or the passphrase is wrong", path=file
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidKeyError(
            f"{file} holds a {type(key).__name__}; plugyard signs with Ed25519 keys "
            "(make one with generate_key)",
            path=file,
        )
    return key


def load_public_key(path: StrPath) -> Ed25519PublicKey:
    """Read an Ed25519 public key from a PEM file.

    Raises:
        OSError: the file cannot be read.
        InvalidKeyError: it is not an Ed25519 public key (a private key is
            refused too: keyrings hold public keys only).
    """
    file = Path(path)
    return _public_key(file.read_bytes(), file)


def _public_key(data: bytes, file: Path) -> Ed25519PublicKey:
    if b"PRIVATE KEY-----" in data:
        raise InvalidKeyError(
            f"{file} is a private key; give verifiers the public key ({file.stem}.pub.pem)",
            path=file,
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidKeyError(f"{file} is not a PEM public key", path=file) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidKeyError(
            f"{file} holds a {type(key).__name__}; plugyard verifies Ed25519 keys only",
            path=file,
        )
    return key


def _read_keyring_file(file: Path) -> bytes:
    """A keyring file's bytes; anything that keeps it from being read is an error.

    Raises:
        InvalidKeyError: it cannot be read, is not a regular file (a FIFO, a
            directory, a dangling symlink) or is too large.
    """
    try:
        return read_limited(file, _MAX_KEYRING_FILE)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if file.is_symlink() and not file.exists():
            why = "it is a symlink to nothing"
        raise InvalidKeyError(
            f"{file} cannot be read ({why}); a keyring file that cannot be read is an "
            "error, never the absence of a restriction",
            path=file,
        ) from None


class TrustedKey(Value):
    """A public key a verifier trusts, optionally only for some distributions.

    Attributes:
        key: The Ed25519 public key.
        name: A label for messages, e.g. the key file's stem.
        scope: Canonical distribution names (``fnmatch`` patterns allowed, as
            ``acme-*``) the key may vouch for; ``None`` trusts it for every
            distribution, an empty set for none.
        key_id: The key's id, computed with :func:`key_id`.
    """

    __slots__ = ("key", "key_id", "name", "scope")
    _uncompared = frozenset({"key"})  # compared by key_id, which is made from it
    _derived = ("key_id",)

    key: Ed25519PublicKey
    name: str
    scope: frozenset[str] | None
    key_id: str

    def __init__(
        self, key: Ed25519PublicKey, name: str = "", scope: frozenset[str] | None = None
    ) -> None:
        if scope is not None and any(canonical(p) != p for p in scope):
            raise InvalidKeyError(f"scope {sorted(scope)} must hold canonical distribution names")
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "key_id", key_id(key))

    def allows(self, distribution: str) -> bool:
        """Whether this key may vouch for ``distribution`` (any spelling)."""
        if self.scope is None:
            return True
        name = canonical(distribution)
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.scope)


def _check_keys(value: tuple[TrustedKey, ...]) -> None:
    if not value:
        raise InvalidKeyError("a keyring needs at least one key")
    seen: dict[str, str] = {}
    for key in value:
        if key.key_id in seen:
            raise InvalidKeyError(
                f"key {key.name or key.key_id[:16]!r} is the same key as "
                f"{seen[key.key_id] or key.key_id[:16]!r}; list each key once"
            )
        seen[key.key_id] = key.name


def _check_threshold(keys: tuple[TrustedKey, ...], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidKeyError(f"threshold must be a positive integer, not {value!r}")
    if value > len(keys):
        raise InvalidKeyError(
            f"threshold {value} can never be met by a keyring of {len(keys)} keys"
        )


class Keyring(Value):
    """The public keys a verifier trusts and how many must sign.

    A keyring directory holds public keys as ``<name>.pem`` (or
    ``<name>.pub.pem``, as :func:`generate_key` names them). A key whose
    directory also has ``<name>.scope`` may vouch only for the distributions
    that file lists: one name per line (any spelling; ``fnmatch`` patterns
    such as ``acme-*`` match canonical names), ``#`` starts a comment. An
    empty scope file trusts the key for nothing.

    Attributes:
        keys: The trusted keys.
        threshold: How many distinct trusted keys (in scope) must have signed.
            More than one lets a second key co-sign during a rotation, or
            requires two parties to approve a release.
    """

    __slots__ = ("keys", "threshold")

    keys: tuple[TrustedKey, ...]
    threshold: int

    def __init__(self, keys: tuple[TrustedKey, ...], threshold: int = 1) -> None:
        _check_keys(keys)
        _check_threshold(keys, threshold)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "threshold", threshold)

    @classmethod
    def from_keys(
        cls, keys: Iterable[Ed25519PublicKey | TrustedKey], *, threshold: int = 1
    ) -> Keyring:
        """A keyring of the given keys; bare public keys are trusted for every distribution.

        Raises:
            InvalidKeyError: no key, a key given twice, or a threshold that
                cannot be met.
        """
        trusted = [k if isinstance(k, TrustedKey) else TrustedKey(k) for k in keys]
        return cls(tuple(trusted), threshold)

    @classmethod
    def from_directory(cls, directory: StrPath, *, threshold: int = 1) -> Keyring:
        """A keyring of every ``*.pem`` public key in ``directory``.

        The directory holds nothing else but the scope files of those keys:
        any other entry (a ``<key>.pub.scope``, a scope file of no key, a
        subdirectory, a dangling symlink, a README) is an error, so that a
        misnamed or unreadable scope file can never leave its key trusted for
        every distribution.

        Raises:
            InvalidKeyError: the directory cannot be read, an entry is not a
                key or scope file, a file cannot be read or parsed (a file
                that is not an Ed25519 public key, a private key included), a
                key is present twice, or the threshold cannot be met. The
                error's ``path`` is the file concerned.
        """
        root = Path(directory)
        try:
            names = sorted(os.listdir(root))  # noqa: PTH208 - names, and OSError, are wanted
        except OSError as exc:
            raise InvalidKeyError(
                f"cannot read the keyring directory {root}: {exc.strerror or exc}", path=root
            ) from None
        key_files: list[tuple[str, Path]] = []
        scope_files: dict[str, Path] = {}
        for entry in names:
            file = root / entry
            if entry.endswith(".pem") and entry != ".pem":
                key_files.append((entry.removesuffix(".pem").removesuffix(".pub"), file))
            elif entry.endswith(SCOPE_SUFFIX) and entry != SCOPE_SUFFIX:
                scope_files[entry.removesuffix(SCOPE_SUFFIX)] = file
            else:
                raise InvalidKeyError(
                    f"{file} is neither a public key (<name>.pem, <name>.pub.pem) nor the "
                    "scope file of one (<name>.scope); a keyring directory holds nothing else",
                    path=file,
                )
        stems = {stem for stem, _ in key_files}
        for stem, file in sorted(scope_files.items()):
            if stem not in stems:
                bare = stem.removesuffix(".pub")
                hint = f"; the scope of {bare}.pub.pem is {bare}.scope" if bare in stems else ""
                raise InvalidKeyError(
                    f"{file} is the scope file of no key in {root}{hint}", path=file
                )
        keys: list[TrustedKey] = []
        seen: dict[str, Path] = {}
        for stem, file in key_files:
            key = _public_key(_read_keyring_file(file), file)
            if stem in seen:
                raise InvalidKeyError(
                    f"{file} and {seen[stem].name} are both the key {stem!r}; keep one, so "
                    "that its scope file is not shared by accident",
                    path=file,
                )
            seen[stem] = file
            scope_file = scope_files.get(stem)
            scope = None if scope_file is None else _read_scope(scope_file)
            keys.append(TrustedKey(key, stem, scope))
        if not keys:
            raise InvalidKeyError(
                f"no public keys (*.pem) in {root}: with no trusted key nothing can verify",
                path=root,
            )
        try:
            return cls(tuple(keys), threshold)
        except InvalidKeyError as exc:
            raise InvalidKeyError(f"{root}: {exc}", path=root) from None

    def get(self, key_id: str) -> TrustedKey | None:
        """The trusted key with this id, if any."""
        for key in self.keys:
            if key.key_id == key_id:
                return key
        return None

    def __iter__(self) -> Iterator[TrustedKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _read_scope(file: Path) -> frozenset[str]:
    try:
        text = _read_keyring_file(file).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidKeyError(f"{file} is not UTF-8 text: {exc}", path=file) from None
    names = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        if not all(c.isascii() and (c.isalnum() or c in "._-*?[]") for c in line):
            raise InvalidKeyError(
                f"{file}:{number}: {line!r} is not a distribution name or pattern", path=file
            )
        names.add(canonical(line))
    return frozenset(names)
