"""Whether a signed manifest is for what is found: its name, version, files.

Shared by the three verifications (a wheel, an installed distribution, a
detached signature). Installed verification runs before every verified
import, so this module imports nothing the signing side needs (zip files,
temporary files, the email package but for unusual METADATA).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from packaging.version import InvalidVersion, Version

from ._manifest import SIGNATURE_FILE, Manifest, ManifestFile
from ._problems import Problem, ProblemKind


def parse_metadata(raw: bytes) -> tuple[str | None, str | None]:
    """The ``Name`` and ``Version`` of a ``METADATA`` file, where present."""
    # The headers end at the first empty line at the latest; after it comes the
    # description, which the parser would split into lines only to keep them.
    # Each of these pairs holds an empty line, so cutting after it keeps every header;
    # no UTF-8 sequence holds a newline byte, so the bytes can be cut before decoding.
    blank = raw.find(b"\n\n")
    text = (raw if blank < 0 else raw[: blank + 2]).decode("utf-8", errors="replace")
    ends = [i for i in (text.find("\r\r"), text.find("\n\r")) if i >= 0]
    if ends:
        text = text[: min(ends) + 2]
    simple = _simple_headers(text)
    if simple is not None:
        name, version = simple.get("name"), simple.get("version")
    else:
        import email.parser  # the unusual case: the email package decides
        import email.policy

        headers = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
        name, version = headers.get("Name"), headers.get("Version")
    return (
        str(name).strip() if name is not None else None,
        str(version).strip() if version is not None else None,
    )


_SIMPLE_HEADER = re.compile(r"([\041-\071\073-\176]+):[ \t]*(.*)")


def _simple_headers(text: str) -> dict[str, str] | None:
    """The headers as ``HeaderParser`` (compat32) reads them, if every one is on one line.

    Keys are lowercased; the first of a repeated header counts, as with
    ``Message.get``. ``None`` when anything is unusual (a continuation line, a
    line that is not a header, a carriage return): the email parser decides those.
    Reading stops once ``Name`` and ``Version`` are read (and not continued):
    the parser would read the same for them, whatever follows.
    """
    if "\r" in text:
        return None
    headers: dict[str, str] = {}
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if not line:
            break
        match = _SIMPLE_HEADER.fullmatch(line)
        if match is None:
            return None
        headers.setdefault(match[1].lower(), match[2])
        # Name and Version are near the top: stop there, unless a continuation follows.
        if "name" in headers and "version" in headers:
            following = lines[number + 1] if number + 1 < len(lines) else ""
            if not following.startswith((" ", "\t")):
                break
    return headers


def same_version(a: str, b: str) -> bool:
    """Whether two version strings mean the same PEP 440 version (or are equal)."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def identity_problems(
    manifest: Manifest, dist_info: str, name: str | None, version: str | None, *, whose: str
) -> Iterator[Problem]:
    """Where the signed manifest names another dist-info directory, name or version.

    ``whose`` completes the messages: ``"this wheel's"`` or ``"the installed"``.
    """
    where = f"{dist_info}/{SIGNATURE_FILE}"
    if manifest.dist_info != dist_info:
        yield Problem(
            ProblemKind.NAME_MISMATCH,
            f"the signature is for {manifest.dist_info}, not {whose} {dist_info}",
            where,
            expected=manifest.dist_info,
            actual=dist_info,
        )
    if name is not None and manifest.name != name:
        yield Problem(
            ProblemKind.NAME_MISMATCH,
            f"the signature is for {manifest.name!r}, not {whose} {name!r}",
            where,
            expected=manifest.name,
            actual=name,
        )
    if version is not None and not same_version(manifest.version, version):
        yield Problem(
            ProblemKind.VERSION_MISMATCH,
            f"the signature is for version {manifest.version}, not {whose} {version}",
            where,
            expected=manifest.version,
            actual=version,
        )


def compare_files(
    signed: Iterable[ManifestFile], found: Mapping[str, tuple[str, int]]
) -> Iterator[Problem]:
    """Problems of wheel members (``{path: (hash, size)}``) against the signed manifest."""
    expected = {f.path: f for f in signed}
    for path in sorted(expected.keys() | found.keys()):
        entry = expected.get(path)
        if entry is None:
            yield Problem(ProblemKind.UNLISTED_FILE, "is not in the signed manifest", path)
        elif path not in found:
            yield Problem(ProblemKind.MISSING_FILE, "is in the signed manifest but missing", path)
        elif found[path][0] != entry.digest:
            yield Problem(
                ProblemKind.HASH_MISMATCH,
                "content differs from the signed manifest",
                path,
                expected=entry.digest,
                actual=found[path][0],
            )
