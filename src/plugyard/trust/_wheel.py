"""Signing and verifying wheel files."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .._model import canonical
from ._files import record_hash
from ._identity import compare_files, identity_problems, parse_metadata, same_version
from ._keys import Keyring, StrPath
from ._layout import STARTUP_MODULES, module_for
from ._manifest import (
    MAX_ENVELOPE_SIZE,
    SIGNATURE_FILE,
    Envelope,
    Manifest,
    ManifestError,
    hash_bytes,
    make_manifest,
    open_envelope,
    path_problem,
)
from ._problems import InvalidWheelError, Problem, ProblemKind, VerificationResult

_CHUNK = 1024 * 1024
#: METADATA and RECORD larger than this are refused unread.
_MAX_TEXT = 16 * 1024 * 1024
#: The ``.data`` schemes whose files are importable code plugyard can verify.
_DATA_SCHEMES = frozenset({"purelib", "platlib"})
#: RECORD rows that legitimately carry no hash.
_UNHASHED = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s"})
#: What reading a damaged or unusual zip member can raise.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


@attrs.define
class _Scan:
    """A wheel's files as read, and what is wrong with them."""

    dist_info: str | None = None
    name: str | None = None
    version: str | None = None
    members: dict[str, tuple[str, int]] = attrs.Factory(dict)
    signature: bytes | None = None
    problems: list[Problem] = attrs.Factory(list)
    record_info: zipfile.ZipInfo | None = None

    def problem(self, kind: ProblemKind, message: str, path: str | None = None, **kw: str) -> None:
        self.problems.append(Problem(kind, message, path, **kw))


def _dist_info_of(names: list[str]) -> tuple[str | None, str | None]:
    """The wheel's dist-info directory, or an explanation why there is not exactly one."""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    found = sorted(t for t in tops if t.endswith(".dist-info"))
    if len(found) != 1:
        return None, f"a wheel has one .dist-info directory; this one has {len(found)}"
    return found[0], None


def _scan(zf: zipfile.ZipFile, copy_to: zipfile.ZipFile | None = None) -> _Scan:
    """Hash every member, check paths and ``RECORD``; copy members to ``copy_to``.

    ``RECORD`` and the signature file are read but not copied: signing writes
    them anew.
    """
    scan = _Scan()
    infos = zf.infolist()
    names = [i.filename for i in infos]
    scan.dist_info, why = _dist_info_of(names)
    if scan.dist_info is None:
        scan.problem(ProblemKind.UNREADABLE, f"not a wheel: {why}")
        return scan
    dist_info = scan.dist_info
    data_dir = dist_info.removesuffix(".dist-info") + ".data"
    record_path = f"{dist_info}/RECORD"
    signature_path = f"{dist_info}/{SIGNATURE_FILE}"
    record: bytes | None = None
    seen: set[str] = set()
    for info in infos:
        path = info.filename.removesuffix("/") if info.is_dir() else info.filename
        if path in seen:
            scan.problem(ProblemKind.FORBIDDEN_FILE, "appears twice in the archive", path)
            continue
        seen.add(path)
        reason = path_problem(path)
        if reason is None and path.split("/", 1)[0].endswith(".data"):
            parts = path.split("/")
            if parts[0] != data_dir or (len(parts) > 1 and parts[1] not in _DATA_SCHEMES):
                reason = (
                    "is in a .data directory other than purelib or platlib; plugyard signs "
                    "importable code only (scripts come from entry points)"
                )
        if reason is not None:
            scan.problem(ProblemKind.FORBIDDEN_FILE, f"cannot be signed: {reason}", path)
            continue
        if info.is_dir():
            continue
        try:
            if path == record_path:
                record = _read_limited(zf, info, _MAX_TEXT)
                scan.record_info = info
            elif path == signature_path:
                scan.signature = _read_limited(zf, info, MAX_ENVELOPE_SIZE + 1)
            else:
                scan.members[path] = _hash_member(zf, info, copy_to)
        except _ZIP_ERRORS as exc:
            scan.problem(ProblemKind.UNREADABLE, f"cannot be read from the archive: {exc}", path)
        except _TooLargeError:
            scan.problem(ProblemKind.UNREADABLE, "is too large", path)
    _check_metadata(zf, scan)
    _check_startup(zf, scan, data_dir)
    if record is None:
        scan.problem(ProblemKind.MISSING_FILE, "the wheel has no RECORD", record_path)
    else:
        _check_record(scan, record, record_path, signature_path)
    return scan


class _TooLargeError(Exception):
    pass


def _check_startup(zf: zipfile.ZipFile, scan: _Scan, data_dir: str) -> None:
    """Refuse what would run at every interpreter start-up, before anything is verified.

    ``sitecustomize``/``usercustomize`` modules and ``.pth`` files with a
    line in them, landing in the site directory (at the top of the wheel or
    of its purelib/platlib ``.data`` directory).
    """
    for path in scan.members:
        landing = path
        for scheme in _DATA_SCHEMES:
            landing = landing.removeprefix(f"{data_dir}/{scheme}/")
        if "/" in landing:
            continue
        if landing.partition(".")[0] in STARTUP_MODULES and module_for(landing) is not None:
            scan.problem(
                ProblemKind.FORBIDDEN_FILE,
                "cannot be signed: it runs at every interpreter start-up, before plugyard "
                "can verify anything",
                path,
            )
        elif landing.endswith(".pth"):
            try:
                text = _read_limited(zf, zf.getinfo(path), _MAX_TEXT)
            except (*_ZIP_ERRORS, _TooLargeError):
                continue  # already reported by _scan
            if any(
                line.strip() and not line.strip().startswith(b"#") for line in text.splitlines()
            ):
                scan.problem(
                    ProblemKind.FORBIDDEN_FILE,
                    "cannot be signed: a .pth file adds to the import path or runs code at "
                    "start-up, before plugyard can verify anything",
                    path,
                )


def _read_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _TooLargeError
    return data


def _hash_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, copy_to: zipfile.ZipFile | None
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with zf.open(info) as src:
        if copy_to is None:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        else:
            with copy_to.open(_copy_info(info), "w") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
    return record_hash(digest.digest()), size


def _copy_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    new = zipfile.ZipInfo(info.filename, info.date_time)
    new.external_attr = info.external_attr
    new.compress_type = zipfile.ZIP_DEFLATED
    new.file_size = info.file_size
    return new


def _check_metadata(zf: zipfile.ZipFile, scan: _Scan) -> None:
    assert scan.dist_info is not None  # noqa: S101 -- _scan returns early otherwise
    path = f"{scan.dist_info}/METADATA"
    if path not in scan.members:
        scan.problem(ProblemKind.MISSING_FILE, "the wheel has no METADATA", path)
        return
    try:
        raw = _read_limited(zf, zf.getinfo(path), _MAX_TEXT)
    except (*_ZIP_ERRORS, _TooLargeError):
        return  # already reported by _scan
    name, version = parse_metadata(raw)
    if not name or not version:
        scan.problem(ProblemKind.UNREADABLE, "METADATA has no Name or no Version", path)
        return
    scan.name, scan.version = canonical(name), version
    dir_name, _, dir_version = scan.dist_info.removesuffix(".dist-info").rpartition("-")
    if canonical(dir_name) != scan.name:
        scan.problem(
            ProblemKind.NAME_MISMATCH,
            f"METADATA names {name!r} but the dist-info directory is {scan.dist_info}",
            path,
            expected=scan.dist_info,
            actual=name,
        )
    if not same_version(dir_version, version):
        scan.problem(
            ProblemKind.VERSION_MISMATCH,
            f"METADATA says version {version} but the dist-info directory is {scan.dist_info}",
            path,
            expected=dir_version,
            actual=version,
        )


def _check_record(scan: _Scan, record: bytes, record_path: str, signature_path: str) -> None:
    dist_info = record_path.rpartition("/")[0]
    rows: dict[str, tuple[str, str]] = {}
    try:
        for row in csv.reader(io.StringIO(record.decode("utf-8"), newline="")):
            if not row:
                continue
            if len(row) != 3:
                scan.problem(ProblemKind.RECORD_MISMATCH, f"malformed RECORD row {row!r}")
                continue
            if row[0] in rows:
                scan.problem(ProblemKind.RECORD_MISMATCH, "listed twice in RECORD", row[0])
            rows[row[0]] = (row[1], row[2])
    except (UnicodeDecodeError, csv.Error) as exc:
        scan.problem(ProblemKind.RECORD_MISMATCH, f"RECORD is not UTF-8 CSV: {exc}", record_path)
        return
    actual = dict(scan.members)
    if scan.signature is not None:
        actual[signature_path] = (hash_bytes(scan.signature), len(scan.signature))
    for path, (digest, size) in sorted(actual.items()):
        if path not in rows:
            scan.problem(ProblemKind.UNLISTED_FILE, "is in the wheel but not in RECORD", path)
            continue
        listed_hash, listed_size = rows[path]
        if not listed_hash and path.startswith(f"{dist_info}/RECORD."):
            continue  # RECORD.jws and RECORD.p7s are listed without a hash
        if listed_hash != digest:
            scan.problem(
                ProblemKind.HASH_MISMATCH,
                "content does not match its RECORD hash"
                if listed_hash.startswith("sha256=")
                else "RECORD must list sha256 hashes",
                path,
                expected=listed_hash,
                actual=digest,
            )
        elif listed_size != str(size):
            scan.problem(
                ProblemKind.RECORD_MISMATCH,
                f"RECORD says {listed_size or 'no'} bytes, the file has {size}",
                path,
                expected=listed_size,
                actual=str(size),
            )
    for path, (listed_hash, _) in sorted(rows.items()):
        if path in actual or path == record_path:
            continue
        if (
            path.startswith(f"{dist_info}/")
            and path.rpartition("/")[2] in _UNHASHED
            and not listed_hash
        ):
            continue
        scan.problem(ProblemKind.MISSING_FILE, "is listed in RECORD but not in the wheel", path)


def _manifest_of(scan: _Scan) -> Manifest:
    # The caller checked there are no problems, so all three were found.
    assert scan.dist_info  # noqa: S101
    assert scan.name  # noqa: S101
    assert scan.version  # noqa: S101
    return make_manifest(scan.name, scan.version, scan.dist_info, scan.members)


def sign_wheel(
    wheel_path: StrPath, private_key: Ed25519PrivateKey, out: StrPath | None = None
) -> Path:
    """Sign a wheel: add ``<dist-info>/plugyard-signature.json`` and regenerate ``RECORD``.

    Every member is hashed and checked against ``RECORD`` first; bytecode,
    unsafe paths and ``.data`` directories other than purelib/platlib are
    refused. Signing a signed wheel with another key adds a signature, if the
    wheel still holds exactly what the first signature covers. The new wheel
    is written beside its destination and renamed into place, so a reader
    never sees half a wheel.

    Args:
        wheel_path: The wheel to sign.
        private_key: The signer's key (see :func:`load_private_key`).
        out: Where to write the signed wheel: a file path, or an existing
            directory to write it into under its own name. By default the
            wheel is replaced in place.

    Returns:
        The signed wheel's path.

    Raises:
        InvalidWheelError: the wheel cannot be signed as it is.
        OSError: it cannot be read or the result cannot be written.
    """
    source = Path(wheel_path)
    target = Path(out) if out is not None else source
    if target.is_dir():
        target = target / source.name
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".plugyard-", suffix=".whl.tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw_out:
            _write_signed(source, private_key, raw_out)
            raw_out.flush()
            os.fsync(raw_out.fileno())
        tmp.chmod(stat.S_IMODE(source.stat().st_mode))
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _write_signed(source: Path, key: Ed25519PrivateKey, raw_out: io.BufferedWriter) -> None:
    try:
        zin = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise InvalidWheelError(
            source, [Problem(ProblemKind.UNREADABLE, f"not a zip archive: {exc}")]
        ) from None
    with zin, zipfile.ZipFile(raw_out, "w", zipfile.ZIP_DEFLATED) as zout:
        scan = _scan(zin, zout)
        if scan.problems:
            raise InvalidWheelError(source, scan.problems)
        manifest = _manifest_of(scan)
        payload = manifest.to_payload()
        signature_path = f"{manifest.dist_info}/{SIGNATURE_FILE}"
        if scan.signature is None:
            envelope = Envelope(payload, ())
        else:
            envelope = _existing_envelope(source, scan.signature, payload, signature_path)
        signed = envelope.signed(key).to_json()
        date_time = scan.record_info.date_time if scan.record_info else (1980, 1, 1, 0, 0, 0)
        _write_member(zout, signature_path, signed, date_time)
        rows = [[p, h, str(s)] for p, (h, s) in scan.members.items()]
        rows.append([signature_path, hash_bytes(signed), str(len(signed))])
        rows.append([f"{manifest.dist_info}/RECORD", "", ""])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        _write_member(zout, f"{manifest.dist_info}/RECORD", buf.getvalue().encode(), date_time)


def _existing_envelope(source: Path, data: bytes, payload: bytes, where: str) -> Envelope:
    try:
        envelope = Envelope.from_json(data)
    except ManifestError as exc:
        raise InvalidWheelError(
            source,
            [
                Problem(
                    ProblemKind.MALFORMED_SIGNATURE,
                    f"the existing signature file is malformed ({exc}); remove it to sign anew",
                    where,
                )
            ],
        ) from None
    if envelope.payload != payload:
        raise InvalidWheelError(
            source,
            [
                Problem(
                    ProblemKind.HASH_MISMATCH,
                    "the wheel's files differ from what its existing signatures cover; "
                    "another signature can only be added to an unchanged wheel",
                    where,
                )
            ],
        )
    return envelope


def _write_member(
    zout: zipfile.ZipFile, path: str, data: bytes, date_time: tuple[int, int, int, int, int, int]
) -> None:
    info = zipfile.ZipInfo(path, date_time)
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zout.writestr(info, data)


def verify_wheel(path: StrPath, keyring: Keyring) -> VerificationResult:
    """Verify a wheel file's signature and every member against the signed manifest.

    Never raises for a malformed wheel or signature: everything found is in
    the result's ``problems``; call :meth:`VerificationResult.raise_for_problems`
    to turn them into a :class:`SignatureError`.
    """
    wheel = Path(path)
    fallback = canonical(wheel.name.split("-", 1)[0])
    try:
        with zipfile.ZipFile(wheel) as zf:
            scan = _scan(zf)
    except (OSError, zipfile.BadZipFile, *_ZIP_ERRORS) as exc:
        problem = Problem(ProblemKind.UNREADABLE, f"cannot read the wheel: {exc}", wheel.name)
        return VerificationResult(fallback, None, (problem,), location=wheel)
    problems = list(scan.problems)
    if scan.dist_info is None:
        return VerificationResult(fallback, None, tuple(problems), location=wheel)
    opened = open_envelope(scan.signature, keyring, f"{scan.dist_info}/{SIGNATURE_FILE}")
    problems.extend(opened.problems)
    manifest = opened.manifest
    if manifest is not None:
        identity = list(
            identity_problems(
                manifest, scan.dist_info, scan.name, scan.version, whose="this wheel's"
            )
        )
        problems.extend(identity)
        if not identity:
            problems.extend(compare_files(manifest.files, scan.members))
    return VerificationResult(
        scan.name or fallback,
        scan.version,
        tuple(problems),
        opened.signers if manifest is not None else (),
        manifest,
        wheel,
    )
