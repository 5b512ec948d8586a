"""The trust gate: which installed plugins must be signed, checked before import."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from . import _log
from ._public import present_top_level as _present_top_level
from ._value import Value, evolve
from .exceptions import SignatureError

if TYPE_CHECKING:
    from ._discovery import EntryPoint
    from ._model import PluginInfo
    from .trust import Keyring, VerificationResult, VerifiedImporter

log = _log.Logger("plugyard")

#: ``off`` imports installed plugins unchecked; ``warn`` verifies them and
#: logs what is wrong, importing them anyway; ``require`` imports nothing of a
#: distribution that does not verify.
Mode = Literal["off", "warn", "require"]
_MODES = ("off", "warn", "require")


def _check_modes(field: str, value: Any) -> None:
    modes = [value] if isinstance(value, str) else list(dict(value).values())
    for mode in modes:
        if mode not in _MODES:
            raise ValueError(f"{field}: trust mode {mode!r} is not one of {_MODES}")


class TrustPolicy(Value):
    """Which installed plugins must verify before import, against which keys.

    Plugins registered in code are the application's own and are not
    checked; installed plugins (entry points, and the modules of module entry
    points) are checked, by their distribution, before any of their code is
    imported. A verified distribution is then imported only from the bytes
    that were verified (see :class:`plugyard.trust.VerifiedImporter`).

    A mode is the plugin's own: a module entry point's mode covers importing
    it, and each plugin its code registers is judged by its own mode. Code
    let in under ``warn`` or ``off`` cannot register, replace or be
    credited with a plugin whose mode is ``require``.

    Attributes:
        mode: The mode for every group and plugin not named below.
        keyring: The trusted keys; required unless every mode is ``off``.
        groups: Modes by group name, overriding ``mode``.
        plugins: Modes by plugin name, overriding the group's.
        untrusted: What becomes of a plugin the policy refuses: ``"refuse"``
            fails it; ``"sandbox"`` runs it isolated in a child process
            instead (see :mod:`plugyard.runtime`).

    Raises:
        ValueError: a mode is not ``off``, ``warn`` or ``require``, or a mode
            other than ``off`` is set without a keyring.
    """

    __slots__ = ("groups", "keyring", "mode", "plugins", "untrusted")

    mode: Mode
    keyring: Keyring | None
    groups: Mapping[str, Mode]
    plugins: Mapping[str, Mode]
    untrusted: Literal["refuse", "sandbox"]

    def __init__(
        self,
        mode: Mode = "off",
        keyring: Keyring | None = None,
        groups: Mapping[str, Mode] | None = None,
        plugins: Mapping[str, Mode] | None = None,
        untrusted: Literal["refuse", "sandbox"] = "refuse",
    ) -> None:
        groups = {} if groups is None else groups
        plugins = {} if plugins is None else plugins
        for field, value in (("mode", mode), ("groups", groups), ("plugins", plugins)):
            _check_modes(field, value)
        if untrusted not in ("refuse", "sandbox"):
            raise ValueError(f"untrusted: {untrusted!r} is not one of ('refuse', 'sandbox')")
        _set = object.__setattr__
        _set(self, "mode", mode)
        _set(self, "keyring", keyring)
        _set(self, "groups", groups)
        _set(self, "plugins", plugins)
        _set(self, "untrusted", untrusted)
        used = {mode, *groups.values(), *plugins.values()}
        if used != {"off"} and keyring is None:
            raise ValueError(
                "a trust policy that verifies needs a keyring: "
                "TrustPolicy(mode=..., keyring=Keyring.from_directory(...))"
            )

    def mode_for(self, group: str, plugin: str) -> Mode:
        """The mode that applies to ``plugin`` of ``group``."""
        return self.plugins.get(plugin, self.groups.get(group, self.mode))

    @property
    def verifies(self) -> bool:
        """Whether any plugin is verified at all (some mode is not ``off``)."""
        return {self.mode, *self.groups.values(), *self.plugins.values()} != {"off"}


_importer: VerifiedImporter | None = None
_importer_lock = threading.Lock()


def verified_importer() -> VerifiedImporter:
    """The process-wide verified importer, installed on ``sys.meta_path`` on first use."""
    global _importer
    with _importer_lock:
        if _importer is None:
            from .trust import VerifiedImporter

            _importer = VerifiedImporter()
            _importer.install()
        return _importer


class _Admission(Value):
    """A distribution whose code the gate let run unverified, or refused."""

    __slots__ = ("dist_info", "distribution", "mode", "version")

    distribution: str
    version: str
    dist_info: str
    #: ``"off"`` or ``"warn"`` (imported the ordinary way), ``"refused"``.
    mode: str

    def __init__(self, distribution: str, version: str, dist_info: str, mode: str) -> None:
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "dist_info", dist_info)
        object.__setattr__(self, "mode", mode)


# By dist-info directory, for every manager: a registry is shared by all, so
# code admitted by one manager may register into the group of another.
_admissions: dict[str, _Admission] = {}
_admission_modules: dict[str, frozenset[str]] = {}
_admissions_lock = threading.Lock()
_HOW = {
    "off": "imported unchecked (trust mode 'off')",
    "warn": "imported unverified (trust mode 'warn')",
    "refused": "refused by the trust gate",
}
# How far each kind of code is trusted; the weakest of a registration's counts.
_RANK = {"refused": 0, "off": 1, "warn": 2, "verified": 3, "application": 4}


def _admit(ep: EntryPoint, mode: str) -> None:
    old = _admissions.get(ep.path)
    if old is not None and old.mode == mode:
        return
    with _admissions_lock:
        _admissions[ep.path] = _Admission(ep.distribution, ep.version, ep.path, mode)


def owner_of(module: str) -> tuple[str, str | None, str | None]:
    """Whose code the module named ``module`` is, as the trust gate knows it.

    Returns:
        ``(kind, distribution, version)``: ``kind`` is ``"verified"`` (the
        verified importer imported it), ``"off"``, ``"warn"`` or
        ``"refused"`` (a module of a distribution the gate let run unchecked
        or refused), or ``"application"`` (anything else).
    """
    importer = _importer
    if importer is not None:
        owner = importer.owner(module)
        if owner is not None:
            return "verified", owner, importer.version_of(owner)
    if not _admissions:
        return "application", None, None
    import pathlib

    from .trust._record import record_modules

    for admission in list(_admissions.values()):
        modules = _admission_modules.get(admission.dist_info)
        if modules is None:
            modules = _admission_modules[admission.dist_info] = record_modules(
                pathlib.Path(admission.dist_info)
            )
        name = module
        while name:
            if name in modules:
                return admission.mode, admission.distribution, admission.version
            name = name.rpartition(".")[0]
    return "application", None, None


class Gate:
    """Verifies distributions for one manager, each once, and admits them for import."""

    def __init__(self, policy: TrustPolicy, group: str) -> None:
        self.policy = policy
        self.group = group
        self._results: dict[str, VerificationResult] = {}
        self._added: set[str] = set()

    def forget(self) -> None:
        """Verify again next time (after a rescan: files may have changed)."""
        self._results.clear()
        self._added.clear()

    def admit(self, plugin: str, ep: EntryPoint) -> EntryPoint:
        """Verify the distribution behind ``plugin`` before anything of it is imported.

        Under ``require``, the entry point must also be one the verified
        ``entry_points.txt`` declares, naming a module of the signed
        manifest; what is imported is then served by the verified importer,
        which is put first on ``sys.meta_path`` again.

        Returns:
            The entry point to import: ``ep``, with the version of the
            verified ``METADATA`` when it verified.

        Raises:
            SignatureError: the policy requires a signature and verification failed.
        """
        mode = self.policy.mode_for(self.group, plugin)
        if mode == "off":
            _admit(ep, "off")
            return ep
        result = self._results.get(ep.path)
        if result is None:
            from .trust._installed import verify_dist_info

            assert self.policy.keyring is not None  # noqa: S101 - checked by TrustPolicy
            result = verify_dist_info(ep.path, self.policy.keyring, ep.distribution)
            self._results[ep.path] = result
        error = self._verified(result, ep)
        if error is None:
            return evolve(ep, version=result.version or ep.version)
        if mode == "warn":
            problems = "; ".join(f"{p.kind}: {p}" for p in error.problems)
            log.warning(
                "plugin %r imported unverified (trust mode 'warn'): distribution %r: %s",
                plugin,
                ep.distribution,
                problems,
            )
            _admit(ep, "warn")
            return ep
        _admit(ep, "refused")
        error.plugin = plugin
        raise error

    def _verified(self, result: VerificationResult, ep: EntryPoint) -> SignatureError | None:
        """Why ``ep`` of ``result`` may not be imported as verified code, if anything."""
        if not result.ok:
            return SignatureError(ep.distribution, result.problems)
        from .trust import check_entry_point

        problems = check_entry_point(result, ep.group, ep.name, ep.value, ep.distribution)
        if problems:
            return SignatureError(ep.distribution, problems)
        importer = verified_importer()
        try:
            if ep.path not in self._added:
                importer.add(result)
                self._added.add(ep.path)
        except SignatureError as exc:
            return exc
        importer.install()
        return None

    def credit(self, info: PluginInfo, registrant: str | None) -> tuple[str, str | None] | None:
        """The distribution a plugin registered in code belongs to, as the gate admitted it.

        The registering module (the code that called ``register``) and the
        module of the plugin's class or function both count, the weaker of
        them: code admitted unverified, under ``warn`` or ``off`` (or code of
        a distribution the gate refused) cannot register, replace or be
        credited to a plugin whose trust mode is ``require``.

        Returns:
            ``(distribution, version)``, or ``None`` for the application's
            own code and when the policy verifies nothing.

        Raises:
            SignatureError: the code is unverified and the plugin's mode is ``require``.
        """
        if not self.policy.verifies:
            return None
        origin = info.origin.partition(":")[0]
        owners = {m: owner_of(m) for m in (registrant, origin) if m and m != "?"}
        if not owners:
            return None
        weakest = min(_RANK[kind] for kind, _, _ in owners.values())
        if weakest == _RANK["application"]:
            return None
        if weakest == _RANK["verified"]:
            # Credited to the registering code's distribution, else the class's.
            verified = [owners[m] for m in (registrant, origin) if m in owners]
            _, distribution, version = next(o for o in verified if o[0] == "verified")
            return distribution or "", version
        # Named after the code that ran register(), when that code is unverified.
        module = next(m for m, (k, _, _) in owners.items() if _RANK[k] == weakest)
        if registrant in owners and _RANK[owners[registrant][0]] < _RANK["verified"]:
            module = registrant
        kind, distribution, version = owners[module]
        how = f"{module}, code of {distribution!r} {_HOW[kind]}"
        other = next((m for m in owners if m != module), None)
        if other is not None and _RANK[owners[other][0]] < _RANK["verified"]:
            k, d, _ = owners[other]
            how += f", from a class of {other} (code of {d!r} {_HOW[k]})"
        mode = self.policy.mode_for(self.group, info.name)
        if mode == "require":
            from .trust import Problem, ProblemKind

            raise SignatureError(
                distribution or "",
                [
                    Problem(
                        ProblemKind.UNVERIFIED_CODE,
                        f"plugin {info.name!r} was registered by {how}; plugin {info.name!r} "
                        f"of group {self.group!r} must be verified (trust mode 'require'), so "
                        "code let in under a weaker mode cannot register, replace or claim it",
                        module,
                    )
                ],
                plugin=info.name,
            )
        if mode == "warn":
            log.warning("plugin %r registered by %s (trust mode 'warn')", info.name, how)
        return distribution or "", version


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
