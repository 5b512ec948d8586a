"""Plugin directories: the wheels and single-file plugins in them, listed without importing.

A plugin directory holds wheels (``*.whl``) and single-file plugins
(``NAME.py``, each with its detached signature ``NAME.py.sig`` when signed).
Listing reads a wheel's ``METADATA`` and ``entry_points.txt`` from the zip,
and a single file's ``__version__`` from its syntax tree: nothing is
imported, installed or verified until a plugin is loaded. Each file is read
once per change of its size or modification time (and of its signature's),
so a rescan of a directory that did not change reads nothing. A file that
cannot be read (half copied, not a zip) is reported once, in the log, and
read again when it changes; it fails only itself.

Module entry points (``name = package.module``) are not taken from plugin
directories: a plugin in a directory names its class or function.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import attrs

from . import _log, _singlefile
from ._discovery import EntryPoint
from ._metafiles import parse
from .exceptions import InvalidPluginError

if TYPE_CHECKING:
    import zipfile

log = _log.Logger("plugyard")

#: What a plugin directory's file is.
Kind = Literal["wheel", "file"]
#: Size and modification time in ns of a file and of its signature, and a
#: checksum of a single file's content (two edits within one tick of the
#: file system's clock leave the same time; wheels are copied, not edited).
Stamp = tuple[int, int, int, int, int]
_EXTENSIONS = (".so", ".pyd")
_MAX_TEXT = 16 * 1024 * 1024


@attrs.frozen
class DirectoryItem:
    """One plugin file of a plugin directory, as read from the file.

    Attributes:
        location: The file's path.
        kind: ``"wheel"`` or ``"file"`` (a single-file plugin).
        distribution: The distribution's name as its metadata spells it
            (``plugyard-file-NAME`` for a single file).
        version: Its version.
        entry_points: ``(group, name, value)`` of each class or function
            entry point; a single file's group is ``""``: any group.
        requires: Its ``Requires-Dist`` lines.
        modules: The top-level modules and packages it installs.
        extensions: Its extension module files (which cannot be reloaded).
        stamp: The file's (and its signature's) size and modification time
            when it was read.
    """

    location: str
    kind: Kind
    distribution: str
    version: str
    entry_points: tuple[tuple[str, str, str], ...]
    requires: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    stamp: Stamp = (0, 0, 0, 0, 0)

    def entry_point(self, group: str, name: str) -> EntryPoint | None:
        """Its entry point ``name`` in ``group``, pointing at this file until installed."""
        for ep_group, ep_name, value in self.entry_points:
            if ep_name == name and ep_group in (group, ""):
                return EntryPoint(
                    name, group, value, self.distribution, self.version, self.location
                )
        return None


@attrs.frozen
class BadFile:
    """A file of a plugin directory that cannot be read as a plugin.

    Attributes:
        location: The file's path.
        reason: Why, for people.
        stamp: Its size and modification time when it was read.
    """

    location: str
    reason: str
    stamp: Stamp = (0, 0, 0, 0, 0)


def stamp_of(location: str) -> Stamp | None:
    """The stamp of a plugin file (and of its detached signature), or ``None`` if it is gone."""
    try:
        st = os.stat(location)  # noqa: PTH116 - a plain string per file, as listed
    except OSError:
        return None
    try:
        sig = os.stat(location + ".sig")  # noqa: PTH116
        signed = (sig.st_size, sig.st_mtime_ns)
    except OSError:
        signed = (-1, -1)
    checksum = 0
    if location.endswith(".py") and st.st_size <= _MAX_TEXT:
        import zlib

        try:
            with Path(location).open("rb") as file:
                checksum = zlib.crc32(file.read())
        except OSError:
            return None
    return (st.st_size, st.st_mtime_ns, *signed, checksum)


def read(location: str | os.PathLike[str]) -> DirectoryItem | BadFile:
    """Read one wheel or single-file plugin; never raises for a bad file."""
    path = os.fspath(location)
    stamp = stamp_of(path)
    if stamp is None:
        return BadFile(path, "the file is gone or cannot be read")
    try:
        if path.endswith(".whl"):
            return _read_wheel(path, stamp)
        return _read_file(path, stamp)
    except InvalidPluginError as exc:
        return BadFile(path, exc.reason, stamp)
    except Exception as exc:  # a half-copied wheel (BadZipFile, zlib.error), a vanished file
        return BadFile(path, f"cannot be read: {type(exc).__name__}: {exc}", stamp)


def _read_file(path: str, stamp: Stamp) -> DirectoryItem:
    with Path(path).open("rb") as file:
        source = file.read(_MAX_TEXT + 1)
    if len(source) > _MAX_TEXT:
        raise InvalidPluginError(path, "a single-file plugin is at most 16 MiB")
    identity = _singlefile.identify(path, source)
    return DirectoryItem(
        path,
        "file",
        identity.distribution,
        identity.version,
        (("", identity.name, f"{identity.module}:plugin"),),
        modules=(identity.module,),
        stamp=stamp,
    )


def _read_wheel(path: str, stamp: Stamp) -> DirectoryItem:
    import email.parser
    import importlib.machinery
    import zipfile

    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        infos = sorted(
            {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        )
        if len(infos) != 1:
            raise InvalidPluginError(
                path, f"a wheel has one .dist-info directory, not {len(infos)}"
            )
        dist_info = infos[0]
        meta = email.parser.BytesHeaderParser().parsebytes(
            _read_member(zf, f"{dist_info}/METADATA")
        )
        try:
            entry_text = _read_member(zf, f"{dist_info}/entry_points.txt").decode("utf-8")
        except KeyError:
            entry_text = ""
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        raise InvalidPluginError(path, "its METADATA has no Name or no Version")
    entry_points = []
    for group, ep_name, value in parse(entry_text):
        if ":" in value:
            entry_points.append((group, ep_name, value))
        else:
            log.warning(
                "plugin directory: %s: module entry point %r = %r is ignored; a plugin in a "
                "plugin directory names its class or function (module:object)",
                path,
                ep_name,
                value,
            )
    suffixes = (*importlib.machinery.EXTENSION_SUFFIXES, *_EXTENSIONS)
    data = dist_info.removesuffix(".dist-info") + ".data/"
    files = [_data_path(n, data) for n in names if not n.startswith(dist_info + "/")]
    return DirectoryItem(
        path,
        "wheel",
        str(name).strip(),
        str(version).strip(),
        tuple(entry_points),
        requires=tuple(str(r) for r in meta.get_all("Requires-Dist") or ()),
        modules=top_level(f for f in files if f is not None),
        extensions=tuple(sorted(f for f in files if f is not None and f.endswith(suffixes))),
        stamp=stamp,
    )


def _read_member(zf: zipfile.ZipFile, member: str) -> bytes:
    info = zf.getinfo(member)
    if info.file_size > _MAX_TEXT:
        raise InvalidPluginError(member, "is larger than 16 MiB")
    return zf.read(info)


def _data_path(name: str, data: str) -> str | None:
    """Where a wheel member lands relative to the site directory; ``None`` outside it."""
    if not name.startswith(data):
        return name
    for scheme in ("purelib/", "platlib/"):
        if name.startswith(data + scheme):
            return name[len(data) + len(scheme) :]
    return None


def top_level(paths: Iterable[str]) -> tuple[str, ...]:
    """The top-level modules and packages of files given relative to the site directory."""
    found = set()
    for path in paths:
        head, slash, _ = path.partition("/")
        if head.endswith(".dist-info") or head in ("..", "__pycache__"):
            continue
        stem = head.removesuffix(".py") if not slash else head
        if (slash or head.endswith(".py")) and stem.isidentifier():
            found.add(stem)
    return tuple(sorted(found))


class Directories:
    """The plugin directories of one manager, each file read once per change.

    Args:
        directories: The directories, in order of precedence.
    """

    def __init__(self, directories: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = tuple(Path(d) for d in directories)
        # The last scan: each file as read, and the files in precedence order.
        # Replaced whole, so that a listing reads one scan, not half of two.
        self._scan: tuple[dict[str, DirectoryItem | BadFile], list[str]] | None = None
        # Files outside the directories that were asked for (a reload's to=).
        self._elsewhere: dict[str, DirectoryItem | BadFile] = {}

    def __repr__(self) -> str:
        return f"<Directories {[str(p) for p in self.paths]}>"

    def files(self) -> list[str]:
        """The plugin files of the directories now, in precedence order."""
        found: list[str] = []
        for directory in self.paths:
            try:
                names = sorted(os.listdir(directory))  # noqa: PTH208 - strings, not Paths
            except OSError:
                continue
            found.extend(
                os.path.join(directory, n)  # noqa: PTH118 - one string per file, as listed
                for n in names
                if n.endswith((".whl", ".py")) and not n.startswith(".")
            )
        return found

    def scan(self) -> list[DirectoryItem]:
        """Read the directories again (only files that changed); the items, in precedence order."""
        order = self.files()
        known = self._scan[0] if self._scan is not None else {}
        fresh: dict[str, DirectoryItem | BadFile] = {}
        for location in order:
            old = known.get(location)
            if old is not None and old.stamp == stamp_of(location):
                fresh[location] = old
                continue
            item = read(location)
            if isinstance(item, BadFile):
                log.warning("plugin directory: skipping %s: %s", location, item.reason)
            fresh[location] = item
        self._scan = (fresh, order)
        return self.items()

    def items(self) -> list[DirectoryItem]:
        """The items of the last scan that could be read, in precedence order."""
        read, order = self._scan or ({}, [])
        return [i for loc in order if isinstance(i := read[loc], DirectoryItem)]

    def bad_files(self) -> list[BadFile]:
        """The files of the last scan that could not be read."""
        read, order = self._scan or ({}, [])
        return [i for loc in order if isinstance(i := read[loc], BadFile)]

    def get(self, location: str) -> DirectoryItem | BadFile:
        """The item at ``location`` (in the directories or not) as it is now.

        It is read again only if it changed since it was last read.
        """
        listed = self._scan[0] if self._scan is not None else {}
        known = listed if location in listed else self._elsewhere
        old = known.get(location)
        if old is not None and old.stamp == stamp_of(location):
            return old
        item = read(location)
        known[location] = item
        return item

    def entry_points(self, group: str) -> list[tuple[EntryPoint, str]]:
        """The entry points of ``group`` in the directories, each with its file (scanning once)."""
        if self._scan is None:
            self.scan()
        found: list[tuple[EntryPoint, str]] = []
        for item in self.items():
            for ep_group, name, _ in item.entry_points:
                if ep_group in (group, ""):
                    ep = item.entry_point(group, name)
                    assert ep is not None  # noqa: S101 - listed just above
                    found.append((ep, item.location))
        return found
