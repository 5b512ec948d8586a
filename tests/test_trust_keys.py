"""Keys, key ids and keyrings."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from plugyard.exceptions import PluginError
from plugyard.trust import (
    InvalidKeyError,
    Keyring,
    TrustedKey,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
)


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_generate_key_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    private, public = generate_key(tmp_path / "keys", "release")

    assert (private.name, public.name) == ("release.pem", "release.pub.pem")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    assert key_id(load_private_key(private)) == key_id(load_public_key(public))


def test_key_id_is_the_sha256_of_the_raw_public_key() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    assert key_id(key) == key_id(key.public_key()) == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("existing", ["k.pem", "k.pub.pem"])
def test_generate_key_never_overwrites(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")

    with pytest.raises(FileExistsError, match="refusing to overwrite") as exc:
        generate_key(tmp_path, "k")

    assert exc.value.filename == str(tmp_path / existing)
    assert (tmp_path / existing).read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_generate_key_refuses_names_that_are_not_file_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidKeyError):
        generate_key(tmp_path, name)


def test_passphrase_encrypts_the_private_key(tmp_path: Path) -> None:
    private, public = generate_key(tmp_path, passphrase="correct horse")  # noqa: S106

    assert b"ENCRYPTED" in private.read_bytes()
    with pytest.raises(InvalidKeyError, match="pass its passphrase") as exc:
        load_private_key(private)
    assert exc.value.path == private
    with pytest.raises(InvalidKeyError, match="passphrase is wrong"):
        load_private_key(private, "battery staple")
    loaded = load_private_key(private, b"correct horse")
    assert key_id(loaded) == key_id(load_public_key(public))


def test_a_passphrase_for_an_unencrypted_key_is_refused(tmp_path: Path) -> None:
    private, _ = generate_key(tmp_path)

    with pytest.raises(InvalidKeyError, match="not encrypted"):
        load_private_key(private, "surprise")


def test_keys_that_are_not_ed25519_are_refused(tmp_path: Path) -> None:
    # Small: only its type matters, and 1024 bits generate fast.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    private = tmp_path / "rsa.pem"
    private.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "rsa.pub.pem"
    public.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    with pytest.raises(InvalidKeyError, match="Ed25519"):
        load_private_key(private)
    with pytest.raises(InvalidKeyError, match="Ed25519"):
        load_public_key(public)


def test_garbage_is_not_a_key(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")

    with pytest.raises(InvalidKeyError, match="not a PEM public key"):
        load_public_key(junk)
    with pytest.raises(InvalidKeyError, match="not a PEM private key"):
        load_private_key(junk)


def test_a_private_key_is_never_taken_as_a_public_one(tmp_path: Path) -> None:
    private, _ = generate_key(tmp_path)

    with pytest.raises(InvalidKeyError, match="is a private key") as exc:
        load_public_key(private)

    assert isinstance(exc.value, PluginError)
    assert isinstance(exc.value, ValueError)


def test_keyring_directory_reads_every_public_key_with_its_scope(tmp_path: Path) -> None:
    alice, bob = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "alice.pub.pem").write_bytes(_public_pem(alice))
    (tmp_path / "bob.pem").write_bytes(_public_pem(bob))
    (tmp_path / "bob.scope").write_text("# bob publishes the exporters\nAcme_Exporter\nacme-x-*\n")

    ring = Keyring.from_directory(tmp_path)

    assert [k.name for k in ring] == ["alice", "bob"]
    assert len(ring) == 2
    assert ring.threshold == 1
    found = ring.get(key_id(bob))
    assert found is not None
    assert found.scope == frozenset({"acme-exporter", "acme-x-*"})
    assert found.allows("ACME.exporter")
    assert found.allows("acme_x_pdf")
    assert not found.allows("acme-importer")
    trusted_alice = ring.get(key_id(alice))
    assert trusted_alice is not None
    assert trusted_alice.allows("anything")
    assert ring.get("0" * 64) is None


def test_an_empty_scope_file_trusts_the_key_for_nothing(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(_public_pem(Ed25519PrivateKey.generate()))
    (tmp_path / "k.scope").write_text("# retired\n")

    (key,) = Keyring.from_directory(tmp_path)

    assert key.scope == frozenset()
    assert not key.allows("demo-pkg")


def test_a_scope_line_that_is_no_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(_public_pem(Ed25519PrivateKey.generate()))
    (tmp_path / "k.scope").write_text("good-name\nbad name; rm -rf\n")

    with pytest.raises(InvalidKeyError, match=r"k.scope:2") as exc:
        Keyring.from_directory(tmp_path)
    assert exc.value.path == tmp_path / "k.scope"


@pytest.mark.parametrize(
    ("files", "threshold", "message"),
    [
        ([], 1, "no public keys"),
        (["a"], 2, "can never be met"),
        (["a"], 0, "positive integer"),
        (["a", "a-again"], 1, "same key"),
    ],
)
def test_keyrings_that_cannot_work_are_refused(
    tmp_path: Path, files: list[str], threshold: int, message: str
) -> None:
    key = Ed25519PrivateKey.generate()
    for name in files:
        (tmp_path / f"{name}.pem").write_bytes(_public_pem(key))

    with pytest.raises(InvalidKeyError, match=message):
        Keyring.from_directory(tmp_path, threshold=threshold)


def test_a_private_key_in_a_keyring_directory_is_refused(tmp_path: Path) -> None:
    generate_key(tmp_path, "oops")

    with pytest.raises(InvalidKeyError, match="is a private key"):
        Keyring.from_directory(tmp_path)


def test_keyring_from_keys_accepts_bare_and_scoped_keys() -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()

    ring = Keyring.from_keys(
        [a.public_key(), TrustedKey(b.public_key(), "b", frozenset({"demo-pkg"}))], threshold=2
    )

    assert [k.key_id for k in ring] == [key_id(a), key_id(b)]
    assert ring.threshold == 2
    with pytest.raises(InvalidKeyError, match="canonical"):
        TrustedKey(b.public_key(), scope=frozenset({"Demo_Pkg"}))
    with pytest.raises(InvalidKeyError, match="at least one key"):
        Keyring.from_keys([])


# -- a keyring directory fails closed ------------------------------------------------


def _ring_with_key(directory: Path, name: str = "vendor") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.pub.pem").write_bytes(_public_pem(Ed25519PrivateKey.generate()))
    return directory


def test_a_scope_file_named_after_the_pub_pem_is_refused_with_the_right_name(
    tmp_path: Path,
) -> None:
    """``vendor.pub.scope`` used to be ignored, leaving the key trusted for everything."""
    ring = _ring_with_key(tmp_path)
    (ring / "vendor.pub.scope").write_text("vendor-*\n")

    with pytest.raises(
        InvalidKeyError, match=r"the scope of vendor\.pub\.pem is vendor\.scope"
    ) as exc:
        Keyring.from_directory(ring)

    assert exc.value.path == ring / "vendor.pub.scope"


def test_a_dangling_scope_symlink_is_an_error_not_an_unrestricted_key(tmp_path: Path) -> None:
    ring = _ring_with_key(tmp_path)
    (ring / "vendor.scope").symlink_to(tmp_path / "gone.scope")

    with pytest.raises(InvalidKeyError, match="symlink to nothing") as exc:
        Keyring.from_directory(ring)

    assert exc.value.path == ring / "vendor.scope"


def test_a_scope_symlink_to_a_readable_file_is_followed(tmp_path: Path) -> None:
    ring = _ring_with_key(tmp_path / "ring")
    (tmp_path / "shared.scope").write_text("vendor-*\n")
    (ring / "vendor.scope").symlink_to(tmp_path / "shared.scope")

    (key,) = Keyring.from_directory(ring)

    assert key.scope == frozenset({"vendor-*"})


@pytest.mark.parametrize(
    ("entry", "make", "message"),
    [
        ("vendor.scope", "directory", "cannot be read"),
        ("vendor.scope", "fifo", "cannot be read"),
        ("vendor.scope", "latin-1", "is not UTF-8"),
        ("vendor.scope", "huge", "cannot be read"),
        ("other.scope", "text", "is the scope file of no key"),
        ("README", "text", "is neither a public key"),
        ("vendor.scope~", "text", "is neither a public key"),
        (".vendor.scope.swp", "text", "is neither a public key"),
        ("keys", "directory", "is neither a public key"),
        ("second.pem", "dangling", "symlink to nothing"),
        ("second.pem", "directory", "cannot be read"),
        ("second.pem", "text", "is not a PEM public key"),
    ],
)
def test_anything_a_keyring_cannot_read_or_recognize_is_an_error_naming_it(
    tmp_path: Path, entry: str, make: str, message: str
) -> None:
    ring = _ring_with_key(tmp_path / "ring")
    target = ring / entry
    if make == "directory":
        target.mkdir()
    elif make == "fifo":
        os.mkfifo(target)
    elif make == "latin-1":
        target.write_bytes("vendör\n".encode("latin-1"))
    elif make == "huge":
        target.write_bytes(b"# padding\n" * 200_000)
    elif make == "dangling":
        target.symlink_to(tmp_path / "nowhere.pem")
    else:
        target.write_text("vendor-x\n")

    with pytest.raises(InvalidKeyError, match=message) as exc:
        Keyring.from_directory(ring)

    assert exc.value.path == target
    assert str(target) in str(exc.value)


def test_a_missing_keyring_directory_is_an_invalid_key_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidKeyError, match="cannot read the keyring directory") as exc:
        Keyring.from_directory(tmp_path / "absent")

    assert exc.value.path == tmp_path / "absent"


_PEM = _public_pem(Ed25519PrivateKey.generate())
_ENTRY_NAMES = st.sampled_from(
    ["k.pem", "k.pub.pem", "k.scope", "k.pub.scope", "j.pem", "j.scope", "x", ".pem", ".scope"]
)
_CONTENTS = st.one_of(
    st.just(_PEM),
    st.binary(max_size=64),
    st.text(alphabet="abc-_.*?[]# \n\u00e9", max_size=40).map(str.encode),
    st.sampled_from(["directory", "dangling", "fifo"]),
)


@settings(max_examples=80, deadline=None)
@given(entries=st.dictionaries(_ENTRY_NAMES, _CONTENTS, max_size=5))
def test_any_keyring_directory_gives_a_keyring_or_an_invalid_key_error(
    entries: dict[str, bytes | str],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ring = Path(tmp) / "ring"
        ring.mkdir()
        for name, content in entries.items():
            target = ring / name
            if content == "directory":
                target.mkdir()
            elif content == "dangling":
                target.symlink_to(Path(tmp) / "nowhere")
            elif content == "fifo":
                os.mkfifo(target)
            else:
                assert isinstance(content, bytes)
                target.write_bytes(content)
        error: InvalidKeyError | None = None
        try:
            keyring = Keyring.from_directory(ring)
        except InvalidKeyError as exc:
            error = exc
    if error is not None:
        assert error.path is not None
        assert str(error.path) in str(error)
        return
    # It loaded: then every entry was a readable key or the scope file of one.
    stems = {n.removesuffix(".pem").removesuffix(".pub") for n in entries if n.endswith(".pem")}
    assert all(n.endswith((".pem", ".scope")) for n in entries)
    assert {n.removesuffix(".scope") for n in entries if n.endswith(".scope")} <= stems
    for key in keyring:
        assert (f"{key.name}.scope" in entries) == (key.scope is not None)
