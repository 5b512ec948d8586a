"""The on-disk cache of the entry-point index, and when it may be trusted.

One file per interpreter and ``sys.path``, under
``$XDG_CACHE_HOME/plugyard/entry-points`` (``~/.cache`` by default). It
holds what the path finder found and the status (mtime, ctime, size, inode)
of every directory and file that was read to find it: each ``sys.path``
entry, each ``entry_points.txt`` and ``METADATA`` read, each metadata
directory without entry points (where one could appear). A cached answer is
used only if every one of them is unchanged, so an install, an uninstall and
an in-place edit are all seen by the next reading.

The cache decides what plugyard imports, so it is trusted only if the cache
root, ``plugyard``, ``entry-points`` and the file are each owned by this user
and writable by nobody else, and none is a symbolic link. That is checked on
the open descriptors (each directory opened relative to the last, without
following links), so nothing can be swapped in between the check and the
read. Otherwise the cache is not used, and the reason is logged once. A file
that is truncated, corrupt or not of this format counts as absent.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import sys
from binascii import crc32
from collections.abc import Sequence
from itertools import chain
from typing import Any

from . import _log

log = _log.Logger("plugyard")

_FORMAT = 3
_MAGIC = b"plugyard-entry-points\0" + bytes([_FORMAT])
_CHECK = 4  # a CRC-32 of the body: a torn or corrupt file is absent (ownership is the guard)
_MAX_SIZE = 64 << 20
_KEEP = 32  # files kept in the directory, one per interpreter and sys.path
#: A file changed this recently (ns) may change again within the same
#: timestamp tick without its status changing: a scan that read it is not cached.
RACY_NS = 100_000_000
_SUBDIRS = ("plugyard", "entry-points")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_SUPPORTED = bool(
    _NOFOLLOW
    and _DIRECTORY
    and hasattr(os, "getuid")
    and {os.open, os.mkdir, os.rename, os.unlink} <= os.supports_dir_fd
    and os.scandir in os.supports_fd
)

_reported: set[str] = set()


def cache_root() -> str:
    """``$XDG_CACHE_HOME`` if it is an absolute path, else ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return base


def _refuse(reason: str, level: int = _log.WARNING) -> None:
    if reason not in _reported:
        _reported.add(reason)
        log.log(level, "the entry-point index cache is not used: %s", reason)


class _UntrustedError(Exception):
    pass


def _check(fd: int, where: str, *, directory: bool) -> None:
    st = os.fstat(fd)
    if directory and not stat.S_ISDIR(st.st_mode):
        raise _UntrustedError(f"{where} is not a directory")
    if not directory and not stat.S_ISREG(st.st_mode):
        raise _UntrustedError(f"{where} is not a regular file")
    if st.st_uid != os.getuid():
        raise _UntrustedError(
            f"{where} is owned by uid {st.st_uid}, not by this user ({os.getuid()})"
        )
    if st.st_mode & 0o022:
        raise _UntrustedError(
            f"{where} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"chmod go-w it or set XDG_CACHE_HOME to a private directory"
        )


def _open_dir(name: str, parent: int | None, where: str) -> int:
    """Open directory ``name`` (in ``parent``), made if missing, and check it."""
    flags = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
    try:
        try:
            fd = os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            if parent is None:
                os.makedirs(name, 0o700, exist_ok=True)
            else:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if os.path.islink(where):
            raise _UntrustedError(
                f"{where} is a symbolic link; set XDG_CACHE_HOME to the directory it points to"
            ) from None
        if os.path.lexists(where):
            raise _UntrustedError(
                f"{where} cannot be opened as a directory: {exc.strerror}"
            ) from None
        raise  # it cannot be made: no cache, and nothing to warn about
    try:
        _check(fd, where, directory=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _key(entries: Sequence[str]) -> str:
    """The file name for absolute ``entries``, on this interpreter.

    Two CRC-32s with different seeds (64 bits), not a cryptographic hash:
    the name only spreads caches over files, and a file is used only if it
    was written for exactly these entries (:func:`_validated`), so a clash
    costs a rescan, never a wrong answer. ``hashlib`` would load OpenSSL,
    which costs more than the rest of a warm first call's lookup.
    """
    text = "\0".join([str(_FORMAT), sys.executable, sys.prefix, sys.version, *entries])
    data = text.encode("utf-8", "surrogatepass")
    return f"{crc32(data):08x}{crc32(data, 0x9E3779B9):08x}"


#: The status of a file that is not there.
ABSENT = (-1, -1, -1, -1)


def stamp(path: str) -> tuple[int, int, int, int]:
    """What is compared to see a change: mtime, ctime, size and inode, or ``ABSENT``."""
    try:
        st = os.stat(path)
    except OSError:
        return ABSENT
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _strings(values: Any, width: int) -> bool:
    """Whether ``values`` is a list of ``width``-tuples of strings (checked at C speed)."""
    if type(values) is not list:
        return False
    if not values:
        return True
    if set(map(type, values)) != {tuple} or set(map(len, values)) != {width}:
        return False
    return set(map(type, chain.from_iterable(values))) == {str}


class IndexCache:
    """The cache file of one interpreter and ``sys.path``, opened safely, or not at all."""

    def __init__(self, directory: int | None, entries: Sequence[str]) -> None:
        self._dir = directory
        self._entries = [os.path.abspath(entry or ".") for entry in entries]
        self._name = _key(self._entries)

    @classmethod
    def open(cls, entries: Sequence[str]) -> IndexCache:
        """Open the cache directory of ``entries``, checking every component.

        The result does nothing if the directory cannot be trusted (the
        reason is logged once) or cannot be made.
        """
        if not _SUPPORTED:
            # Not a refusal of anything found: nothing to warn about on every run.
            _refuse("this platform cannot check who owns the cache directory", _log.DEBUG)
            return cls(None, entries)
        root = cache_root()
        fd: int | None = None
        try:
            fd = _open_dir(root, None, root)
            where = root
            for part in _SUBDIRS:
                where = os.path.join(where, part)
                child = _open_dir(part, fd, where)
                os.close(fd)
                fd = child
        except _UntrustedError as exc:
            if fd is not None:
                os.close(fd)
            _refuse(str(exc))
            return cls(None, entries)
        except OSError as exc:
            if fd is not None:
                os.close(fd)
            log.debug("the entry-point index cache cannot be made: %s", exc)
            return cls(None, entries)
        return cls(fd, entries)

    def __enter__(self) -> IndexCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the directory."""
        if self._dir is not None:
            os.close(self._dir)
            self._dir = None

    def _read_bytes(self) -> bytes | None:
        assert self._dir is not None  # noqa: S101 - callers check
        flags = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self._name, flags, dir_fd=self._dir)
        except FileNotFoundError:
            return None
        except OSError as exc:
            _refuse(f"the cache file {self._name} cannot be opened safely: {exc.strerror}")
            return None
        try:
            _check(fd, os.path.join(cache_root(), *_SUBDIRS, self._name), directory=False)
            size = os.fstat(fd).st_size
            if size > _MAX_SIZE:
                return None
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        except _UntrustedError as exc:
            _refuse(str(exc))
            return None
        finally:
            os.close(fd)

    def read(self) -> tuple[dict[str, list[Any]], list[str], list[Any]] | None:
        """``(groups, keys, problems)`` as cached, or ``None`` if absent, stale or malformed."""
        if self._dir is None:
            return None
        try:
            data = self._read_bytes()
        except OSError:
            return None
        if data is None or not data.startswith(_MAGIC):
            return None
        body = data[len(_MAGIC) + _CHECK :]
        if crc32(body).to_bytes(_CHECK, "big") != data[len(_MAGIC) : len(_MAGIC) + _CHECK]:
            return None
        try:
            return _validated(marshal.loads(body), self._entries)  # noqa: S302 - ours, intact
        except (ValueError, EOFError, TypeError, OSError):
            return None

    def write(
        self,
        groups: dict[str, list[Any]],
        keys: list[str],
        problems: list[Any],
        deps: list[Any],
        started: int,
    ) -> None:
        """Write a scan atomically; a scan of files changed too recently is not written.

        ``deps`` starts with each ``sys.path`` entry (absolute) and its
        status, in order, then every file and directory read.
        """
        if self._dir is None:
            return
        floor = started - RACY_NS
        if any(mtime >= floor or ctime >= floor for _, (mtime, ctime, _s, _i) in deps):
            log.debug("entry-point index not cached: a file it was read from just changed")
            return
        present = [path for path, status in deps if status != ABSENT]
        stamps = [status for _, status in deps if status != ABSENT]
        absent = [path for path, status in deps if status == ABSENT]
        entries = [path for path, _ in deps[: len(self._entries)]]
        body = marshal.dumps((entries, present, stamps, absent, groups, keys, problems))
        data = _MAGIC + crc32(body).to_bytes(_CHECK, "big") + body
        tmp = f".{self._name}.{os.getpid()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=self._dir)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(tmp, self._name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            self._prune()
        except OSError as exc:
            log.debug("entry-point index not cached: %s", exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self._dir)

    def _prune(self) -> None:
        assert self._dir is not None  # noqa: S101 - callers check
        with os.scandir(self._dir) as it:
            files = [(e.stat(follow_symlinks=False).st_mtime_ns, e.name) for e in it]
        for _, name in sorted(files)[:-_KEEP]:
            os.unlink(name, dir_fd=self._dir)


def _validated(
    payload: Any, entries: list[str]
) -> tuple[dict[str, list[Any]], list[str], list[Any]] | None:
    """The cached answer if ``payload`` has the shape written and nothing it read changed."""
    if type(payload) is not tuple or len(payload) != 7:
        return None
    written_for, present, stamps, absent, groups, keys, problems = payload
    if written_for != entries or type(present) is not list or type(absent) is not list:
        return None  # not a reading of these entries
    try:
        now = [(s.st_mtime_ns, s.st_ctime_ns, s.st_size, s.st_ino) for s in map(os.stat, present)]
    except (OSError, TypeError, ValueError):
        return None  # gone, or not paths
    if now != stamps or any(map(_exists, absent)):
        return None
    if type(groups) is not dict or set(map(type, groups)) - {str}:
        return None
    if not all(_strings(rows, 8) for rows in groups.values()):
        return None
    if type(keys) is not list or set(map(type, keys)) - {str} or not _strings(problems, 4):
        return None
    return groups, keys, problems


def _exists(path: Any) -> bool:
    try:
        os.stat(path)
    except (OSError, TypeError, ValueError):
        return type(path) is not str  # a path that is not a string cannot be ours
    return True
