"""Finding installed plugins: the entry points of a group, with their distributions.

Nothing here imports plugin code. The index is read from the ``.dist-info``
and ``.egg-info`` directories on ``sys.path`` (the same files
``importlib.metadata`` reads), and kept in a small on-disk cache keyed by the
interpreter and the modification time, in nanoseconds, of every ``sys.path``
entry. Installing or removing a distribution adds or removes a directory in
its ``sys.path`` entry and so changes that entry's mtime: the next process,
or :meth:`PluginManager.rescan`, sees it.

stevedore's entry-point cache is not used; see the architecture page for the
measurements behind that: it drops the distribution behind each entry point
(which the trust gate needs before import), merges identical entries from two
distributions (which hides conflicts), keys on mtimes packed as 32-bit floats,
and memoizes for the life of the process (so a rescan could not see a new
install).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

_CACHE_FORMAT = 1
_SECTION = re.compile(r"^\[(?P<group>[^\]]+)\]\s*$")
_DIST_DIR = re.compile(r"^(?P<name>[^-]+)(?:-(?P<version>[^-]+?))?(?:-py\d.*)?\.(?:dist|egg)-info$")


@attrs.frozen
class EntryPoint:
    """One entry point of an installed distribution.

    Attributes:
        name: The entry point's name: the plugin name.
        group: Its group.
        value: What it names: ``package.module:object`` or ``package.module``.
        distribution: The distribution's name as its metadata spells it.
        version: The distribution's version.
        path: The distribution's metadata directory.
    """

    name: str
    group: str
    value: str
    distribution: str
    version: str
    path: str

    @property
    def module(self) -> str:
        """The module part of :attr:`value`."""
        return self.value.partition(":")[0].strip()

    @property
    def attr(self) -> str | None:
        """The object path after the colon, or ``None`` for a module entry point."""
        _, colon, attr = self.value.partition(":")
        return attr.partition("[")[0].strip() if colon else None


_Row = tuple[str, str, str, str, str, str]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "plugyard" / "entry-points"


def _cache_key(path: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{_CACHE_FORMAT}\0{sys.executable}\0{sys.prefix}".encode())
    for entry in path:
        try:
            mtime = os.stat(entry or ".").st_mtime_ns
        except OSError:
            mtime = -1
        digest.update(f"\0{entry}\0{mtime}".encode())
    return digest.hexdigest()


def read_index(path: Sequence[str] | None = None, *, use_cache: bool = True) -> list[_Row]:
    """Every entry point of every distribution on ``path`` (``sys.path`` by default).

    A distribution found twice on the path counts once: the first, as for
    ``importlib.metadata``.
    """
    entries = list(sys.path if path is None else path)
    if not use_cache or os.environ.get("PLUGYARD_NO_CACHE"):
        return _scan(entries)
    cache = _cache_dir() / _cache_key(entries)
    try:
        rows: list[_Row] = marshal.loads(cache.read_bytes())  # noqa: S302 - our own file
    except (OSError, EOFError, ValueError, TypeError):
        rows = _scan(entries)
        _write_cache(cache, rows)
    return rows


_CACHE_KEEP = 32


def _write_cache(cache: Path, rows: list[_Row]) -> None:
    """Write the cache atomically; a cache that cannot be written is only slower.

    Each distinct ``sys.path`` has its own file; past ``_CACHE_KEEP`` files
    the least recently written go, so the directory stays small.
    """
    try:
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps(rows))
        tmp.replace(cache)
        files = sorted(cache.parent.iterdir(), key=lambda f: f.stat().st_mtime_ns)
        for old in files[:-_CACHE_KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def _scan(path: Iterable[str]) -> list[_Row]:
    # Plain strings and os.path here: this is the cold listing path, and
    # pathlib objects cost a third of it.
    rows: list[_Row] = []
    seen: set[str] = set()
    for entry in path:
        for meta in _metadata_dirs(entry or "."):
            key = _normalize(os.path.basename(meta).rsplit(".", 1)[0].partition("-")[0])
            if key in seen:
                continue
            seen.add(key)
            rows.extend(_entry_points(meta))
    return rows


def _metadata_dirs(entry: str) -> list[str]:
    try:
        with os.scandir(entry) as it:
            names = sorted(
                e.name for e in it if e.name.endswith((".dist-info", ".egg-info")) and e.is_dir()
            )
    except OSError:
        return []
    return [os.path.join(entry, name) for name in names]


def _read(path: str, size: int = -1) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read(size)
    except OSError:
        return None


def _name_version(meta: str) -> tuple[str, str]:
    """Name and version from METADATA (PKG-INFO for eggs): only the header is read."""
    name = version = ""
    head = _read(os.path.join(meta, "METADATA"), 4096)
    if head is None:
        head = _read(os.path.join(meta, "PKG-INFO"), 4096) or ""
    for line in head.split("\n"):
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Version":
            version = value.strip()
        if name and version:
            break
    if not name:
        match = _DIST_DIR.match(os.path.basename(meta))
        name = match["name"] if match else os.path.basename(meta)
        version = version or (match["version"] or "" if match else "")
    return name, version


def _entry_points(meta: str) -> list[_Row]:
    text = _read(os.path.join(meta, "entry_points.txt"))
    if text is None:
        return []
    # Only distributions with entry points pay for reading their metadata.
    name, version = _name_version(meta)
    return [(ep, group, value, name, version, meta) for group, ep, value in parse(text)]


def parse(text: str) -> list[tuple[str, str, str]]:
    """Parse ``entry_points.txt``: ``(group, name, value)`` in file order."""
    found: list[tuple[str, str, str]] = []
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        section = _SECTION.match(line)
        if section:
            group = section["group"].strip()
            continue
        name, eq, value = line.partition("=")
        if group is not None and eq:
            found.append((group, name.strip(), value.strip()))
    return found


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entry_points(
    group: str, path: Sequence[str] | None = None, *, use_cache: bool = True
) -> list[EntryPoint]:
    """The entry points of ``group`` on ``path``, in ``sys.path`` order."""
    return [EntryPoint(*row) for row in read_index(path, use_cache=use_cache) if row[1] == group]
