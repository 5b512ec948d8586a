"""Importing verified distributions from the bytes that were verified.

The default import system runs ``__pycache__/<module>.<tag>.pyc`` whenever
its header matches the source's mtime and size, which anyone who can write
the directory can forge. :class:`VerifiedImporter` is a ``sys.meta_path``
finder for the modules of verified distributions: its loader reads each
source file once, checks its SHA-256 against the signed manifest, and
compiles those same bytes. It never reads ``__pycache__``; compiled code is
cached in a directory of its own (see :mod:`._codecache`), keyed by the
verified hash, the file's path, the interpreter's bytecode magic number and
the optimization level.

No other finder may serve a verified module, whatever happens to
``sys.meta_path`` after the importer was installed (see :mod:`._guard`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import CodeType, ModuleType

from . import _guard
from ._added import AddedDistribution, AddedModule
from ._codecache import CodeCache
from ._files import hash_file, record_hash
from ._keys import StrPath
from ._layout import layout_of, search_dirs, shadows
from ._manifest import digest_of
from ._problems import Problem, ProblemKind, SignatureError, VerificationResult
from ._resources import Signed, read_verified, refuse_unlisted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._traversable import VerifiedResources

_new = tuple.__new__
_TAG = sys.implementation.cache_tag


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return Path(base) if base else Path.home() / ".cache"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/plugyard/code``, or ``~/.cache/plugyard/code``."""
    return _cache_root() / "plugyard" / "code"


class _VerifiedLoader(importlib.abc.InspectLoader):
    """Loads one verified source module from the bytes it verified."""

    def __init__(self, module: AddedModule, importer: VerifiedImporter) -> None:
        self._module = module
        self._importer = importer

    @property
    def distribution(self) -> str:
        """The distribution the module belongs to."""
        return self._module.distribution

    def _verified_source(self) -> bytes:
        m = self._module
        return read_verified(m.path, m.raw_digest, m.distribution)

    def get_code(self, fullname: str) -> CodeType:
        """Verify the source and return its code, compiled or from the cache.

        Raises:
            SignatureError: the file changed since it was verified.
        """
        m = self._module
        digest = m.raw_digest
        data = read_verified(m.path, digest, m.distribution)
        cache = self._importer._cache
        code = cache.load(m.path, digest)
        if code is None:
            code = compile(data, m.path, "exec", dont_inherit=True)
            cache.store(m.path, digest, code)
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

    def get_data(self, path: str) -> bytes:
        """The verified content of a signed file of the distribution (``pkgutil.get_data``).

        Raises:
            SignatureError: it changed since verification, or is not signed.
            FileNotFoundError: it is neither signed nor there.
        """
        return self._importer.signed_data(self._module.distribution, os.fspath(path))

    def get_resource_reader(self, fullname: str) -> VerifiedResources | None:
        """Resources of a package: its signed files, read from verified bytes."""
        if not self._module.is_package:
            return None
        return self._importer.resources(self._module.distribution, (self._module.path,))

    def exec_module(self, module: ModuleType) -> None:
        """Run the verified code in the module's namespace."""
        exec(self.get_code(module.__name__), module.__dict__)  # noqa: S102 -- it is an importer


class _VerifiedExtensionLoader(importlib.machinery.ExtensionFileLoader):
    """The standard extension loader, for an extension the importer checked just before."""

    def __init__(self, module: AddedModule) -> None:
        super().__init__(module.name, module.path)
        self.distribution = module.distribution


class _NamespaceLoader(importlib.abc.InspectLoader):
    """A namespace package the importer made itself, so that nothing can shadow it."""

    def __init__(self, importer: VerifiedImporter, name: str, portions: Sequence[str]) -> None:
        self._importer = importer
        self._name = name
        self._portions = tuple(portions)

    def is_package(self, fullname: str) -> bool:
        """A namespace is a package."""
        return True

    def get_source(self, fullname: str) -> str:
        """A namespace package has no code."""
        return ""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """The default module object."""
        return

    def exec_module(self, module: ModuleType) -> None:
        """Nothing runs."""

    def get_resource_reader(self, fullname: str) -> VerifiedResources | None:
        """The signed files of the verified portions."""
        return self._importer.namespace_resources(self._name, self._portions)


class VerifiedImporter(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that imports verified distributions from verified bytes.

    Give it each distribution's :class:`VerificationResult` with
    :meth:`add`; from then on every module of that distribution is imported
    from the file the manifest lists (wherever ``sys.path`` points), its hash
    checked at import, its code compiled from those bytes or taken from the
    cache. Within a verified package, a submodule the manifest does not list
    cannot be imported: if such a file exists, importing it raises
    :class:`SignatureError`, otherwise :class:`ModuleNotFoundError`.

    Namespace packages the distribution installs into are made here too,
    with the verified portions first: a module or regular package of the
    same name anywhere on the path searched (which would hide the namespace)
    raises :class:`SignatureError` instead of being imported.

    No other finder serves a verified module, whatever happens to
    ``sys.meta_path``: the importer puts itself first again before any
    ``import`` statement of a verified name (an audit hook sees each one
    before the finders are asked), and it answers for verified names in the
    path entry finders of their directories, so that a finder put ahead of
    it that searches the path (the default ``PathFinder`` of a restored
    snapshot, most import hooks) still gets the verified module.

    Extension modules, and the shared libraries of ``*.libs`` directories
    they load, are hashed just before the standard extension loader loads
    the extension, which opens the file again: a file swapped in that
    instant is not caught.

    Package data read through ``importlib.resources`` (or
    ``pkgutil.get_data``) is served from verified bytes: the package's
    signed files only, each hash checked at each read. ``__cached__`` names
    the standard ``__pycache__`` location, as for any module with a file,
    but nothing there is read or written.

    The code cache is used only when every component of its path is this
    user's and writable by no one else (see :mod:`plugyard.trust`'s security
    page), and an entry only for the same path, source hash, magic number
    and optimization level. ``sys.dont_write_bytecode`` is not consulted (it
    is about ``__pycache__``); pass ``cache=False`` instead.

    Args:
        cache_dir: Where to cache compiled code; by default
            :func:`default_cache_dir`.
        cache: Set to ``False`` to compile on every import.
    """

    def __init__(self, cache_dir: StrPath | None = None, *, cache: bool = True) -> None:
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        root = None if cache_dir is not None else _cache_root()
        self._cache = CodeCache(directory if cache else None, root)
        self._lock = threading.Lock()
        # Replaced whole on every change, so find_spec reads them without a lock.
        self._modules: dict[str, AddedModule] = {}
        # Namespace package name -> (distribution, its portion's directory) pairs.
        self._namespaces: dict[str, tuple[tuple[str, str], ...]] = {}
        self._dists: dict[str, AddedDistribution] = {}
        self.active = False

    @property
    def cache_dir(self) -> Path | None:
        """The directory compiled code is cached in, or ``None`` when caching is off."""
        return self._cache.directory

    @property
    def distributions(self) -> frozenset[str]:
        """The names of the distributions added."""
        return frozenset(self._dists)

    def modules_of(self, distribution: str) -> tuple[str, ...]:
        """The dotted names of a distribution's modules, sorted."""
        return tuple(sorted(n for n, m in self._modules.items() if m.distribution == distribution))

    def version_of(self, distribution: str) -> str | None:
        """The verified version of an added distribution."""
        dist = self._dists.get(distribution)
        return dist.version if dist is not None else None

    def owner(self, name: str) -> str | None:
        """The distribution whose verified code module ``name`` is, if it was imported here."""
        module = self._modules.get(name)
        loaded = sys.modules.get(name)
        loader = getattr(getattr(loaded, "__spec__", None), "loader", None)
        if (
            module is not None
            and isinstance(loader, (_VerifiedLoader, _VerifiedExtensionLoader))
            and loader.distribution == module.distribution
        ):
            return module.distribution
        return None

    def claims(self, fullname: str) -> bool:
        """Whether ``fullname`` is for this importer alone to find (verified, or refused)."""
        if fullname in self._modules or fullname in self._namespaces:
            return True
        parent = self._modules.get(fullname.rpartition(".")[0])
        return parent is not None and parent.is_package

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
        # str(site.joinpath(*path.split("/"))), without a Path per file.
        base = str(site)
        prefix = "" if base == "." else base if base.endswith(os.sep) else base + os.sep

        dist = AddedDistribution(name, result.version, prefix, files)
        absolute = dist.absolute
        new = {
            modname: _new(
                AddedModule,
                (
                    modname,
                    name,
                    absolute(module.path),
                    files[module.path].digest,
                    module.is_package,
                    module.is_extension,
                ),
            )
            for modname, module in layout.modules.items()
        }
        portions = {ns: absolute(ns.replace(".", "/")) for ns in layout.namespaces}
        with self._lock:
            conflicts = self._conflicts(name, new, portions)
            if conflicts:
                raise SignatureError(name, conflicts)
            modules = {k: v for k, v in self._modules.items() if v.distribution != name}
            modules.update(new)
            namespaces = _without(self._namespaces, name)
            for ns, directory in portions.items():
                namespaces[ns] = (*namespaces.get(ns, ()), (name, directory))
            dists = {**self._dists, name: dist}
            self._modules, self._namespaces, self._dists = modules, namespaces, dists
        packages = (os.path.dirname(m.path) for m in new.values() if m.is_package)
        _guard.watch(self, [base, *portions.values(), *packages])
        return tuple(sorted({n.partition(".")[0] for n in new}))

    def _conflicts(
        self, name: str, new: Mapping[str, AddedModule], portions: Mapping[str, str]
    ) -> list[Problem]:
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
                getattr(spec, "loader", None), (_VerifiedLoader, _VerifiedExtensionLoader)
            ):
                conflicts.append(
                    Problem(
                        ProblemKind.IMPORTED_UNVERIFIED,
                        f"module {modname!r} was imported before verification; its code "
                        "ran unchecked. Add the distribution before anything imports it",
                        new[modname].path,
                    )
                )
        for ns, directory in sorted(portions.items()):
            loaded = sys.modules.get(ns)
            if loaded is not None and getattr(loaded, "__file__", None) is not None:
                conflicts.append(
                    Problem(
                        ProblemKind.SHADOWED,
                        f"{ns!r}, a namespace package this distribution installs into, was "
                        f"imported as a module from {loaded.__file__}, whose code ran",
                        directory,
                    )
                )
        return conflicts

    def remove(self, distribution: str) -> None:
        """Stop importing a distribution's modules here (those imported stay imported)."""
        with self._lock:
            self._modules = {
                k: v for k, v in self._modules.items() if v.distribution != distribution
            }
            self._namespaces = _without(self._namespaces, distribution)
            self._dists = {k: v for k, v in self._dists.items() if k != distribution}

    def install(self) -> None:
        """Put this importer first on ``sys.meta_path`` (again, if something went ahead of it)."""
        self.active = True
        _guard.activate(self)
        _guard.put_first(self)

    def uninstall(self) -> None:
        """Take this importer off ``sys.meta_path``; it no longer puts itself back."""
        self.active = False
        _guard.deactivate(self)
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
                inside a verified package, a namespace package the
                distribution installs into is shadowed, or an extension
                module or a library it loads changed.
            ModuleNotFoundError: a submodule of a verified package that the
                manifest does not list, and no file for it exists.
        """
        module = self._modules.get(fullname)
        if module is not None:
            return self._spec(module)
        portions = self._namespaces.get(fullname)
        if portions is not None:
            return self._namespace_spec(fullname, path, portions)
        parent_name, _, last = fullname.rpartition(".")
        parent = self._modules.get(parent_name)
        if parent is None or not parent.is_package:
            return None
        base = os.path.dirname(parent.path)
        for found in shadows(base, last):
            refuse_unlisted(found, parent.distribution, f"the module {fullname!r}")
        raise ModuleNotFoundError(
            f"No module named {fullname!r} (not in the signed manifest of {parent.distribution!r})",
            name=fullname,
        )

    def _spec(self, module: AddedModule) -> importlib.machinery.ModuleSpec:
        if module.is_extension:
            self._check_extension(module)
            loader: importlib.abc.Loader = _VerifiedExtensionLoader(module)
        else:
            loader = _VerifiedLoader(module, self)
        spec = importlib.machinery.ModuleSpec(
            module.name, loader, origin=module.path, is_package=module.is_package
        )
        spec.has_location = True
        if not module.is_extension and _TAG is not None and sys.pycache_prefix is None:
            # What importlib's cache_from_source says, in one f-string: import
            # machinery would work it out for __cached__ with a dozen calls.
            head, sep, tail = module.path.rpartition(os.sep)
            opt = f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""
            spec.cached = f"{head}{sep}__pycache__{sep}{tail[:-3]}.{_TAG}{opt}.pyc"
        if module.is_package:
            spec.submodule_search_locations = [os.path.dirname(module.path)]
        return spec

    def _namespace_spec(
        self, fullname: str, path: Sequence[str] | None, portions: tuple[tuple[str, str], ...]
    ) -> importlib.machinery.ModuleSpec:
        last = fullname.rpartition(".")[2]
        verified = [directory for _, directory in portions]
        searched = search_dirs([*(sys.path if path is None else path)])
        for directory in dict.fromkeys([*searched, *(os.path.dirname(d) for d in verified)]):
            for found in shadows(directory, last):
                owners = ", ".join(sorted({dist for dist, _ in portions}))
                raise SignatureError(
                    portions[0][0],
                    [
                        Problem(
                            ProblemKind.SHADOWED,
                            f"would be imported instead of the namespace package {fullname!r} "
                            f"that {owners} install(s) into; it is not imported",
                            found,
                        )
                    ],
                )
        others = [os.path.join(d, last) for d in searched]
        locations = [*verified, *(d for d in others if d not in verified and os.path.isdir(d))]
        spec = importlib.machinery.ModuleSpec(
            fullname, _NamespaceLoader(self, fullname, verified), is_package=True
        )
        spec.submodule_search_locations = locations
        return spec

    def _check_extension(self, module: AddedModule) -> None:
        """Hash the extension and every shared library its distribution vendors, now."""
        dist = self._dists.get(module.distribution)
        checks = [(module.path, module.raw_digest)]
        for directory in dist.libraries if dist is not None else ():
            assert dist is not None  # noqa: S101 - the loop is empty otherwise
            listed = {p: d for p, d in dist.files.items() if os.path.dirname(p) == directory}
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                names = []
            for entry in names:
                if os.path.join(directory, entry) not in listed:
                    refuse_unlisted(
                        os.path.join(directory, entry), module.distribution, "a shared library"
                    )
            checks.extend(sorted(listed.items()))
        for file, expected in checks:
            try:
                found, _ = hash_file(file)
            except OSError as exc:
                raise SignatureError(
                    module.distribution,
                    [Problem(ProblemKind.MISSING_FILE, f"cannot be read: {exc}", file)],
                ) from None
            if digest_of(found) != expected:
                raise SignatureError(
                    module.distribution,
                    [
                        Problem(
                            ProblemKind.HASH_MISMATCH,
                            "changed since it was verified; the extension module "
                            f"{module.name!r} is not loaded",
                            file,
                            expected=record_hash(expected),
                            actual=found,
                        )
                    ],
                )

    def signed_data(self, distribution: str, path: str) -> bytes:
        """The verified content of one signed file of ``distribution``, by absolute path.

        Raises:
            SignatureError: it changed since verification, or it is not signed.
            FileNotFoundError: it is neither signed nor there.
        """
        dist = self._dists.get(distribution)
        digest = dist.files.get(os.path.abspath(path)) if dist is not None else None
        if digest is None:
            refuse_unlisted(path, distribution, "data of the package")
        assert digest is not None  # noqa: S101 - refuse_unlisted always raises
        return read_verified(os.path.abspath(path), digest, distribution)

    def resources(self, distribution: str, inits: Sequence[str]) -> VerifiedResources | None:
        """The reader of the signed files beside a package's ``__init__``."""
        from ._traversable import VerifiedResources, VerifiedTraversable

        dist = self._dists.get(distribution)
        if dist is None:
            return None
        directory = os.path.dirname(inits[0])
        root = VerifiedTraversable(dist.package_files(directory), directory, distribution)
        return VerifiedResources(root)

    def namespace_resources(self, name: str, portions: Sequence[str]) -> VerifiedResources | None:
        """The reader of the signed files of a namespace package's verified portions."""
        from ._traversable import VerifiedResources, VerifiedTraversable

        files: dict[str, Signed] = {}
        owner = ""
        for distribution, directory in self._namespaces.get(name, ()):
            dist = self._dists.get(distribution)
            if dist is not None and directory in portions:
                owner = owner or distribution
                for rel, signed in dist.package_files(directory).items():
                    files.setdefault(rel, signed)
        if not owner:
            return None
        return VerifiedResources(VerifiedTraversable(files, portions[0], owner))


def _without(
    namespaces: dict[str, tuple[tuple[str, str], ...]], distribution: str
) -> dict[str, tuple[tuple[str, str], ...]]:
    kept = {k: tuple(p for p in v if p[0] != distribution) for k, v in namespaces.items()}
    return {k: v for k, v in kept.items() if v}
