"""Finding installed plugins: the entry points of a group, with their distributions.

Nothing here imports plugin code. The answer is the one
``importlib.metadata.entry_points(group=...)`` of the running interpreter
gives, distribution by distribution: the same finders on ``sys.meta_path``,
in their order, the same first-found-wins rule by normalized name, the same
``entry_points.txt`` syntax and the same ``Name`` and ``Version`` headers.

The ordinary case is read here, fast: a ``sys.path`` directory whose
``.dist-info`` (or ``.egg-info``) directories each have one copy, a
lower-case suffix and a ``METADATA`` (``PKG-INFO``) whose first headers are
plain. Everything else (zip files on the path, ``.egg`` directories, a
second copy of a name, odd casing, a copy without ``METADATA``, folded or
unusual headers, ``sys.meta_path`` finders other than the path finder) is
handed to ``importlib.metadata`` itself, so the answer is its answer.

A distribution whose ``entry_points.txt`` ``importlib.metadata`` would fail
on (it raises for the whole listing) is left out and reported in
:attr:`Index.problems`; the others are listed.

What the path finder finds is cached on disk (see :mod:`plugyard._indexcache`),
validated against the status of every directory and file it was read from.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _indexcache
from ._metafiles import BrokenFileError, DelegateError, normalize, read_fast
from ._public import present_top_level as _present_top_level
from ._value import Value

if TYPE_CHECKING:
    from importlib.metadata import Distribution, PackageMetadata

#: How a distribution is laid out, as :attr:`EntryPoint.layout` says it.
DIST_INFO = "dist-info"
EGG_INFO = "egg-info"
EGG = "egg"
ZIP = "zip"
FINDER = "finder"


class EntryPoint(Value):
    """One entry point of an installed distribution.

    Attributes:
        name: The entry point's name: the plugin name.
        group: Its group.
        value: What it names: ``package.module:object`` or ``package.module``.
        distribution: The distribution's name as its metadata spells it
            (``""`` when its metadata names none, e.g. a leftover copy
            without ``METADATA``).
        version: The distribution's version (``""`` when its metadata has none).
        path: The distribution's metadata directory; for one found by a
            ``sys.meta_path`` finder, a description that names no directory.
        layout: ``"dist-info"`` (a ``.dist-info`` directory on disk, the only
            layout the trust gate can verify), ``"egg-info"``, ``"egg"`` (an
            ``EGG-INFO`` directory), ``"zip"`` (inside a zip file on
            ``sys.path``) or ``"finder"`` (from a ``sys.meta_path`` finder).
        dist: The ``importlib.metadata`` distribution of a ``"finder"`` entry
            point, which cannot be found again from its path.
    """

    __slots__ = ("dist", "distribution", "group", "layout", "name", "path", "value", "version")
    _uncompared = _unshown = frozenset({"dist"})

    name: str
    group: str
    value: str
    distribution: str
    version: str
    path: str
    layout: str
    dist: Any

    def __init__(
        self,
        name: str,
        group: str,
        value: str,
        distribution: str,
        version: str,
        path: str,
        layout: str = DIST_INFO,
        dist: Any = None,
    ) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "group", group)
        _set(self, "value", value)
        _set(self, "distribution", distribution)
        _set(self, "version", version)
        _set(self, "path", path)
        _set(self, "layout", layout)
        _set(self, "dist", dist)

    @property
    def module(self) -> str:
        """The module part of :attr:`value`."""
        return self.value.partition(":")[0].strip()

    @property
    def attr(self) -> str | None:
        """The object path after the colon, or ``None`` for a module entry point."""
        _, colon, attr = self.value.partition(":")
        return attr.partition("[")[0].strip() if colon else None

    @property
    def verifiable(self) -> bool:
        """Whether its files are a ``.dist-info`` directory on disk, which can be verified."""
        return self.layout == DIST_INFO


class BrokenDistribution(Value):
    """A distribution whose entry points cannot be read; it is left out of the listing.

    Attributes:
        distribution: Its name, or its metadata directory when the name is unknown.
        path: Its metadata directory.
        reason: What is wrong, e.g. the line of ``entry_points.txt`` that has no ``=``.
    """

    __slots__ = ("distribution", "path", "reason")

    distribution: str
    path: str
    reason: str

    def __init__(self, distribution: str, path: str, reason: str) -> None:
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "reason", reason)

    def __str__(self) -> str:
        return f"{self.distribution} ({self.path}): {self.reason}"


status = _indexcache.stamp

# A row: the fields of an EntryPoint, and the normalized name it is deduplicated by.
_Row = tuple[str, str, str, str, str, str, str, str]


class Index:
    """One reading of the installed entry points on a path, of every group."""

    __slots__ = ("_groups", "problems")

    def __init__(
        self,
        groups: dict[str, list[EntryPoint]] | dict[str, list[_Row]],
        problems: Sequence[BrokenDistribution],
    ) -> None:
        self._groups: dict[str, Any] = groups
        #: The distributions left out because their entry points cannot be read.
        self.problems = list(problems)

    def groups(self) -> dict[str, int]:
        """Every group with entry points, and how many each has, sorted by name."""
        return {
            group: len(self._groups[group]) for group in sorted(self._groups) if self._groups[group]
        }

    def entry_points(self, group: str) -> list[EntryPoint]:
        """The entry points of ``group``, in the order ``importlib.metadata`` lists them."""
        found = self._groups.get(group)
        if not found:
            return []
        if type(found[0]) is EntryPoint:
            return list(found)
        return [EntryPoint(*row[:7]) for row in found]

    def rows(self, group: str) -> Sequence[EntryPoint | _Row]:
        """The entry points of ``group`` as the index holds them: built, or rows to build from.

        The index's own list, not a copy: read it, do not change it.
        """
        found: Sequence[EntryPoint | _Row] = self._groups.get(group) or ()
        return found


def by_name(items: Iterable[EntryPoint | _Row]) -> tuple[ByName, list[EntryPoint]]:
    """The class and function entry points among ``items`` by name, and the module ones.

    Nothing is built for a name until it is looked up: a first call among
    thousands of plugins makes one :class:`EntryPoint`.
    """
    named: dict[str, list[Any]] = {}
    modules: list[EntryPoint] = []
    for item in items:
        if isinstance(item, EntryPoint):
            name, value = item.name, item.value
        else:
            name, value = item[0], item[2]
        # A colon is what gives an entry point an object (EntryPoint.attr).
        if ":" in value:
            named.setdefault(name, []).append(item)
        else:
            modules.append(_entry_point(item))
    return ByName(named), modules


def _entry_point(item: EntryPoint | _Row) -> EntryPoint:
    return item if isinstance(item, EntryPoint) else EntryPoint(*item[:7])


class _Built(list[EntryPoint]):
    """A name's entry points, built from the index's rows: told apart from the rows by type."""

    __slots__ = ()


class ByName(Mapping[str, list[EntryPoint]]):
    """Entry points by name, each list made from the index's rows when first read.

    Iterating, ``in`` and ``len`` read the names alone.
    """

    __slots__ = ("_lists",)

    def __init__(self, lists: dict[str, list[Any]]) -> None:
        # Each name's rows, replaced by its entry points once built (one dict,
        # not a second one of what was built); two threads building one at
        # once make equal lists.
        self._lists = lists

    def __getitem__(self, name: str) -> list[EntryPoint]:
        found = self._lists[name]
        if type(found) is not _Built:
            found = self._lists[name] = _Built([_entry_point(item) for item in found])
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)

    def __contains__(self, name: object) -> bool:
        return name in self._lists


# -- what importlib.metadata reads itself --------------------------------------------


def _dist_key(dist: Distribution) -> str:
    # entry_points() deduplicates with attrgetter('_normalized_name'): the
    # name from the directory when it can, else from METADATA. No public API
    # gives it, and the same answer needs the same key.
    return str(dist._normalized_name)  # type: ignore[attr-defined]


def _header(meta: PackageMetadata, key: str) -> str:
    """A header as ``dist.metadata[key]`` gives it (``""`` when missing, without its warning)."""
    return str(meta[key] or "") if key in meta else ""


def _dist_rows(
    dist: Distribution, key: str, path: str, layout: str, rows: list[_Row], *, live: bool = False
) -> list[EntryPoint]:
    """The entry points of a distribution ``importlib.metadata`` found or read."""
    eps = list(dist.entry_points)
    if not eps:
        return []  # importlib.metadata reads no METADATA for these either
    meta = dist.metadata
    name = _header(meta, "Name")
    version = _header(meta, "Version")
    if live:
        return [
            EntryPoint(ep.name, ep.group, ep.value, name, version, path, layout, dist) for ep in eps
        ]
    rows.extend((ep.name, ep.group, ep.value, name, version, path, layout, key) for ep in eps)
    return []


def _broken(exc: BaseException, path: str, dist: Distribution | None = None) -> BrokenDistribution:
    name = path
    if dist is not None:
        with contextlib.suppress(Exception):  # the name only labels the problem
            name = _header(dist.metadata, "Name") or path
    return BrokenDistribution(name, path, f"{type(exc).__name__}: {exc}")


class _Scan:
    """What the path finder finds on one path: rows, names, problems, and what they depend on."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.keys: list[str] = []
        self.seen: set[str] = set()
        self.entries: list[Any] = []  # each sys.path entry, absolute, and its status
        self.deps: list[Any] = []
        self.problems: list[tuple[str, str, str, str]] = []  # key, name, path, reason

    def claim(self, key: str) -> bool:
        """Whether ``key`` is new: the first distribution of a name wins, the others are hidden."""
        if key in self.seen:
            return False
        self.seen.add(key)
        self.keys.append(key)
        return True

    def problem(self, key: str, broken: BrokenDistribution) -> None:
        self.problems.append((key, broken.distribution, broken.path, broken.reason))

    def delegated(self, child_path: str, meta: str, layout: str) -> None:
        """Read one metadata directory with ``importlib.metadata.PathDistribution``."""
        import pathlib
        from importlib.metadata import PathDistribution

        # The same path object importlib.metadata's own search makes.
        dist = PathDistribution(pathlib.Path(child_path))
        for filename in ("entry_points.txt", "METADATA", "PKG-INFO", ""):
            self.deps.append((os.path.join(meta, filename), status(os.path.join(meta, filename))))
        try:
            key = _dist_key(dist)
        except Exception as exc:
            self.problem("", _broken(exc, meta))
            return
        if not self.claim(key):
            return
        try:
            _dist_rows(dist, key, meta, layout, self.rows)
        except Exception as exc:
            self.problem(key, _broken(exc, meta, dist))

    def zipped(self, entry: str) -> None:
        """A zip file on the path: what the path finder finds in it."""
        from importlib.machinery import PathFinder
        from importlib.metadata import DistributionFinder

        for dist in PathFinder.find_distributions(DistributionFinder.Context(path=[entry])):
            where = str(getattr(dist, "_path", entry)).rstrip("/")
            try:
                key = _dist_key(dist)
            except Exception as exc:
                self.problem("", _broken(exc, where))
                continue
            if self.claim(key):
                try:
                    _dist_rows(dist, key, where, ZIP, self.rows)
                except Exception as exc:
                    self.problem(key, _broken(exc, where, dist))

    def directory(self, entry: str, where: str, children: Iterable[os.DirEntry[str]]) -> None:
        """One ``sys.path`` directory, in the order ``importlib.metadata``'s search lists it."""
        buckets: dict[str, list[os.DirEntry[str]]] = {}
        eggs: list[os.DirEntry[str]] = []
        base_is_egg = os.path.basename(entry).lower().endswith(".egg")
        for child in children:
            low = child.name.lower()
            if low.endswith((".dist-info", ".egg-info")):
                bucket = normalize(low.rpartition(".")[0].partition("-")[0])
                buckets.setdefault(bucket, []).append(child)
            elif base_is_egg and low == "egg-info":
                eggs.append(child)
        prefix = where if where.endswith(os.sep) else where + os.sep
        for bucket, members in buckets.items():
            for child in members:
                name = child.name
                meta = prefix + name
                layout = DIST_INFO if name[-10:].lower() == ".dist-info" else EGG_INFO
                if (
                    len(members) == 1
                    and bucket
                    and name.endswith((".dist-info", ".egg-info"))
                    and not name.startswith("-")
                    and child.is_dir()
                ):
                    if not self.claim(bucket):
                        continue
                    mark = len(self.deps), len(self.rows)
                    try:
                        read_fast(meta, layout, bucket, self.rows, self.deps)
                        continue
                    except BrokenFileError as exc:
                        self.problem(bucket, BrokenDistribution(name, meta, str(exc)))
                        continue
                    except DelegateError:
                        del self.deps[mark[0] :], self.rows[mark[1] :]
                        self.seen.discard(bucket)
                        self.keys.pop()
                self.delegated(os.path.join(entry, name) if entry else name, meta, layout)
        for child in eggs:
            joined = os.path.join(entry, child.name) if entry else child.name
            self.delegated(joined, os.path.join(where, child.name), EGG)


def scan(path: Sequence[str]) -> _Scan:
    """Read what the path finder finds on ``path``, without any cache."""
    found = _Scan()
    for entry in path:
        where = os.path.abspath(entry or ".")
        try:
            listing = os.scandir(entry or ".")
        except NotADirectoryError:
            found.entries.append((where, status(where)))
            found.zipped(entry)
            continue
        except OSError:
            found.entries.append((where, status(where)))
            continue
        with listing:
            children = list(listing)
        found.entries.append((where, status(where)))
        found.directory(entry, where, children)
    return found


# -- putting it together -------------------------------------------------------------


def _finders() -> list[Any]:
    """The distribution finders on ``sys.meta_path``, in order, as ``importlib.metadata`` asks."""
    declared = [getattr(finder, "find_distributions", None) for finder in sys.meta_path]
    return [
        finder for finder, found in zip(sys.meta_path, declared, strict=True) if found is not None
    ]


def _path_finder() -> object:
    from importlib.machinery import PathFinder

    return PathFinder


def _describe(finder: object) -> str:
    kind = finder if isinstance(finder, type) else type(finder)
    return f"<{kind.__module__}.{kind.__qualname__}>"


def _from_finder(
    finder: Any, path: Sequence[str]
) -> tuple[list[tuple[str, list[EntryPoint]]], list[BrokenDistribution]]:
    """What another ``sys.meta_path`` finder finds: (key, entry points) per distribution."""
    from importlib.metadata import DistributionFinder

    found: list[tuple[str, list[EntryPoint]]] = []
    problems: list[BrokenDistribution] = []
    where = _describe(finder)
    try:
        dists = list(finder.find_distributions(DistributionFinder.Context(path=list(path))))
    except Exception as exc:
        return [], [BrokenDistribution(where, where, f"{type(exc).__name__}: {exc}")]
    for dist in dists:
        try:
            found.append(_finder_dist(dist, where))
        except Exception as exc:  # noqa: PERF203 - each distribution fails alone
            problems.append(_broken(exc, where, dist))
    return found, problems


def _finder_dist(dist: Distribution, where: str) -> tuple[str, list[EntryPoint]]:
    key = _dist_key(dist)
    name = _header(dist.metadata, "Name")
    version = _header(dist.metadata, "Version")
    label = f"{where} {name} {version}".rstrip()
    return key, _dist_rows(dist, key, label, FINDER, [], live=True)


def read_index(path: Sequence[str] | None = None, *, use_cache: bool = True) -> Index:
    """Every entry point of every distribution on ``path`` (``sys.path`` by default).

    A distribution found twice counts once: the first, as for
    ``importlib.metadata``. The path finder's part is cached unless
    ``use_cache`` is false or ``PLUGYARD_NO_CACHE`` is set.
    """
    entries = list(sys.path if path is None else path)
    finders = _finders()
    path_finder = _path_finder()
    parts: list[Any] = ["path" if finder is path_finder else finder for finder in finders]
    cached = _path_part(entries, use_cache) if "path" in parts else None
    if parts == ["path"] and cached is not None:
        # The usual case: the path finder alone, nothing to merge.
        return Index(cached.groups, cached.problems)
    groups: dict[str, list[EntryPoint]] = {}
    problems: list[BrokenDistribution] = []
    seen: set[str] = set()
    for part in parts:
        if part == "path":
            assert cached is not None  # noqa: S101 - read above when the path finder is there
            cached.merge_into(groups, problems, seen)
            continue
        dists, broken = _from_finder(part, entries)
        problems.extend(broken)
        for key, eps in dists:
            if key in seen:
                continue
            seen.add(key)
            for ep in eps:
                groups.setdefault(ep.group, []).append(ep)
    return Index(groups, problems)


class _PathPart:
    """The path finder's part of the index, as read or as cached."""

    def __init__(
        self, groups: dict[str, list[_Row]], keys: Sequence[str], problems: Sequence[Any]
    ) -> None:
        self.groups = groups
        self.keys = keys
        self.raw_problems = problems

    @property
    def problems(self) -> list[BrokenDistribution]:
        return [
            BrokenDistribution(name, path, reason) for _, name, path, reason in self.raw_problems
        ]

    def merge_into(
        self,
        groups: dict[str, list[EntryPoint]],
        problems: list[BrokenDistribution],
        seen: set[str],
    ) -> None:
        hidden = seen.intersection(self.keys)
        for group, rows in self.groups.items():
            eps = [EntryPoint(*row[:7]) for row in rows if row[7] not in hidden]
            if eps:
                groups.setdefault(group, []).extend(eps)
        problems.extend(
            BrokenDistribution(name, path, reason)
            for key, name, path, reason in self.raw_problems
            if key not in hidden
        )
        seen.update(self.keys)


def _grouped(rows: Iterable[_Row]) -> dict[str, list[_Row]]:
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        groups.setdefault(row[1], []).append(row)
    return groups


def _path_part(entries: list[str], use_cache: bool) -> _PathPart:
    if not use_cache or os.environ.get("PLUGYARD_NO_CACHE"):
        found = scan(entries)
        return _PathPart(_grouped(found.rows), found.keys, found.problems)
    with _indexcache.IndexCache.open(entries) as cache:
        data = cache.read()
        if data is not None:
            return _PathPart(*data)
        started = time.time_ns()
        found = scan(entries)
        part = _PathPart(_grouped(found.rows), found.keys, found.problems)
        cache.write(part.groups, found.keys, found.problems, found.entries + found.deps, started)
    return part


def entry_points(
    group: str, path: Sequence[str] | None = None, *, use_cache: bool = True
) -> list[EntryPoint]:
    """The entry points of ``group`` on ``path``, in the order ``importlib.metadata`` lists them."""
    return read_index(path, use_cache=use_cache).entry_points(group)


def distribution_of(ep: EntryPoint) -> Distribution | None:
    """The ``importlib.metadata`` distribution behind ``ep``, made when asked for."""
    if ep.dist is not None:
        return ep.dist  # type: ignore[no-any-return]
    import pathlib
    from importlib.metadata import PathDistribution

    if ep.layout == ZIP:
        import zipfile

        root, _, child = ep.path.rpartition("/")
        return PathDistribution(zipfile.Path(root, at=child + "/"))
    if not ep.path:
        return None
    return PathDistribution(pathlib.Path(ep.path))


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
