"""Installing a plugin directory's plugin into plugyard's data directory, and importing it.

Before a directory plugin is imported, :class:`Installer` checks that its
``Requires-Dist`` is installed, copies the file to a private place, verifies
the copy as a wheel (or against its detached signature) when the trust
policy asks for it, and installs the same bytes with ``installer`` into a
directory of its own, addressed by the distribution, the version and the
SHA-256 of the file::

    $XDG_DATA_HOME/plugyard/plugins/<distribution>/<version>-<sha256[:16]>/site/

The directory is written beside its final name and renamed into place, its
files are made read-only, and an existing one is used as it is: files a
process may have imported are never overwritten, so several versions sit
side by side and a reload imports the new one from its own directory.

Nothing puts these directories on ``sys.path``. Under a verifying policy the
trust gate hands the installed distribution to the
:class:`~plugyard.trust.VerifiedImporter`, which imports it from the bytes it
verifies; otherwise the :class:`DirectoryFinder` here imports the top-level
modules of the version in use from its directory, and never writes
``__pycache__`` there.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import os
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import attrs

from . import _log, _singlefile
from ._candidate import Candidate
from ._model import canonical
from ._plugindirs import BadFile, Directories, DirectoryItem, Stamp, top_level
from ._policy import TrustPolicy
from ._sources import load_error
from ._value import evolve
from .exceptions import PluginLoadError, SignatureError, UnmetRequirementError

if TYPE_CHECKING:
    from typing_extensions import Buffer

log = _log.Logger("plugyard")
_CHUNK = 1024 * 1024


def data_dir() -> Path:
    """Where directory plugins are installed: ``$XDG_DATA_HOME/plugyard/plugins``.

    ``~/.local/share/plugyard/plugins`` when ``XDG_DATA_HOME`` is not set.
    """
    base = os.environ.get("XDG_DATA_HOME")
    root = Path(base).absolute() if base else Path.home() / ".local" / "share"
    return root / "plugyard" / "plugins"


def _sha256(path: Path, extra: Path | None = None) -> str:
    digest = hashlib.sha256()
    for part in (path, extra):
        if part is None or not part.exists():
            continue
        with part.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def unmet_requirements(requires: Sequence[str]) -> list[str]:
    """The requirements of ``requires`` the environment does not satisfy, with what it has."""
    if not requires:
        return []
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    unmet = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            unmet.append(f"{line} (not a valid requirement)")
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            found = version(req.name)
        except PackageNotFoundError:
            unmet.append(f"{req} (not installed)")
            continue
        if not req.specifier.contains(found, prereleases=True):
            unmet.append(f"{req} ({found} installed)")
    return unmet


_records: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def record_modules(dist_info: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The top-level modules and the extension module files of an installed distribution.

    Read from its ``RECORD``; both are empty when there is none. The answer
    for an installation of plugyard's, which never changes, is kept.
    """
    found = _records.get(dist_info)
    if found is None:
        found = _read_record(dist_info)
        if dist_info.startswith(str(data_dir())):
            _records[dist_info] = found
    return found


def _read_record(dist_info: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        text = Path(dist_info, "RECORD").read_text(encoding="utf-8")
    except OSError:
        return (), ()
    paths = [line.rsplit(",", 2)[0] for line in text.splitlines() if line]
    suffixes = (*importlib.machinery.EXTENSION_SUFFIXES, ".so", ".pyd")
    return top_level(paths), tuple(sorted(p for p in paths if p.endswith(suffixes)))


@attrs.frozen
class Installation:
    """Where a directory plugin's version is installed.

    Attributes:
        site: The directory its modules are imported from.
        dist_info: Its dist-info directory.
    """

    site: Path
    dist_info: Path


class Installer:
    """Verifies and installs the directory plugins of one manager, on first use of each.

    Args:
        directories: The manager's plugin directories.
        policy: The manager's trust policy.
        group: The manager's group.
    """

    def __init__(self, directories: Directories, policy: TrustPolicy, group: str) -> None:
        self.directories = directories
        self.policy = policy
        self.group = group
        # By (file, stamp): its SHA-256, and whether it verified (a reload goes
        # back and forth between versions: each file is hashed and verified once).
        self._digests: dict[tuple[str, Stamp], str] = {}
        self._verified: set[tuple[str, Stamp, str]] = set()

    def item(self, candidate: Candidate) -> DirectoryItem:
        """The directory item of a candidate, as the file is now.

        Raises:
            PluginLoadError: the file changed and no longer provides this
                version of the plugin, or cannot be read.
        """
        ep = candidate.entry_point
        assert ep is not None  # noqa: S101 - a directory plugin
        assert candidate.location is not None  # noqa: S101
        item = self.directories.get(candidate.location)
        if isinstance(item, BadFile):
            raise load_error(ep, f"{candidate.location}: {item.reason}")
        if item.version != candidate.version or item.entry_point(self.group, ep.name) is None:
            raise load_error(
                ep, f"{candidate.location} changed since it was listed; call rescan() to see it"
            )
        return item

    def __call__(self, candidate: Candidate) -> Candidate:
        """Install a directory plugin and import its modules from there from now on.

        Raises:
            As :meth:`installed`.
        """
        installed = self.installed(candidate)
        ep = installed.entry_point
        assert ep is not None  # noqa: S101 - installed() returns an entry point
        # Another version of the distribution imported here (by another
        # manager, or the application) keeps its module objects, not their
        # names; so does this one, imported unverified, when it must verify.
        verifying = self.policy.mode_for(self.group, candidate.name) != "off"
        evict(record_modules(ep.path)[0], keep=str(Path(ep.path).parent), verified=verifying)
        route(installed)
        return installed

    def installed(self, candidate: Candidate) -> Candidate:
        """Install a directory plugin's file; its candidate with the installed entry point.

        Raises:
            UnmetRequirementError: its ``Requires-Dist`` is not installed.
            SignatureError: the policy requires a signature and the file fails verification.
            PluginLoadError: it cannot be installed.
        """
        item = self.item(candidate)
        ep = candidate.entry_point
        assert ep is not None  # noqa: S101 - checked by item()
        unmet = unmet_requirements(item.requires)
        if unmet:
            raise UnmetRequirementError(
                ep.name, f"{ep.name} = {ep.value}", f"{ep.distribution} {ep.version}", unmet
            )
        try:
            installed = self.install(item, candidate.name)
        except (OSError, ValueError, KeyError) as exc:
            raise load_error(ep, f"cannot install {item.location}: {exc}") from exc
        except PluginLoadError:
            raise
        except SignatureError as exc:
            exc.plugin = candidate.name
            raise
        except Exception as exc:  # a broken zip: zipfile.BadZipFile, zlib.error
            raise load_error(
                ep, f"cannot install {item.location}: {type(exc).__name__}: {exc}"
            ) from exc
        return evolve(candidate, entry_point=evolve(ep, path=str(installed.dist_info)))

    def install(self, item: DirectoryItem, plugin: str) -> Installation:
        """Install ``item`` (verified first, when the policy asks) unless it already is.

        Raises:
            SignatureError: the policy requires a signature and verification failed.
            OSError: it cannot be written.
        """
        location = Path(item.location)
        digest = self._digest(item)
        home = data_dir() / canonical(item.distribution)
        target = home / f"{item.version}-{digest[:16]}"
        if target.is_dir():
            # Installed before, maybe under another policy: this one's verdict counts.
            self._verify(item, plugin, location)
        else:
            home.mkdir(parents=True, exist_ok=True)
            self._install_new(item, plugin, digest, home, target)
        return Installation(target / "site", target / "site" / self._dist_info(target / "site"))

    def _digest(self, item: DirectoryItem) -> str:
        key = (item.location, item.stamp)
        digest = self._digests.get(key)
        if digest is None:
            signature = Path(f"{item.location}.sig") if item.kind == "file" else None
            digest = self._digests[key] = _sha256(Path(item.location), signature)
        return digest

    def address(self, item: DirectoryItem) -> str:
        """The name of the directory ``item``'s content is (or would be) installed in."""
        return f"{item.version}-{self._digest(item)[:16]}"

    @staticmethod
    def _dist_info(site: Path) -> str:
        infos = [p.name for p in site.iterdir() if p.name.endswith(".dist-info")]
        if len(infos) != 1:
            raise OSError(f"{site} holds {len(infos)} dist-info directories, not one")
        return infos[0]

    def _install_new(
        self, item: DirectoryItem, plugin: str, digest: str, home: Path, target: Path
    ) -> None:
        import tempfile

        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=home))
        try:
            staged = work / "source"
            staged.mkdir()
            copy = staged / Path(item.location).name
            shutil.copyfile(item.location, copy)
            sig = Path(f"{item.location}.sig")
            if item.kind == "file" and sig.exists():
                shutil.copyfile(sig, Path(f"{copy}.sig"))
            if _sha256(copy, Path(f"{copy}.sig") if item.kind == "file" else None) != digest:
                raise OSError(f"{item.location} changed while it was being installed; try again")
            self._verify(item, plugin, copy)
            site = work / "out" / "site"
            if item.kind == "wheel":
                _install_wheel(copy, site)
            else:
                _install_file(copy, site)
            shutil.rmtree(staged)
            _set_modes(work / "out", 0o444, 0o555)
            try:
                (work / "out").rename(target)
            except OSError:
                if not target.is_dir():  # another process installed it first: use theirs
                    raise
            else:
                # Read-only only now: moving a directory to another parent needs it writable.
                target.chmod(0o555)
        finally:
            _remove(work)

    def _verify(self, item: DirectoryItem, plugin: str, copy: Path) -> None:
        mode = self.policy.mode_for(self.group, plugin)
        if mode == "off" or (item.location, item.stamp, mode) in self._verified:
            return
        from .trust import verify_file, verify_wheel

        keyring = self.policy.keyring
        assert keyring is not None  # noqa: S101 - TrustPolicy requires one unless off
        result = verify_wheel(copy, keyring) if item.kind == "wheel" else verify_file(copy, keyring)
        if result.ok:
            self._verified.add((item.location, item.stamp, mode))
            return
        error = SignatureError(result.distribution, result.problems, plugin=plugin)
        if mode == "require":
            raise error
        log.warning(
            "plugin %r installed unverified from %s (trust mode 'warn'): %s",
            plugin,
            item.location,
            "; ".join(f"{p.kind}: {p}" for p in result.problems),
        )


def _install_wheel(wheel: Path, site: Path) -> None:
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    root = site.parent
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
        install(source, destination, {"INSTALLER": b"plugyard\n"})


def _install_file(path: Path, site: Path) -> None:
    """Lay a single-file plugin out as the distribution its signature describes."""
    source = path.read_bytes()
    identity = _singlefile.identify(path, source)
    info = site / identity.dist_info
    info.mkdir(parents=True)
    files = {identity.filename: source, f"{identity.dist_info}/METADATA": identity.metadata}
    files[f"{identity.dist_info}/INSTALLER"] = b"plugyard\n"
    signature = Path(f"{path}.sig")
    if signature.exists():
        files[f"{identity.dist_info}/plugyard-signature.json"] = signature.read_bytes()
    import base64

    rows = []
    for rel, data in files.items():
        (site / rel).write_bytes(data)
        digest = hashlib.sha256(data).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        rows.append(f"{rel},sha256={encoded},{len(data)}")
    rows.append(f"{identity.dist_info}/RECORD,,")
    (info / "RECORD").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _set_modes(root: Path, file_mode: int, dir_mode: int) -> None:
    """Set the mode of every file and directory below ``root`` (read-only: none is rewritten)."""
    for directory, dirs, files in os.walk(root, topdown=False):
        for name in files:
            os.chmod(os.path.join(directory, name), file_mode)  # noqa: PTH101, PTH118
        for name in dirs:
            os.chmod(os.path.join(directory, name), dir_mode)  # noqa: PTH101, PTH118


def _remove(path: Path) -> None:
    """Remove a work directory, read-only parts included."""
    if path.exists():
        _set_modes(path, 0o600, 0o700)
        shutil.rmtree(path)


def evict(
    modules: Sequence[str], keep: str | None = None, *, verified: bool = False
) -> dict[str, ModuleType]:
    """Take the top-level ``modules`` and their submodules out of ``sys.modules``.

    Args:
        modules: Top-level module names.
        keep: Leave modules whose file is in this site directory.
        verified: Leave them only if the verified importer imported them.

    Returns:
        What was taken out, by name, to put back with :func:`restore`.
    """
    tops = set(modules)
    prefix = None if keep is None else os.path.join(keep, "")  # noqa: PTH118
    plain = (importlib.machinery.SourceFileLoader, importlib.machinery.SourcelessFileLoader)
    taken = {}
    for name in list(sys.modules):
        if name.partition(".")[0] not in tops:
            continue
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None) or ""
        loader = getattr(getattr(module, "__spec__", None), "loader", None)
        ours = prefix is not None and where.startswith(prefix)
        if ours and not (verified and isinstance(loader, plain)):
            continue
        taken[name] = sys.modules.pop(name)
    return taken


def restore(modules: Sequence[str], taken: dict[str, ModuleType]) -> None:
    """Undo :func:`evict`: drop what was imported of ``modules`` since, put ``taken`` back."""
    evict(modules)
    sys.modules.update(taken)


def route(candidate: Candidate) -> None:
    """Import the modules of an installed directory plugin from its installation from now on.

    Raises:
        PluginLoadError: another directory plugin's distribution provides one of its modules.
    """
    ep = candidate.entry_point
    assert ep is not None  # noqa: S101 - an installed directory plugin
    modules, _ = record_modules(ep.path)
    unverify(ep.distribution)
    finder().route(ep.distribution, modules, Path(ep.path).parent)


def unverify(distribution: str) -> None:
    """Stop the verified importer serving ``distribution``: another version of it is in use.

    The trust gate adds the version back when it verifies it, before import.
    """
    trust = sys.modules.get("plugyard.trust")
    if trust is None:  # nothing was ever verified in this process
        return
    name = canonical(distribution)
    for other in sys.meta_path:
        if isinstance(other, trust.VerifiedImporter) and name in other.distributions:
            other.remove(name)


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Loads a module of a plugin directory's installation without writing bytecode there."""

    def set_data(self, path: str, data: Buffer, *, _mode: int = 0o666) -> None:
        """Write nothing: the installation's files are never changed."""


class DirectoryFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder for the modules of directory plugins, from their installation.

    Each distribution's top-level modules are routed to the site directory
    of the version in use; :meth:`route` switches a distribution to another
    version (a reload) and :meth:`unroute` hands it back to ``sys.path``.
    The :class:`~plugyard.trust.VerifiedImporter`, when in use, stands
    before this finder and imports the distributions it verified.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Replaced whole on every change: find_spec reads them without a lock.
        self._sites: dict[str, str] = {}
        self._owners: dict[str, tuple[str, tuple[str, ...]]] = {}

    def route(self, distribution: str, modules: Sequence[str], site: Path | str) -> None:
        """Import ``distribution``'s top-level ``modules`` from ``site`` from now on.

        Raises:
            PluginLoadError: another routed distribution provides one of the modules.
        """
        key = canonical(distribution)
        with self._lock:
            owners = dict(self._owners)
            old = owners.pop(key, None)
            sites = {m: s for m, s in self._sites.items() if old is None or m not in old[1]}
            for module in modules:
                other = next((d for d, (_, ms) in owners.items() if module in ms), None)
                if other is not None:
                    raise PluginLoadError(
                        module,
                        module,
                        distribution,
                        f"module {module!r} is provided by {other!r} too; rename one of them",
                    )
                sites[module] = str(site)
            owners[key] = (str(site), tuple(modules))
            self._owners, self._sites = owners, sites

    def unroute(self, distribution: str) -> None:
        """Leave ``distribution``'s modules to the rest of the import system."""
        key = canonical(distribution)
        with self._lock:
            owners = dict(self._owners)
            old = owners.pop(key, None)
            if old is not None:
                self._sites = {m: s for m, s in self._sites.items() if m not in old[1]}
            self._owners = owners

    def site_of(self, distribution: str) -> str | None:
        """The site directory ``distribution`` is routed to, if it is."""
        owner = self._owners.get(canonical(distribution))
        return owner[0] if owner is not None else None

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec of a routed module or of a submodule of one; ``None`` for any other."""
        top, dot, _ = fullname.partition(".")
        site = self._sites.get(top)
        if site is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, [site] if not dot else path)
        if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            assert spec.origin is not None  # noqa: S101 - a source file has one
            spec.loader = _SourceLoader(fullname, spec.origin)
        return spec


_finder: DirectoryFinder | None = None
_finder_lock = threading.Lock()


def finder() -> DirectoryFinder:
    """The process-wide :class:`DirectoryFinder`, put on ``sys.meta_path`` on first use.

    It goes right before the standard path finder: after the verified
    importer, which must see verified modules first, and before ``sys.path``,
    which must not shadow a version in use.
    """
    global _finder
    with _finder_lock:
        if _finder is None:
            _finder = DirectoryFinder()
        if _finder not in sys.meta_path:
            at = next(
                (i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder),
                len(sys.meta_path),
            )
            sys.meta_path.insert(at, _finder)
        return _finder
