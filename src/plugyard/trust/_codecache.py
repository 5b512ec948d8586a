"""Compiled code of verified modules, cached in a directory only this user can change.

Whoever can write the cache directory, or rename anything on the way to it,
can make plugyard run any code under the name of a verified module: the
entries are marshalled code objects. So the directory is opened once,
component by component from the root, without following symlinks
(``openat`` with ``O_NOFOLLOW``), and every component is checked as it is
opened: from the user's cache root (``$XDG_CACHE_HOME``, or ``~/.cache``; for
a directory given by the caller, that directory) down to the cache itself,
each must be owned by this user and writable by no one else; above it, each
must be owned by root or this user and writable by no one else, unless it is
sticky (as ``/tmp`` is: others can add entries there, but not rename or
remove this user's). Every entry is then opened relative to that open
directory, again without following symlinks, and used only if it is a
regular file of this user that no one else can write: renaming or replacing
any component of the path afterwards cannot redirect the cache.

When a check fails, a warning names the directory and the reason and the
cache is off: verified modules are compiled from their verified source.
Platforms without ``openat`` (Windows) do not cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
import stat
import sys
import threading
import weakref
from pathlib import Path
from types import CodeType

from .. import _log

log = _log.Logger("plugyard.trust")

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_CHUNK = 1024 * 1024
#: Whether this platform can open files relative to a directory, without following links.
SUPPORTED = (
    hasattr(os, "getuid")
    and hasattr(os, "O_NOFOLLOW")
    and os.open in os.supports_dir_fd
    and os.mkdir in os.supports_dir_fd
)


class UnsafeCacheError(OSError):
    """A component of the cache path is not safe to trust; the message says which and why."""


def open_private_dir(path: Path, root: Path | None = None) -> int:
    """Open (creating what is missing, mode 0700) the directory ``path``, checking each component.

    Args:
        path: The directory.
        root: The user's cache root above it (``$XDG_CACHE_HOME``); by
            default the parent of ``path``. Symlinks up to the root are
            resolved (a ``~/.cache`` linked elsewhere is the user's choice);
            below it, none is followed.

    Returns:
        A file descriptor of the directory.

    Raises:
        UnsafeCacheError: a component is a symlink below the root, not a
            directory, owned by another user or writable by others.
        OSError: a component cannot be opened or created.
    """
    lexical = Path(os.path.abspath(path))
    top = Path(os.path.abspath(root)) if root is not None else lexical.parent
    if top != lexical and top not in lexical.parents:
        top = lexical.parent
    # Each resolved component is checked as it is opened without following
    # links, so a component swapped for a symlink meanwhile is refused too.
    resolved = Path(os.path.realpath(top)).parts
    parts = (*resolved, *lexical.parts[len(top.parts) :])
    strict_from = len(resolved) - 1
    uid = os.getuid()
    fd = os.open(parts[0], _DIR_FLAGS)
    try:
        _check(fd, parts[0], uid, strict=strict_from == 0)
        for index, name in enumerate(parts[1:], 1):
            where = str(Path(*parts[: index + 1]))
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                # Made meanwhile, by this process or another: it is checked below.
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=fd)
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise UnsafeCacheError(_why_not(fd, name, where, exc)) from None
            except OSError as exc:
                raise UnsafeCacheError(_why_not(fd, name, where, exc)) from None
            os.close(fd)
            fd = child
            _check(fd, where, uid, strict=index >= strict_from)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _why_not(dir_fd: int, name: str, where: str, exc: OSError) -> str:
    """Why ``name`` in the open directory could not be opened as a directory."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return f"{where} cannot be opened ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return f"{where} is a symbolic link, which is not followed"
    if not stat.S_ISDIR(st.st_mode):
        return f"{where} is not a directory"
    return f"{where} cannot be opened ({exc.strerror})"


def _check(fd: int, name: str, uid: int, *, strict: bool) -> None:
    """Check one opened component: ``strict`` ones must be this user's alone."""
    st = os.fstat(fd)
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheError(f"{name} is not a directory")
    if strict:
        if st.st_uid != uid:
            raise UnsafeCacheError(f"{name} is owned by another user (uid {st.st_uid})")
        if st.st_mode & _OTHERS_WRITE:
            raise UnsafeCacheError(f"{name} is writable by other users (mode {mode:o})")
        return
    if st.st_uid not in (uid, 0):
        raise UnsafeCacheError(
            f"{name} is owned by another user (uid {st.st_uid}), who could rename what "
            "lies below it"
        )
    if st.st_mode & _OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
        raise UnsafeCacheError(
            f"{name} is writable by other users and not sticky (mode {mode:o}): they "
            "could rename what lies below it"
        )


class CodeCache:
    """Compiled code by the verified hash of its source, in a directory only this user writes.

    An entry is the magic number, the source's SHA-256 and the marshalled
    code; it is used only when both match, and only when it is a regular
    file of this user that no one else can write (checked when it is opened).

    Args:
        directory: Where to cache, or ``None`` to compile every time.
        root: The user's cache root above ``directory`` (see :func:`open_private_dir`).
    """

    def __init__(self, directory: Path | None, root: Path | None = None) -> None:
        self.requested = directory
        self.root = root
        self._fd: int | None = None
        self._state = "closed" if directory is not None and SUPPORTED else "off"
        self._lock = threading.Lock()
        if directory is not None and not SUPPORTED:
            log.info("not caching verified code: this platform cannot open files safely (openat)")

    @property
    def directory(self) -> Path | None:
        """The cache directory, or ``None`` when caching is off (opened on first use)."""
        return self.requested if self._open() is not None else None

    def _open(self) -> int | None:
        if self._state == "open":
            return self._fd
        if self._state == "off":
            return None
        with self._lock:
            if self._state == "closed":
                assert self.requested is not None  # noqa: S101 - "closed" implies a directory
                try:
                    fd = open_private_dir(self.requested, self.root)
                except OSError as exc:
                    log.warning(
                        "not caching verified code in %s: %s; compiling from the verified "
                        "sources instead",
                        self.requested,
                        exc,
                    )
                    self._state = "off"
                    return None
                self._fd = fd
                weakref.finalize(self, os.close, fd)
                self._state = "open"
        return self._fd

    def _usable_dir(self) -> int | None:
        """The directory's descriptor, after checking it is still this user's alone."""
        fd = self._open()
        if fd is None:
            return None
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & _OTHERS_WRITE:
            log.warning(
                "not caching verified code in %s any more: it became writable by others",
                self.requested,
            )
            self._state = "off"
            return None
        return fd

    @staticmethod
    def key(path: str, digest: bytes) -> str:
        """The entry's file name: the path, the source hash, the magic number and -O level."""
        h = hashlib.sha256(importlib.util.MAGIC_NUMBER)
        h.update(b"%d\0%s\0" % (sys.flags.optimize, os.fsencode(path)))
        h.update(digest)
        return h.hexdigest() + ".bin"

    def load(self, path: str, digest: bytes) -> CodeType | None:
        """The cached code of the source at ``path`` whose SHA-256 is ``digest``, if any."""
        dir_fd = self._usable_dir()
        if dir_fd is None:
            return None
        name = self.key(path, digest)
        try:
            # os-level reads: a file object per module costs more than reading it.
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != os.getuid()
                or st.st_mode & _OTHERS_WRITE
            ):
                log.warning(
                    "ignoring cache entry %s in %s: not a regular file of this user that "
                    "no one else can write",
                    name,
                    self.requested,
                )
                return None
            chunks = []
            while chunk := os.read(fd, _CHUNK):
                chunks.append(chunk)
        except OSError:
            return None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        header = importlib.util.MAGIC_NUMBER + digest
        if not data.startswith(header):
            return None
        try:
            # Only this class writes the directory, and only this user can (see above).
            code = marshal.loads(memoryview(data)[len(header) :])  # noqa: S302
        except (ValueError, EOFError, TypeError):
            return None
        return code if isinstance(code, CodeType) else None

    def store(self, path: str, digest: bytes, code: CodeType) -> None:
        """Cache ``code``, compiled from the source at ``path`` whose SHA-256 is ``digest``."""
        dir_fd = self._usable_dir()
        if dir_fd is None:
            return
        name = self.key(path, digest)
        tmp = f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            fd = os.open(tmp, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                data = importlib.util.MAGIC_NUMBER + digest + marshal.dumps(code)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            log.debug("cannot cache compiled code of %s: %s", path, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
