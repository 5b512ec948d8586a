"""Manifests and envelopes: round trips, and malformed input never escapes as a crash.

Verification reads files an attacker controls; whatever they hold, it must
report problems (which :meth:`VerificationResult.raise_for_problems` turns
into :class:`SignatureError`) and never raise anything else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings, strategies as st

from plugyard.trust import (
    PAYLOAD_TYPE,
    Manifest,
    ManifestFile,
    ProblemKind,
    SignatureError,
    check_entry_point,
    key_id,
    sign_wheel,
    verify_distribution,
    verify_wheel,
)
from plugyard.trust._manifest import Envelope, ManifestError, open_envelope, pae
from trust_helpers import dist_info_of, install_wheel, keyring_of, rewrite_wheel, write_wheel

KEY = Ed25519PrivateKey.generate()
RING = keyring_of(KEY)
INFO = dist_info_of("demo-pkg", "1.0")
SIG = f"{INFO}/plugyard-signature.json"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

safe_paths = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8),
    min_size=1,
    max_size=3,
).map("/".join)
hashes = st.binary(min_size=32, max_size=32).map(
    lambda d: "sha256=" + base64.urlsafe_b64encode(d).rstrip(b"=").decode()
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    """Valid manifests, any files."""
    paths = draw(st.sets(safe_paths.map(lambda p: f"pkg/{p}.py"), max_size=8))
    files = [
        ManifestFile(p, draw(hashes), draw(st.integers(min_value=0, max_value=2**40)))
        for p in [*paths, f"{INFO}/METADATA"]
    ]
    return Manifest("demo-pkg", "1.0", INFO, tuple(sorted(files, key=lambda f: f.path)))


@st.composite
def mangled_manifests(draw: st.DrawFn) -> Any:
    """A valid manifest document with one part replaced by arbitrary JSON."""
    doc: dict[str, Any] = json.loads(draw(manifests()).to_payload())
    where = draw(st.sampled_from(["name", "version", "dist_info", "files", "entry", "cell", "key"]))
    junk = draw(json_values)
    if where == "entry" and doc["files"]:
        doc["files"][0] = junk
    elif where == "cell" and doc["files"]:
        doc["files"][0][draw(st.integers(0, 2))] = junk
    elif where == "key":
        doc[draw(st.text(max_size=5))] = junk
    else:
        doc[where] = junk
    return doc


def _signed_envelope(payload: bytes) -> bytes:
    return Envelope(payload, ((key_id(KEY), KEY.sign(pae(PAYLOAD_TYPE, payload))),)).to_json()


envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "payloadType": st.just(PAYLOAD_TYPE) | st.text(max_size=10),
        "payload": st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode()) | json_values,
        "signatures": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "keyid": st.just(key_id(KEY)) | json_values,
                    "sig": st.binary(min_size=60, max_size=70).map(
                        lambda b: base64.b64encode(b).decode()
                    )
                    | json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
    },
)

signature_files = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | envelope_like.map(lambda v: json.dumps(v).encode())
    | mangled_manifests().map(
        lambda doc: _signed_envelope(
            json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        )
    )
    | st.binary(max_size=100).map(_signed_envelope)
)


@given(manifests())
def test_manifest_payloads_round_trip(manifest: Manifest) -> None:
    assert Manifest.from_payload(manifest.to_payload()) == manifest


@given(manifests())
def test_envelopes_round_trip(manifest: Manifest) -> None:
    data = _signed_envelope(manifest.to_payload())

    opened = open_envelope(data, RING, "sig")

    assert opened.manifest == manifest
    assert opened.signers == (key_id(KEY),)


@given(mangled_manifests())
def test_mangled_manifests_are_refused_or_still_valid(doc: Any) -> None:
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    try:
        manifest = Manifest.from_payload(payload)
    except ManifestError:
        return
    assert manifest.to_payload() == payload


def test_a_non_canonical_payload_is_refused() -> None:
    manifest = Manifest(
        "demo-pkg", "1.0", INFO, (ManifestFile(f"{INFO}/METADATA", "sha256=" + "A" * 43, 1),)
    )
    spaced = json.dumps(json.loads(manifest.to_payload()), indent=1).encode()

    with pytest.raises(ManifestError, match="canonical"):
        Manifest.from_payload(spaced)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"payloadType":"' + PAYLOAD_TYPE.encode() + b'","payload":"' + b"A" * 5_000_000 + b'"}',
        b'{"a": 1' + b"0" * 5000 + b"}",
    ],
    ids=["deep", "huge", "long-int"],
)
def test_hostile_json_is_malformed_not_a_crash(data: bytes) -> None:
    opened = open_envelope(data, RING, "sig")

    assert [p.kind for p in opened.problems] == [ProblemKind.MALFORMED_SIGNATURE]


@given(signature_files)
def test_open_envelope_reports_and_never_raises(data: bytes) -> None:
    opened = open_envelope(data, RING, "sig")

    assert (opened.manifest is None) == bool(opened.problems)


@pytest.fixture(name="base_wheel", scope="module")
def fixture_base_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("envelope-wheel")
    return sign_wheel(write_wheel(directory, {"demo/__init__.py": "X = 1\n"}), KEY)


@pytest.fixture(name="installed", scope="module")
def fixture_installed(base_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_wheel(base_wheel, tmp_path_factory.mktemp("envelope-install"))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=signature_files)
def test_verify_wheel_never_raises_on_a_hostile_signature(base_wheel: Path, data: bytes) -> None:
    target = base_wheel.with_name("hostile") / base_wheel.name
    target.parent.mkdir(exist_ok=True)
    rewrite_wheel(base_wheel, lambda m: m.update({SIG: data}), out=target)

    result = verify_wheel(target, RING)

    assert not result.ok
    with pytest.raises(SignatureError):
        result.raise_for_problems()


@pytest.fixture(name="restore")
def fixture_restore(installed: Path) -> Iterator[Path]:
    info = installed / INFO
    saved = {p: p.read_bytes() for p in info.iterdir()}
    yield installed
    for p in info.iterdir():
        if p not in saved:
            p.unlink()
    for p, content in saved.items():
        p.write_bytes(content)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(
        ["plugyard-signature.json", "RECORD", "METADATA", "direct_url.json", "entry_points.txt"]
    ),
    data=signature_files | st.text(max_size=200).map(str.encode),
)
def test_verify_distribution_never_raises_on_hostile_files(
    restore: Path, name: str, data: bytes
) -> None:
    original = (restore / INFO / name).read_bytes() if (restore / INFO / name).exists() else None
    (restore / INFO / name).write_bytes(data)
    try:
        result = verify_distribution("demo-pkg", RING, path=[restore])
    finally:
        if original is None:
            (restore / INFO / name).unlink()
        else:
            (restore / INFO / name).write_bytes(original)

    if not result.ok:
        with pytest.raises(SignatureError):
            result.raise_for_problems()


_RECORD_PATHS = st.lists(
    st.sampled_from(["..", ".", "demo", "bin", "lib64", "site", "x.pth", "sitecustomize.py", ""]),
    min_size=1,
    max_size=5,
).map("/".join) | st.text(alphabet="/\\.:aZ_-\0\u00e9", max_size=30)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(_RECORD_PATHS, st.sampled_from(["", "sha256=x", "md5=y"])), max_size=6)
)
def test_verify_distribution_never_raises_on_hostile_record_rows(
    restore: Path, rows: list[tuple[str, str]]
) -> None:
    """Rows leaving the site directory, back in through symlinks, absolute, drive letters."""
    (restore.parent / "lib64").unlink(missing_ok=True)
    (restore.parent / "lib64").symlink_to(restore.name)
    record = restore / INFO / "RECORD"
    original = record.read_bytes()
    extra = "".join(f'"{path}",{digest},1\n' for path, digest in rows if '"' not in path)
    record.write_bytes(original + extra.encode("utf-8", errors="surrogatepass"))
    try:
        result = verify_distribution("demo-pkg", RING, path=[restore])
    finally:
        record.write_bytes(original)

    assert all(isinstance(p.kind, ProblemKind) for p in result.problems)
    if not result.ok:
        with pytest.raises(SignatureError):
            result.raise_for_problems()


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    group=st.text(max_size=12),
    name=st.text(max_size=12),
    value=st.text(alphabet="abc.:_[] \u00e9\0", max_size=20),
    distribution=st.none() | st.text(max_size=12),
)
def test_checking_any_listed_entry_point_gives_problems_not_exceptions(
    installed: Path, group: str, name: str, value: str, distribution: str | None
) -> None:
    result = verify_distribution("demo-pkg", RING, path=[installed])
    assert result.ok, result.problems

    problems = check_entry_point(result, group, name, value, distribution)

    assert problems, "nothing that demo-pkg does not declare may pass"
    assert {p.kind for p in problems} <= {
        ProblemKind.UNDECLARED_ENTRY_POINT,
        ProblemKind.NAME_MISMATCH,
        ProblemKind.FOREIGN_MODULE,
    }
