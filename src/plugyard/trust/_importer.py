"""Importing verified distributions from the bytes that were verified.

The default import system runs ``__pycache__/<module>.<tag>.pyc`` whenever
its header matches the source's mtime and size, which anyone who can write
the directory can forge. :class:`VerifiedImporter` is a ``sys.meta_path``
finder for the modules of verified distributions: its loader reads each
source file once, checks its SHA-256 against the signed manifest, and
compiles those same bytes. It never reads ``__pycache__``; compiled code is
cached in a directory of its own, keyed by the verified hash, the file's
path, the interpreter's bytecode magic number and the optimization level.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import marshal
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import CodeType, ModuleType

import attrs

if sys.version_info >= (3, 11):
    from importlib.resources.abc import TraversableResources
else:
    from importlib.abc import TraversableResources

from ._files import hash_file, read_all
from ._keys import StrPath
from ._layout import IMPORTABLE_SUFFIXES, layout_of
from ._manifest import digest_of
from ._problems import Problem, ProblemKind, SignatureError, VerificationResult

log = logging.getLogger("plugyard.trust")
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_CACHE_CHUNK = 1024 * 1024


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/plugyard/code``, or ``~/.cache/plugyard/code``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "plugyard" / "code"


@attrs.frozen
class _Module:
    name: str
    distribution: str
    path: str
    digest: bytes
    is_package: bool
    is_extension: bool


class _CodeCache:
    """Compiled code on disk, written and read by plugyard only.

    An entry is the magic number, the source's SHA-256 and the marshalled
    code; it is used only when both match. The directory must belong to the
    current user and be writable by no one else, otherwise caching is off:
    whoever can write it could make plugyard run any code.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory if directory is not None and self._usable(directory) else None
        self._prefix = f"{self.directory}{os.sep}" if self.directory is not None else ""

    @staticmethod
    def _usable(directory: Path) -> bool:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = directory.stat()
        except OSError as exc:
            log.warning("not caching verified code: cannot create %s: %s", directory, exc)
            return False
        if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & (
            stat.S_IWGRP | stat.S_IWOTH
        ):
            log.warning(
                "not caching verified code: %s is writable by other users or not owned by "
                "this user",
                directory,
            )
            return False
        return True

    @staticmethod
    def key(path: str, digest: bytes) -> str:
        h = hashlib.sha256(importlib.util.MAGIC_NUMBER)
        h.update(b"%d\0%s\0" % (sys.flags.optimize, os.fsencode(path)))
        h.update(digest)
        return h.hexdigest()

    def load(self, path: str, digest: bytes) -> CodeType | None:
        if self.directory is None:
            return None
        try:
            # os-level reads: a file object per module costs more than reading it.
            fd = os.open(f"{self._prefix}{self.key(path, digest)}.bin", _READ_FLAGS)
            try:
                chunks = []
                while chunk := os.read(fd, _CACHE_CHUNK):
                    chunks.append(chunk)
            finally:
                os.close(fd)
        except OSError:
            return None
        data = b"".join(chunks)
        header = importlib.util.MAGIC_NUMBER + digest
        if not data.startswith(header):
            return None
        try:
            # Only this class writes the directory, and only the owner can (see above).
            code = marshal.loads(data[len(header) :])  # noqa: S302
        except (ValueError, EOFError, TypeError):
            return None
        return code if isinstance(code, CodeType) else None

    def store(self, path: str, digest: bytes, code: CodeType) -> None:
        if self.directory is None:
            return
        file = self.directory / f"{self.key(path, digest)}.bin"
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(importlib.util.MAGIC_NUMBER + digest + marshal.dumps(code))
            Path(tmp).replace(file)
        except OSError as exc:
            log.debug("cannot cache compiled code of %s: %s", path, exc)


class _DirectoryResources(TraversableResources):
    """``importlib.resources`` support: a package's resources are files beside it."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def files(self) -> Path:
        """The package's directory."""
        return self._directory


class _VerifiedLoader(importlib.abc.InspectLoader):
    """Loads one verified source module from the bytes it verified."""

    def __init__(self, module: _Module, cache: _CodeCache) -> None:
        self._module = module
        self._cache = cache

    def _verified_source(self) -> bytes:
        m = self._module
        try:
            data = read_all(m.path)
        except OSError as exc:
            raise SignatureError(
                m.distribution,
                [Problem(ProblemKind.MISSING_FILE, f"cannot be read at import: {exc}", m.path)],
            ) from None
        if hashlib.sha256(data).digest() != m.digest:
            from ._manifest import hash_bytes, record_hash

            raise SignatureError(
                m.distribution,
                [
                    Problem(
                        ProblemKind.HASH_MISMATCH,
                        "changed since it was verified",
                        m.path,
                        expected=record_hash(m.digest),
                        actual=hash_bytes(data),
                    )
                ],
            )
        return data

    def get_code(self, fullname: str) -> CodeType:
        """Verify the source and return its code, compiled or from the cache.

        Raises:
            SignatureError: the file changed since it was verified.
        """
        data = self._verified_source()
        m = self._module
        code = self._cache.load(m.path, m.digest)
        if code is None:
            code = compile(data, m.path, "exec", dont_inherit=True)
            self._cache.store(m.path, m.digest, code)
        return code

    def get_source(self, fullname: str) -> str:
        """The verified source text, for tracebacks and ``inspect``."""
        return importlib.util.decode_source(self._verified_source())

    def is_package(self, fullname: str) -> bool:
        """Whether the module is a package."""
        return self._module.is_package

    def get_filename(self, fullname: str) -> str:
        """The source file's path."""
        return self._module.path

    def get_resource_reader(self, fullname: str) -> _DirectoryResources | None:
        """Resources of a package are the files in its directory (checked before import)."""
        if not self._module.is_package:
            return None
        return _DirectoryResources(Path(self._module.path).parent)

    def exec_module(self, module: ModuleType) -> None:
        """Run the verified code in the module's namespace."""
        exec(self.get_code(module.__name__), module.__dict__)  # noqa: S102 -- it is an importer


class VerifiedImporter(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that imports verified distributions from verified bytes.

    Give it each distribution's :class:`VerificationResult` with
    :meth:`add`; from then on every module of that distribution is imported
    from the file the manifest lists (wherever ``sys.path`` points), its hash
    checked at import, its code compiled from those bytes or taken from the
    cache. Within a verified package, a submodule the manifest does not list
    cannot be imported: if such a file exists, importing it raises
    :class:`SignatureError`, otherwise :class:`ModuleNotFoundError`.

    Extension modules are hashed when found and then loaded by the standard
    extension loader, which opens the file again: a file swapped in that
    instant is not caught.

    Implicit namespace packages are left to the default import system; only
    the modules in them are imported here. Resource files (read through
    ``importlib.resources``) are checked by :func:`verify_distribution`
    before import, not again at each read. ``__cached__`` names the standard
    ``__pycache__`` location, as for any module with a file, but nothing
    there is read or written.

    The code cache is trusted as much as the user's home directory: it must
    be owned by the current user and writable by no one else (otherwise it is
    not used), and an entry is used only for the same path, source hash,
    magic number and optimization level. ``sys.dont_write_bytecode`` is not
    consulted (it is about ``__pycache__``); pass ``cache=False`` instead.

    Args:
        cache_dir: Where to cache compiled code; by default
            :func:`default_cache_dir`.
        cache: Set to ``False`` to compile on every import.
    """

    def __init__(self, cache_dir: StrPath | None = None, *, cache: bool = True) -> None:
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._cache = _CodeCache(directory if cache else None)
        self._lock = threading.Lock()
        # Replaced whole on every change, so find_spec reads them without a lock.
        self._modules: dict[str, _Module] = {}
        # Namespace package name -> (distribution, its portion's directory) pairs.
        self._namespaces: dict[str, tuple[tuple[str, Path], ...]] = {}

    @property
    def cache_dir(self) -> Path | None:
        """The directory compiled code is cached in, or ``None`` when caching is off."""
        return self._cache.directory

    @property
    def distributions(self) -> frozenset[str]:
        """The names of the distributions added."""
        return frozenset(m.distribution for m in self._modules.values())

    def modules_of(self, distribution: str) -> tuple[str, ...]:
        """The dotted names of a distribution's modules, sorted."""
        return tuple(sorted(n for n, m in self._modules.items() if m.distribution == distribution))

    def add(self, result: VerificationResult) -> tuple[str, ...]:
        """Import a verified installed distribution's modules through this importer.

        Adding a distribution again (after a reinstall and a new
        verification) replaces its modules; modules already imported stay in
        ``sys.modules`` until the caller removes them.

        Returns:
            The top-level names of its modules, e.g. ``("mypkg",)``.

        Raises:
            SignatureError: the result is not ``ok`` or not of an installed
                distribution; one of its modules is provided by another
                added distribution; or one was already imported by the
                default import system (its code ran unverified: restart, and
                add the distribution before importing it).
        """
        name = result.distribution
        if not result.ok or not result.installed or result.location is None:
            problems = result.problems or (
                Problem(
                    ProblemKind.NOT_FOUND,
                    "only installed distributions that verified can be imported "
                    "(verify_distribution)",
                ),
            )
            raise SignatureError(name, problems)
        manifest = result.manifest
        assert manifest is not None  # noqa: S101 -- ok implies a manifest
        site = result.location
        files = manifest.installed_files()
        layout = layout_of(files)
        new: dict[str, _Module] = {}
        # str(site.joinpath(*path.split("/"))), without a Path per module.
        base = str(site)
        prefix = "" if base == "." else base if base.endswith(os.sep) else base + os.sep
        for modname, module in layout.modules.items():
            new[modname] = _Module(
                modname,
                name,
                prefix + module.path.replace("/", os.sep),
                digest_of(files[module.path].digest),
                module.is_package,
                module.is_extension,
            )
        with self._lock:
            conflicts: list[Problem] = []
            for modname in sorted(new):
                other = self._modules.get(modname)
                if other is not None and other.distribution != name:
                    conflicts.append(
                        Problem(
                            ProblemKind.MODULE_CONFLICT,
                            f"module {modname!r} is provided by {other.distribution!r} too",
                            new[modname].path,
                        )
                    )
                loaded = sys.modules.get(modname)
                spec = getattr(loaded, "__spec__", None)
                if loaded is not None and not isinstance(
                    getattr(spec, "loader", None), _VerifiedLoader
                ):
                    conflicts.append(
                        Problem(
                            ProblemKind.IMPORTED_UNVERIFIED,
                            f"module {modname!r} was imported before verification; its code "
                            "ran unchecked. Add the distribution before anything imports it",
                            new[modname].path,
                        )
                    )
            if conflicts:
                raise SignatureError(name, conflicts)
            modules = {k: v for k, v in self._modules.items() if v.distribution != name}
            modules.update(new)
            namespaces = _without(self._namespaces, name)
            for ns in layout.namespaces:
                portion = (name, site.joinpath(*ns.split(".")))
                namespaces[ns] = (*namespaces.get(ns, ()), portion)
            self._modules, self._namespaces = modules, namespaces
        return tuple(sorted({n.partition(".")[0] for n in new}))

    def remove(self, distribution: str) -> None:
        """Stop importing a distribution's modules here (those imported stay imported)."""
        with self._lock:
            self._modules = {
                k: v for k, v in self._modules.items() if v.distribution != distribution
            }
            self._namespaces = _without(self._namespaces, distribution)

    def install(self) -> None:
        """Put this importer first on ``sys.meta_path`` (once)."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        """Take this importer off ``sys.meta_path``."""
        while self in sys.meta_path:
            sys.meta_path.remove(self)

    def __enter__(self) -> VerifiedImporter:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec of a verified module; ``None`` for modules of other distributions.

        Raises:
            SignatureError: an unlisted importable file would be imported
                inside a verified package, or an extension module changed.
            ModuleNotFoundError: a submodule of a verified package that the
                manifest does not list, and no file for it exists.
        """
        module = self._modules.get(fullname)
        if module is not None:
            return self._spec(module)
        portions = self._namespaces.get(fullname)
        if portions is not None:
            # The default import system makes the namespace package, unless an
            # __init__ planted in a verified portion makes it a regular one.
            for distribution, directory in portions:
                for suffix in IMPORTABLE_SUFFIXES:
                    _refuse_unlisted(distribution, fullname, directory / f"__init__{suffix}")
            return None
        parent_name, _, last = fullname.rpartition(".")
        parent = self._modules.get(parent_name)
        if parent is None or not parent.is_package:
            return None
        base = Path(parent.path).parent
        for suffix in IMPORTABLE_SUFFIXES:
            _refuse_unlisted(parent.distribution, fullname, base / f"{last}{suffix}")
            _refuse_unlisted(parent.distribution, fullname, base / last / f"__init__{suffix}")
        raise ModuleNotFoundError(
            f"No module named {fullname!r} (not in the signed manifest of {parent.distribution!r})",
            name=fullname,
        )

    def _spec(self, module: _Module) -> importlib.machinery.ModuleSpec:
        if module.is_extension:
            self._check_extension(module)
            loader: importlib.abc.Loader = importlib.machinery.ExtensionFileLoader(
                module.name, module.path
            )
        else:
            loader = _VerifiedLoader(module, self._cache)
        spec = importlib.machinery.ModuleSpec(
            module.name, loader, origin=module.path, is_package=module.is_package
        )
        spec.has_location = True
        if module.is_package:
            spec.submodule_search_locations = [str(Path(module.path).parent)]
        return spec

    @staticmethod
    def _check_extension(module: _Module) -> None:
        try:
            digest, _ = hash_file(Path(module.path))
        except OSError as exc:
            raise SignatureError(
                module.distribution,
                [Problem(ProblemKind.MISSING_FILE, f"cannot be read: {exc}", module.path)],
            ) from None
        if digest_of(digest) != module.digest:
            raise SignatureError(
                module.distribution,
                [Problem(ProblemKind.HASH_MISMATCH, "changed since it was verified", module.path)],
            )


def _refuse_unlisted(distribution: str, fullname: str, candidate: Path) -> None:
    if candidate.is_file():
        raise SignatureError(
            distribution,
            [
                Problem(
                    ProblemKind.UNLISTED_FILE,
                    f"would be imported as {fullname!r} but is not in the signed manifest",
                    str(candidate),
                )
            ],
        )


def _without(
    namespaces: dict[str, tuple[tuple[str, Path], ...]], distribution: str
) -> dict[str, tuple[tuple[str, Path], ...]]:
    kept = {k: tuple(p for p in v if p[0] != distribution) for k, v in namespaces.items()}
    return {k: v for k, v in kept.items() if v}
