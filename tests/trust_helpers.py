"""Wheels, keys and installs for the trust tests.

:func:`write_wheel` writes a small wheel by the wheel spec directly (fast, and
able to be wrong on purpose); :func:`install_wheel` installs one with the
``installer`` library into a scheme under a directory, in this process. The
slow tests build real wheels with ``pip wheel`` and install them with pip
(``tests/wheelhouse.py``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import marshal
import os
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from plugyard.trust import Keyring, TrustedKey

RecordRows = list[list[str]]


def record_hash(data: bytes) -> str:
    """``sha256=`` + urlsafe base64 without padding, as ``RECORD`` writes it."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def dist_info_of(name: str, version: str) -> str:
    """The dist-info directory name a wheel of ``name`` and ``version`` has."""
    return f"{name.replace('-', '_')}-{version}.dist-info"


def write_wheel(
    directory: Path,
    files: Mapping[str, bytes | str],
    *,
    name: str = "demo-pkg",
    version: str = "1.0",
    record_edit: Callable[[RecordRows], RecordRows] | None = None,
    unrecorded: Mapping[str, bytes | str] | None = None,
) -> Path:
    """Write a wheel of ``files`` (paths in the wheel) with METADATA, WHEEL and RECORD.

    Args:
        directory: Where the wheel goes.
        files: Its members; ``METADATA`` and ``WHEEL`` are added unless given
            (use :func:`dist_info_of` for their directory).
        name: The distribution name.
        version: Its version.
        record_edit: Changes the RECORD rows before they are written.
        unrecorded: Members to add without a RECORD row.
    """
    info = dist_info_of(name, version)
    members: dict[str, bytes] = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: trust-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    members.update({p: c.encode() if isinstance(c, str) else c for p, c in files.items()})
    rows = [[p, record_hash(c), str(len(c))] for p, c in members.items()]
    rows.append([f"{info}/RECORD", "", ""])
    if record_edit is not None:
        rows = record_edit(rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, content in members.items():
            zf.writestr(path, content)
        for path, extra in (unrecorded or {}).items():
            zf.writestr(path, extra.encode() if isinstance(extra, str) else extra)
        zf.writestr(f"{info}/RECORD", buf.getvalue())
    return wheel


def rewrite_wheel(
    wheel: Path, change: Callable[[dict[str, bytes]], None], out: Path | None = None
) -> Path:
    """Rewrite a wheel's members through ``change`` (RECORD untouched unless changed)."""
    with zipfile.ZipFile(wheel) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    change(members)
    target = out or wheel
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, content in members.items():
            zf.writestr(path, content)
    return target


def read_member(wheel: Path, suffix: str) -> bytes:
    """The content of the one member whose path ends with ``suffix``."""
    with zipfile.ZipFile(wheel) as zf:
        (path,) = [n for n in zf.namelist() if n.endswith(suffix)]
        return zf.read(path)


def install_wheel(wheel: Path, root: Path) -> Path:
    """Install ``wheel`` with the ``installer`` library under ``root``; return its site dir.

    ``installer`` writes RECORD and no INSTALLER-side extras unless asked, the
    other end of the spectrum from pip.
    """
    site = root / "site"
    scheme = {
        "purelib": str(site),
        "platlib": str(site),
        "headers": str(root / "include"),
        "scripts": str(root / "bin"),
        "data": str(root / "data"),
    }
    destination = SchemeDictionaryDestination(scheme, sys.executable, "posix")
    with WheelFile.open(wheel) as source:
        source.validate_record()
        install(source, destination, {"INSTALLER": b"installer\n"})
    return site


def keyring_of(*keys: Ed25519PrivateKey, threshold: int = 1) -> Keyring:
    """A keyring trusting the public halves of ``keys`` for every distribution."""
    return Keyring.from_keys([TrustedKey(k.public_key()) for k in keys], threshold=threshold)


def forge_pyc(source: Path, evil_source: str) -> Path:
    """Plant ``__pycache__/<module>.<tag>.pyc`` that the default import system accepts.

    Its header carries the source's mtime and size, so the default loader
    runs it instead of ``source``; its code is ``evil_source``.
    """
    st = source.stat()
    code = compile(evil_source, str(source), "exec")
    header = (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )
    pyc = Path(importlib.util.cache_from_source(str(source)))
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_bytes(header + marshal.dumps(code))
    # Keep the source's mtime: the attacker does not touch the source.
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    return pyc
