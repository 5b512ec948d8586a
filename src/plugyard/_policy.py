"""The trust gate: which installed plugins must be signed, checked before import."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .exceptions import SignatureError

if TYPE_CHECKING:
    from .trust import Keyring, VerificationResult, VerifiedImporter

log = logging.getLogger("plugyard")

#: ``off`` imports installed plugins unchecked; ``warn`` verifies them and
#: logs what is wrong, importing them anyway; ``require`` imports nothing of a
#: distribution that does not verify.
Mode = Literal["off", "warn", "require"]
_MODES = ("off", "warn", "require")


def _check_modes(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    modes = [value] if isinstance(value, str) else list(dict(value).values())
    for mode in modes:
        if mode not in _MODES:
            raise ValueError(f"{attribute.name}: trust mode {mode!r} is not one of {_MODES}")


@attrs.frozen
class TrustPolicy:
    """Which installed plugins must verify before import, against which keys.

    Plugins registered in code are the application's own and are not
    checked; installed plugins (entry points, and the modules of module entry
    points) are checked, by their distribution, before any of their code is
    imported. A verified distribution is then imported only from the bytes
    that were verified (see :class:`plugyard.trust.VerifiedImporter`).

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

    mode: Mode = attrs.field(default="off", validator=_check_modes)
    keyring: Keyring | None = None
    groups: Mapping[str, Mode] = attrs.field(factory=dict, validator=_check_modes)
    plugins: Mapping[str, Mode] = attrs.field(factory=dict, validator=_check_modes)
    untrusted: Literal["refuse", "sandbox"] = attrs.field(
        default="refuse", validator=attrs.validators.in_(("refuse", "sandbox"))
    )

    def __attrs_post_init__(self) -> None:
        used = {self.mode, *self.groups.values(), *self.plugins.values()}
        if used != {"off"} and self.keyring is None:
            raise ValueError(
                "a trust policy that verifies needs a keyring: "
                "TrustPolicy(mode=..., keyring=Keyring.from_directory(...))"
            )

    def mode_for(self, group: str, plugin: str) -> Mode:
        """The mode that applies to ``plugin`` of ``group``."""
        return self.plugins.get(plugin, self.groups.get(group, self.mode))


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


class Gate:
    """Verifies distributions for one manager, each once, and admits them for import."""

    def __init__(self, policy: TrustPolicy, group: str) -> None:
        self.policy = policy
        self.group = group
        self._results: dict[str, VerificationResult] = {}

    def forget(self) -> None:
        """Verify again next time (after a rescan: files may have changed)."""
        self._results.clear()

    def check(self, plugin: str, distribution: str, dist_info: str) -> SignatureError | None:
        """Verify the distribution behind ``plugin`` before it is imported.

        Returns:
            ``None`` when the plugin may be imported; the error that fails it
            when the policy requires a signature and verification failed.
        """
        mode = self.policy.mode_for(self.group, plugin)
        if mode == "off":
            return None
        result = self._results.get(dist_info)
        if result is None:
            from importlib.metadata import PathDistribution

            from .trust import verify_distribution

            assert self.policy.keyring is not None  # noqa: S101 - checked by TrustPolicy
            result = verify_distribution(PathDistribution(Path(dist_info)), self.policy.keyring)
            self._results[dist_info] = result
        error: SignatureError | None = None
        if result.ok:
            try:
                verified_importer().add(result)
            except SignatureError as exc:
                error = exc
        else:
            error = SignatureError(distribution, result.problems, plugin=plugin)
        if error is None:
            return None
        if mode == "warn":
            problems = "; ".join(f"{p.kind}: {p}" for p in error.problems)
            log.warning(
                "plugin %r imported unverified (trust mode 'warn'): distribution %r: %s",
                plugin,
                distribution,
                problems,
            )
            return None
        error.plugin = plugin
        return error
