"""Signing wheels and verifying wheel files."""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from installer.sources import WheelFile

from plugyard.exceptions import PluginError
from plugyard.trust import (
    PAYLOAD_TYPE,
    InvalidWheelError,
    Keyring,
    Problem,
    ProblemKind,
    SignatureError,
    TrustedKey,
    key_id,
    sign_wheel,
    verify_wheel,
)
from trust_helpers import (
    RecordRows,
    dist_info_of,
    keyring_of,
    read_member,
    record_hash,
    rewrite_wheel,
    write_wheel,
)

INFO = dist_info_of("demo-pkg", "1.0")
SIG = f"{INFO}/plugyard-signature.json"
FILES = {
    "demo/__init__.py": "VALUE = 'genuine'\n",
    "demo/core.py": "def run(): return 1\n",
    "demo/data/table.csv": "a,b\n1,2\n",
    f"{INFO}/entry_points.txt": "[plugyard.tests]\ndemo = demo:run\n",
}


@pytest.fixture(name="key")
def fixture_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(name="wheel")
def fixture_wheel(tmp_path: Path) -> Path:
    return write_wheel(tmp_path / "dist", FILES)


@pytest.fixture(name="signed")
def fixture_signed(wheel: Path, key: Ed25519PrivateKey, tmp_path: Path) -> Path:
    out = tmp_path / "signed"
    out.mkdir()
    return sign_wheel(wheel, key, out)


def _envelope(wheel: Path) -> dict[str, Any]:
    doc = json.loads(read_member(wheel, "plugyard-signature.json"))
    assert isinstance(doc, dict)
    return doc


def _kinds(problems: Iterable[Problem]) -> set[tuple[ProblemKind, str | None]]:
    return {(p.kind, p.path) for p in problems}


def test_a_signed_wheel_verifies(signed: Path, key: Ed25519PrivateKey) -> None:
    result = verify_wheel(signed, keyring_of(key))

    assert result.ok, result.problems
    assert result.distribution == "demo-pkg"
    assert result.version == "1.0"
    assert result.signers == (key_id(key),)
    assert result.location == signed
    assert not result.installed
    assert result.raise_for_problems() is result


def test_the_envelope_is_dsse_over_a_canonical_manifest(
    signed: Path, key: Ed25519PrivateKey
) -> None:
    doc = _envelope(signed)

    assert doc["payloadType"] == PAYLOAD_TYPE
    payload = base64.b64decode(str(doc["payload"]))
    (sig,) = doc["signatures"]
    assert sig["keyid"] == key_id(key)
    # Checked here by hand, the way any DSSE implementation would.
    pae = b"DSSEv1 %d %b %d %b" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    key.public_key().verify(base64.b64decode(sig["sig"]), pae)
    manifest = json.loads(payload)
    assert payload == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    assert manifest["name"] == "demo-pkg"
    assert manifest["version"] == "1.0"
    assert manifest["dist_info"] == INFO
    paths = [row[0] for row in manifest["files"]]
    assert paths == sorted(paths)
    assert f"{INFO}/RECORD" not in paths
    assert SIG not in paths
    assert ["demo/core.py", record_hash(b"def run(): return 1\n"), 20] in manifest["files"]


def test_the_regenerated_record_lists_the_signature_and_installers_accept_it(
    signed: Path,
) -> None:
    record = read_member(signed, "RECORD").decode()
    signature = read_member(signed, "plugyard-signature.json")

    assert f"{SIG},{record_hash(signature)},{len(signature)}" in record.splitlines()
    assert record.splitlines()[-1] == f"{INFO}/RECORD,,"
    with WheelFile.open(signed) as source:
        source.validate_record()


def test_signing_in_place_replaces_the_wheel_atomically(
    wheel: Path, key: Ed25519PrivateKey
) -> None:
    assert sign_wheel(wheel, key) == wheel

    assert verify_wheel(wheel, keyring_of(key)).ok
    assert sorted(p.name for p in wheel.parent.iterdir()) == [wheel.name]


def test_signing_to_a_file_leaves_the_original_alone(
    wheel: Path, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    before = wheel.read_bytes()
    target = tmp_path / "demo_pkg-1.0-py3-none-any.whl"

    assert sign_wheel(wheel, key, target) == target
    assert wheel.read_bytes() == before
    assert verify_wheel(target, keyring_of(key)).ok


def _drop_row(path: str) -> Callable[[RecordRows], RecordRows]:
    return lambda rows: [r for r in rows if r[0] != path]


def _wrong_hash(rows: RecordRows) -> RecordRows:
    return [[p, record_hash(b"other") if p == "demo/core.py" else h, s] for p, h, s in rows]


def _phantom_row(rows: RecordRows) -> RecordRows:
    return [*rows, ["demo/ghost.py", record_hash(b""), "0"]]


def _wrong_size(rows: RecordRows) -> RecordRows:
    return [[p, h, "999" if p == "demo/core.py" else s] for p, h, s in rows]


def _sha1(rows: RecordRows) -> RecordRows:
    return [[p, "sha1=abc" if p == "demo/core.py" else h, s] for p, h, s in rows]


@pytest.mark.parametrize(
    ("files", "unrecorded", "record_edit", "kind", "path"),
    [
        ({"demo/core.pyc": "x"}, {}, None, ProblemKind.FORBIDDEN_FILE, "demo/core.pyc"),
        (
            {"demo/__pycache__/core.cpython-311.pyc": "x"},
            {},
            None,
            ProblemKind.FORBIDDEN_FILE,
            "demo/__pycache__/core.cpython-311.pyc",
        ),
        ({"/etc/evil.py": "x"}, {}, None, ProblemKind.FORBIDDEN_FILE, "/etc/evil.py"),
        ({"demo/../../evil.py": "x"}, {}, None, ProblemKind.FORBIDDEN_FILE, "demo/../../evil.py"),
        ({"demo\\evil.py": "x"}, {}, None, ProblemKind.FORBIDDEN_FILE, "demo\\evil.py"),
        (
            {"demo_pkg-1.0.data/scripts/run": "#!/bin/sh"},
            {},
            None,
            ProblemKind.FORBIDDEN_FILE,
            "demo_pkg-1.0.data/scripts/run",
        ),
        (
            {"demo_pkg-1.0.data/headers/x.h": ""},
            {},
            None,
            ProblemKind.FORBIDDEN_FILE,
            "demo_pkg-1.0.data/headers/x.h",
        ),
        ({"other.data/purelib/x.py": ""}, {}, None, ProblemKind.FORBIDDEN_FILE, None),
        (
            {"demo_pkg-1.0.data/data/lib64/python3.11/site-packages/evil.pth": "import os"},
            {},
            None,
            ProblemKind.FORBIDDEN_FILE,
            "demo_pkg-1.0.data/data/lib64/python3.11/site-packages/evil.pth",
        ),
        ({"sitecustomize.py": "x"}, {}, None, ProblemKind.FORBIDDEN_FILE, "sitecustomize.py"),
        (
            {"demo_pkg-1.0.data/purelib/usercustomize.py": "x"},
            {},
            None,
            ProblemKind.FORBIDDEN_FILE,
            "demo_pkg-1.0.data/purelib/usercustomize.py",
        ),
        ({"demo.pth": "/home/dev/src\n"}, {}, None, ProblemKind.FORBIDDEN_FILE, "demo.pth"),
        (
            {"demo_pkg-1.0.data/platlib/x.pth": "import os"},
            {},
            None,
            ProblemKind.FORBIDDEN_FILE,
            "demo_pkg-1.0.data/platlib/x.pth",
        ),
        ({}, {"demo/extra.py": "x"}, None, ProblemKind.UNLISTED_FILE, "demo/extra.py"),
        ({}, {}, _drop_row("demo/core.py"), ProblemKind.UNLISTED_FILE, "demo/core.py"),
        ({}, {}, _wrong_hash, ProblemKind.HASH_MISMATCH, "demo/core.py"),
        ({}, {}, _sha1, ProblemKind.HASH_MISMATCH, "demo/core.py"),
        ({}, {}, _wrong_size, ProblemKind.RECORD_MISMATCH, "demo/core.py"),
        ({}, {}, _phantom_row, ProblemKind.MISSING_FILE, "demo/ghost.py"),
        ({}, {"second-1.0.dist-info/METADATA": "x"}, None, ProblemKind.UNREADABLE, None),
    ],
)
def test_sign_refuses_wheels_it_cannot_vouch_for(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    files: dict[str, str],
    unrecorded: dict[str, str],
    record_edit: Callable[[RecordRows], RecordRows] | None,
    kind: ProblemKind,
    path: str | None,
) -> None:
    wheel = write_wheel(
        tmp_path / "dist",
        {**FILES, **files},
        unrecorded=unrecorded,
        record_edit=record_edit,
    )
    before = wheel.read_bytes()

    with pytest.raises(InvalidWheelError) as exc:
        sign_wheel(wheel, key)

    assert exc.value.path == wheel
    assert kind in {p.kind for p in exc.value.problems}, exc.value.problems
    if path is not None:
        assert (kind, path) in _kinds(exc.value.problems)
    assert wheel.read_bytes() == before
    assert sorted(p.name for p in wheel.parent.iterdir()) == [wheel.name]


def test_a_pth_file_of_comments_and_a_package_named_like_a_startup_module_sign(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    files = {**FILES, "demo.pth": "# nothing here\n\n", "demo/sitecustomize.py": ""}

    signed = sign_wheel(write_wheel(tmp_path, files), key)

    assert verify_wheel(signed, keyring_of(key)).ok


def test_records_own_row_may_be_missing(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    wheel = write_wheel(tmp_path, FILES, record_edit=_drop_row(f"{INFO}/RECORD"))

    assert verify_wheel(sign_wheel(wheel, key), keyring_of(key)).ok


def test_a_wheel_without_record_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    wheel = write_wheel(tmp_path, FILES)

    def drop(members: dict[str, bytes]) -> None:
        del members[f"{INFO}/RECORD"]

    rewrite_wheel(wheel, drop)

    with pytest.raises(InvalidWheelError, match="no RECORD"):
        sign_wheel(wheel, key)


def test_metadata_must_match_the_dist_info_directory(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    wheel = write_wheel(
        tmp_path, {**FILES, f"{INFO}/METADATA": "Metadata-Version: 2.1\nName: other\nVersion: 2\n"}
    )

    with pytest.raises(InvalidWheelError) as exc:
        sign_wheel(wheel, key)

    assert {p.kind for p in exc.value.problems} == {
        ProblemKind.NAME_MISMATCH,
        ProblemKind.VERSION_MISMATCH,
    }


def test_a_file_that_is_no_zip_cannot_be_signed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    fake = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    fake.write_bytes(b"not a zip")

    with pytest.raises(InvalidWheelError, match="not a zip"):
        sign_wheel(fake, key)
    result = verify_wheel(fake, keyring_of(key))
    assert [p.kind for p in result.problems] == [ProblemKind.UNREADABLE]
    assert result.distribution == "demo-pkg"


def test_a_second_key_adds_a_signature_for_rotation_and_thresholds(
    signed: Path, key: Ed25519PrivateKey
) -> None:
    second = Ed25519PrivateKey.generate()

    sign_wheel(signed, second)

    sigs = _envelope(signed)["signatures"]
    assert [s["keyid"] for s in sigs] == [key_id(key), key_id(second)]
    # Rotation: a verifier that only trusts the new key accepts the wheel.
    assert verify_wheel(signed, keyring_of(second)).ok
    both = verify_wheel(signed, keyring_of(key, second, threshold=2))
    assert both.ok
    assert set(both.signers) == {key_id(key), key_id(second)}


def test_signing_twice_with_one_key_adds_nothing(signed: Path, key: Ed25519PrivateKey) -> None:
    before = _envelope(signed)

    sign_wheel(signed, key)

    assert _envelope(signed) == before


def test_a_threshold_counts_distinct_trusted_keys(signed: Path, key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()

    result = verify_wheel(signed, keyring_of(key, other, threshold=2))

    assert [p.kind for p in result.problems] == [ProblemKind.THRESHOLD_NOT_MET]
    assert not result.ok


def test_a_changed_wheel_cannot_gain_a_signature(
    signed: Path, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    def change(members: dict[str, bytes]) -> None:
        members["demo/core.py"] = b"def run(): return 2\n"
        rows = (
            members[f"{INFO}/RECORD"]
            .decode()
            .replace(
                record_hash(b"def run(): return 1\n") + ",20",
                record_hash(members["demo/core.py"]) + ",20",
            )
        )
        members[f"{INFO}/RECORD"] = rows.encode()

    rewrite_wheel(signed, change)

    with pytest.raises(InvalidWheelError, match="differ from what its existing signatures"):
        sign_wheel(signed, Ed25519PrivateKey.generate())


def test_a_malformed_signature_file_blocks_signing(signed: Path, key: Ed25519PrivateKey) -> None:
    def change(members: dict[str, bytes]) -> None:
        members[SIG] = b"{}"
        members[f"{INFO}/RECORD"] = (
            "\n".join(
                f"{SIG},{record_hash(b'{}')},2" if line.startswith(SIG) else line
                for line in members[f"{INFO}/RECORD"].decode().splitlines()
            )
            + "\n"
        ).encode()

    rewrite_wheel(signed, change)

    with pytest.raises(InvalidWheelError, match="existing signature file is malformed"):
        sign_wheel(signed, key)


def test_keys_scoped_to_other_distributions_do_not_count(
    signed: Path, key: Ed25519PrivateKey
) -> None:
    elsewhere = Keyring.from_keys([TrustedKey(key.public_key(), "k", frozenset({"acme-*"}))])
    here = Keyring.from_keys([TrustedKey(key.public_key(), "k", frozenset({"demo-*"}))])

    result = verify_wheel(signed, elsewhere)

    assert [p.kind for p in result.problems] == [ProblemKind.KEY_OUT_OF_SCOPE]
    assert verify_wheel(signed, here).ok


def test_an_unsigned_wheel_fails(wheel: Path, key: Ed25519PrivateKey) -> None:
    result = verify_wheel(wheel, keyring_of(key))

    assert _kinds(result.problems) == {(ProblemKind.MISSING_SIGNATURE, SIG)}
    with pytest.raises(SignatureError) as exc:
        result.raise_for_problems()
    assert exc.value.distribution == "demo-pkg"
    assert exc.value.problems == result.problems
    assert isinstance(exc.value, PluginError)
    assert not isinstance(exc.value, ImportError)
    assert "not signed" in str(exc.value)


def test_a_key_outside_the_keyring_is_unknown(signed: Path) -> None:
    result = verify_wheel(signed, keyring_of(Ed25519PrivateKey.generate()))

    assert [p.kind for p in result.problems] == [ProblemKind.UNKNOWN_KEY]
    assert result.manifest is None


def test_key_ids_in_the_envelope_are_only_hints(signed: Path, key: Ed25519PrivateKey) -> None:
    def lie(members: dict[str, bytes]) -> None:
        doc = json.loads(members[SIG])
        doc["signatures"][0]["keyid"] = "f" * 64
        members[SIG] = json.dumps(doc).encode()

    rewrite_wheel(signed, lie)

    result = verify_wheel(signed, keyring_of(key))
    # The signature still verifies with the trusted key; only RECORD is now stale.
    assert {p.kind for p in result.problems} == {ProblemKind.HASH_MISMATCH}
    assert result.signers == (key_id(key),)


def test_a_changed_payload_breaks_the_signature(signed: Path, key: Ed25519PrivateKey) -> None:
    def forge(members: dict[str, bytes]) -> None:
        doc = json.loads(members[SIG])
        manifest = json.loads(base64.b64decode(doc["payload"]))
        manifest["files"] = [f for f in manifest["files"] if f[0] != "demo/core.py"]
        doc["payload"] = base64.b64encode(
            json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        ).decode()
        members[SIG] = json.dumps(doc).encode()

    rewrite_wheel(signed, forge)

    result = verify_wheel(signed, keyring_of(key))
    assert ProblemKind.BAD_SIGNATURE in {p.kind for p in result.problems}
    assert result.manifest is None


def test_a_tampered_member_is_named_with_both_hashes(signed: Path, key: Ed25519PrivateKey) -> None:
    def change(members: dict[str, bytes]) -> None:
        members["demo/core.py"] = b"import os; os.system('evil')\n"

    rewrite_wheel(signed, change)

    result = verify_wheel(signed, keyring_of(key))
    mismatches = [p for p in result.problems if p.kind is ProblemKind.HASH_MISMATCH]
    manifest_problem = next(p for p in mismatches if "signed manifest" in p.message)
    assert manifest_problem.path == "demo/core.py"
    assert manifest_problem.expected == record_hash(b"def run(): return 1\n")
    assert manifest_problem.actual == record_hash(b"import os; os.system('evil')\n")


def test_added_and_removed_members_are_reported(signed: Path, key: Ed25519PrivateKey) -> None:
    def change(members: dict[str, bytes]) -> None:
        del members["demo/data/table.csv"]
        members["demo/evil.py"] = b"evil"

    rewrite_wheel(signed, change)

    problems = _kinds(verify_wheel(signed, keyring_of(key)).problems)
    assert (ProblemKind.MISSING_FILE, "demo/data/table.csv") in problems
    assert (ProblemKind.UNLISTED_FILE, "demo/evil.py") in problems


def test_a_signature_copied_from_another_wheel_fails(
    tmp_path: Path, signed: Path, key: Ed25519PrivateKey
) -> None:
    other = sign_wheel(
        write_wheel(tmp_path / "other", {"other/__init__.py": ""}, name="other", version="2.0"),
        key,
    )
    stolen = read_member(other, "plugyard-signature.json")
    rewrite_wheel(signed, lambda m: m.update({SIG: stolen}))

    result = verify_wheel(signed, keyring_of(key))

    kinds = {p.kind for p in result.problems}
    assert {ProblemKind.NAME_MISMATCH, ProblemKind.VERSION_MISMATCH} <= kinds
    name_problem = next(
        p for p in result.problems if p.kind is ProblemKind.NAME_MISMATCH and p.actual == "demo-pkg"
    )
    assert name_problem.expected == "other"


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b'{"payloadType": "text/plain"}', b"\x00" * 10, "é".encode("utf-16")],
)
def test_a_garbage_signature_file_is_malformed(
    signed: Path, key: Ed25519PrivateKey, content: bytes
) -> None:
    rewrite_wheel(signed, lambda m: m.update({SIG: content}))

    result = verify_wheel(signed, keyring_of(key))

    assert (ProblemKind.MALFORMED_SIGNATURE, SIG) in _kinds(result.problems)


def test_a_truncated_signature_file_is_malformed(signed: Path, key: Ed25519PrivateKey) -> None:
    rewrite_wheel(signed, lambda m: m.update({SIG: m[SIG][: len(m[SIG]) // 2]}))

    result = verify_wheel(signed, keyring_of(key))

    assert (ProblemKind.MALFORMED_SIGNATURE, SIG) in _kinds(result.problems)
    with pytest.raises(SignatureError, match="malformed signature file"):
        result.raise_for_problems()


def test_verify_reports_a_missing_record_and_bytecode(signed: Path, key: Ed25519PrivateKey) -> None:
    def change(members: dict[str, bytes]) -> None:
        del members[f"{INFO}/RECORD"]
        members["demo/__pycache__/core.cpython-311.pyc"] = b"evil"

    rewrite_wheel(signed, change)

    problems = _kinds(verify_wheel(signed, keyring_of(key)).problems)
    assert (ProblemKind.MISSING_FILE, f"{INFO}/RECORD") in problems
    assert (ProblemKind.FORBIDDEN_FILE, "demo/__pycache__/core.cpython-311.pyc") in problems


def test_a_wheel_with_data_purelib_files_signs(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    wheel = write_wheel(tmp_path, {**FILES, "demo_pkg-1.0.data/purelib/extra/__init__.py": ""})

    result = verify_wheel(sign_wheel(wheel, key), keyring_of(key))

    assert result.ok
    assert result.manifest is not None
    assert result.manifest.installed_path("demo_pkg-1.0.data/purelib/extra/__init__.py") == (
        "extra/__init__.py"
    )


def test_members_are_copied_with_their_permissions(signed: Path, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(signed) as b:
        before = {i.filename: (i.external_attr, i.date_time) for i in a.infolist()}
        after = {i.filename: (i.external_attr, i.date_time) for i in b.infolist()}

    assert {k: v for k, v in after.items() if k in before and not k.endswith("RECORD")} == {
        k: v for k, v in before.items() if not k.endswith("RECORD")
    }
