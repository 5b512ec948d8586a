"""Every error and warning plugyard raises.

The tree::

    PluginError
    ├── InvalidPluginError (also ValueError)   bad name, version, specifier or object
    ├── DuplicatePluginError                   one name registered twice in a group
    ├── PluginNotFoundError (also LookupError) no plugin of that name in the group
    │   └── VersionNotFoundError               no version of it matches what was asked
    ├── PluginStateError (also RuntimeError)   the operation does not fit the plugin's state
    │   ├── PluginNotActiveError               using a plugin that is failed or unloaded
    │   ├── DependentsActiveError              unloading a plugin others still depend on
    │   └── PluginBusyError (also TimeoutError) calls still running when a teardown must wait
    ├── ManagerClosedError (also RuntimeError) using a manager after its shutdown
    ├── ManagerBusyError (also TimeoutError)   a lifecycle call waited too long for another
    ├── PluginLoadError (also ImportError)     an entry point could not be imported
    │   └── UnmetRequirementError              its Requires-Dist is not installed
    ├── PluginConflictError                    two distributions provide one plugin name
    ├── PluginSetupError                       the plugin's own setup() raised
    ├── PluginInterfaceError (also TypeError)  the plugin lacks what the host's interface requires
    ├── ReloadError                            a reload failed; the old version still runs
    ├── ConfigError                            a config cannot be read, written or validated
    ├── SignatureError                         a distribution failed verification
    ├── InvalidKeyError (also ValueError)      a key file or keyring cannot be used
    ├── InvalidWheelError (also ValueError)    a wheel cannot be signed as it is
    ├── SandboxError                           an isolated plugin's process failed us
    │   ├── IsolationError                     a required isolation layer is not available
    │   ├── PluginCrashedError                 the process died, hung or broke the protocol
    │   ├── CallTimeoutError (also TimeoutError) a call took longer than its timeout
    │   └── RemoteError                        the plugin's method raised in its process
    └── DependencyError                        the plugin's dependencies cannot be met
        ├── MissingDependencyError             a required dependency does not exist
        ├── DependencyVersionError             a dependency's version is outside the range
        ├── DependencyCycleError               plugins that depend on each other in a ring
        └── DependencyFailedError              a dependency exists but failed itself

    PluginWarning (also UserWarning)

Every exception carries the data its message is made from (``plugin``,
``dependency``, ``cycle``...), so callers never parse messages. Where a plugin
failed because of another exception, that exception is chained as
``__cause__``.
"""

from __future__ import annotations

from ._errorbase import SHOWN as _SHOWN, PluginError, PluginWarning
from ._public import present_as as _present_as
from ._sandbox_errors import (
    CallTimeoutError,
    IsolationError,
    PluginCrashedError,
    RemoteError,
    SandboxError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from .trust import Problem


__all__ = [
    "CallTimeoutError",
    "ConfigError",
    "DependencyCycleError",
    "DependencyError",
    "DependencyFailedError",
    "DependencyVersionError",
    "DependentsActiveError",
    "DuplicatePluginError",
    "InvalidKeyError",
    "InvalidPluginError",
    "InvalidWheelError",
    "IsolationError",
    "ManagerBusyError",
    "ManagerClosedError",
    "MissingDependencyError",
    "PluginBusyError",
    "PluginConflictError",
    "PluginCrashedError",
    "PluginError",
    "PluginInterfaceError",
    "PluginLoadError",
    "PluginNotActiveError",
    "PluginNotFoundError",
    "PluginSetupError",
    "PluginStateError",
    "PluginWarning",
    "ReloadError",
    "RemoteError",
    "SandboxError",
    "SignatureError",
    "UnmetRequirementError",
    "VersionNotFoundError",
]


class InvalidPluginError(PluginError, ValueError):
    """A plugin's name, version, dependency specifier or object is not valid.

    Attributes:
        value: The offending value, as given.
        reason: Why it was refused.
    """

    def __init__(self, value: object, reason: str, *, plugin: str | None = None) -> None:
        where = f"plugin {plugin!r}: " if plugin else ""
        super().__init__(f"{where}invalid value {value!r}: {reason}", plugin=plugin)
        self.value = value
        self.reason = reason


class DuplicatePluginError(PluginError):
    """Two plugins were registered under one name in one group.

    Attributes:
        group: The group both were registered in.
        existing: Where the plugin already registered comes from.
        new: Where the second registration comes from.
    """

    def __init__(self, plugin: str, group: str, existing: str, new: str) -> None:
        super().__init__(
            f"plugin {plugin!r} is already registered in group {group!r} by {existing}; "
            f"{new} registers it again. Rename one of them, or pass replace=True "
            "to replace the first on purpose.",
            plugin=plugin,
        )
        self.group = group
        self.existing = existing
        self.new = new


class PluginNotFoundError(PluginError, LookupError):
    """No plugin of that name exists in the group.

    Attributes:
        group: The group that was searched.
    """

    def __init__(self, plugin: str, group: str) -> None:
        super().__init__(f"no plugin named {plugin!r} in group {group!r}", plugin=plugin)
        self.group = group

    def __str__(self) -> str:
        # LookupError's str() would quote the message again.
        return str(self.args[0])


class VersionNotFoundError(PluginNotFoundError):
    """The plugin exists, but no version of it matches what was asked.

    Attributes:
        wanted: What was asked: a range such as ``"==1.1"``, a version, or a file.
        found: The versions that are present.
    """

    def __init__(self, plugin: str, group: str, wanted: str, found: Sequence[str]) -> None:
        PluginError.__init__(
            self,
            f"no version of plugin {plugin!r} in group {group!r} matches {wanted}; found "
            f"{', '.join(found) or 'none'}. Add a matching version to a plugin directory, or "
            "change what is asked.",
            plugin=plugin,
        )
        self.group = group
        self.wanted = wanted
        self.found = tuple(found)


class PluginStateError(PluginError, RuntimeError):
    """The operation does not fit the state the plugin is in.

    Attributes:
        state: The plugin's state when the operation was refused.
    """

    def __init__(self, message: str, *, plugin: str, state: str) -> None:
        super().__init__(message, plugin=plugin)
        self.state = state


class PluginNotActiveError(PluginStateError):
    """A failed or unloaded plugin was asked to run.

    The error that failed the plugin, if any, is chained as ``__cause__``.
    """


class DependentsActiveError(PluginStateError):
    """A plugin was to be unloaded while active plugins still depend on it.

    Attributes:
        dependents: The active dependents, in the order they would be torn down.
    """

    def __init__(self, plugin: str, dependents: Sequence[str]) -> None:
        names = ", ".join(dependents)
        super().__init__(
            f"cannot unload {plugin!r}: active plugins depend on it ({names}). "
            "Unload them first, or pass cascade=True to tear them down too.",
            plugin=plugin,
            state="active",
        )
        self.dependents = tuple(dependents)


class PluginBusyError(PluginStateError, TimeoutError):
    """Calls were still running in a plugin when its teardown had waited long enough.

    Nothing was torn down: the plugin (and, for a cascade or a shutdown, every
    other plugin of the operation) is still active and takes calls again.

    Attributes:
        calls: How many calls were still running.
        timeout: How long the teardown waited, in seconds.
    """

    def __init__(self, plugin: str, calls: int, timeout: float) -> None:
        running = "1 call" if calls == 1 else f"{calls} calls"
        super().__init__(
            f"plugin {plugin!r} still has {running} running after {timeout:g} s; nothing was "
            "torn down and it stays active. Let the calls finish, or pass a longer timeout.",
            plugin=plugin,
            state="active",
        )
        self.calls = calls
        self.timeout = timeout


class ManagerClosedError(PluginError, RuntimeError):
    """The manager was shut down; it loads and runs nothing any more.

    Attributes:
        group: The manager's group.
    """

    def __init__(self, group: str, *, plugin: str | None = None) -> None:
        what = f"cannot use plugin {plugin!r}: " if plugin else ""
        super().__init__(
            f"{what}the plugin manager of group {group!r} was shut down. "
            "Create a new PluginManager to load plugins again.",
            plugin=plugin,
        )
        self.group = group


class ManagerBusyError(PluginError, TimeoutError):
    """A lifecycle call waited too long for the one the manager is running.

    Lifecycle calls (load, unload, configure, ...) of one manager run one at
    a time. This is raised instead of waiting for ever, typically when a
    plugin's ``setup`` waits for another thread that calls into the manager.

    Attributes:
        holder: The plugin whose lifecycle step was running, if one was.
        timeout: How long the call waited, in seconds.
    """

    def __init__(self, group: str, holder: str | None, timeout: float) -> None:
        running = f"plugin {holder!r} is being set up or torn down" if holder else "it is busy"
        super().__init__(
            f"waited {timeout:g} s for the plugin manager of group {group!r}: {running}. "
            "A setup() that waits for a thread calling into the manager never finishes; "
            "start such work after setup(), or raise lock_timeout.",
            plugin=holder,
        )
        self.holder = holder
        self.timeout = timeout


class PluginLoadError(PluginError, ImportError):
    """An entry point's module could not be imported, or named the wrong kind of object.

    The original exception, if any, is ``__cause__``.

    Attributes:
        entry_point: The entry point, as ``name = value``.
        distribution: The distribution that declares it, as ``name version``.
        reason: What went wrong.
    """

    def __init__(self, plugin: str, entry_point: str, distribution: str, reason: str) -> None:
        PluginError.__init__(
            self,
            f"plugin {plugin!r}: entry point '{entry_point}' of {distribution} failed to "
            f"load: {reason}",
            plugin=plugin,
        )
        self.entry_point = entry_point
        self.distribution = distribution
        self.reason = reason


class UnmetRequirementError(PluginLoadError):
    """A plugin directory's wheel requires distributions the environment does not have.

    plugyard installs nothing from an index: the requirements must be
    installed already, by whatever installs the application.

    Attributes:
        requirements: Each unmet requirement with what was found, e.g.
            ``"numpy>=2 (not installed)"`` or ``"attrs<20 (23.1.0 installed)"``.
    """

    def __init__(
        self, plugin: str, entry_point: str, distribution: str, requirements: Sequence[str]
    ) -> None:
        super().__init__(
            plugin,
            entry_point,
            distribution,
            f"it requires {', '.join(requirements)}; install "
            f"{'it' if len(requirements) == 1 else 'them'} into the environment "
            "(plugyard installs no requirements)",
        )
        self.requirements = tuple(requirements)


class PluginConflictError(PluginError):
    """One plugin name is provided twice, by two distributions or by one and code.

    Attributes:
        providers: Each provider: ``"<distribution> <version>"`` or a ``module:qualname``.
    """

    def __init__(self, plugin: str, group: str, providers: Sequence[str]) -> None:
        listed = " and ".join(providers)
        super().__init__(
            f"plugin {plugin!r} in group {group!r} is provided by {listed}; plugyard does "
            "not pick one. Uninstall or rename one of them.",
            plugin=plugin,
        )
        self.providers = tuple(providers)


class PluginSetupError(PluginError):
    """The plugin's ``setup()`` raised; the original exception is ``__cause__``."""

    def __init__(self, plugin: str, cause: BaseException) -> None:
        super().__init__(
            f"plugin {plugin!r} failed in setup(): {type(cause).__name__}: {cause}",
            plugin=plugin,
        )


class PluginInterfaceError(PluginError, TypeError):
    """A plugin does not fit the interface its host requires; it was not set up.

    Attributes:
        interface: The interface, as ``module:qualname``.
        problems: Each method missing or wrong, in the interface's order.
    """

    def __init__(self, plugin: str, interface: str, problems: Sequence[str]) -> None:
        self.interface = interface
        self.problems = tuple(problems)
        super().__init__(
            f"plugin {plugin!r} does not implement {interface}: {'; '.join(self.problems)}. "
            "Add or fix these methods, or register it in another group.",
            plugin=plugin,
        )


class ReloadError(PluginError):
    """A reload failed; the old version, its instances and handles are all back.

    Callers of the plugin saw the old version throughout. The error that
    failed the reload, if any, is ``__cause__``.

    Attributes:
        old_version: The version that was running and still is.
        new_version: The version the reload tried to switch to, if known.
        stage: Where it failed: ``"refused"`` (nothing was tried, e.g.
            extension modules), ``"install"``, ``"import"``, ``"dependencies"``
            (a ``depends_on`` range the new version breaks, or that it
            needs), ``"config"``, ``"setup"``, ``"migrate"``, or ``"drain"``
            (calls on the old version did not finish in time).
        reason: What went wrong.
    """

    def __init__(
        self, plugin: str, old_version: str, new_version: str | None, stage: str, reason: str
    ) -> None:
        target = f" to {new_version}" if new_version else ""
        super().__init__(
            f"reloading plugin {plugin!r} {old_version}{target} failed ({stage}): "
            f"{reason.rstrip('.')}. "
            f"Version {old_version} is still active.",
            plugin=plugin,
        )
        self.old_version = old_version
        self.new_version = new_version
        self.stage = stage
        self.reason = reason


class DependencyError(PluginError):
    """A plugin's declared dependencies cannot be met."""


class MissingDependencyError(DependencyError):
    """A required dependency is not registered or installed.

    Attributes:
        missing: The name of the dependency that does not exist.
    """

    def __init__(self, plugin: str, missing: str) -> None:
        super().__init__(
            f"plugin {plugin!r} depends on {missing!r}, which is not registered. "
            f"Install or register {missing!r}, or drop it from depends_on.",
            plugin=plugin,
        )
        self.missing = missing


class DependencyVersionError(DependencyError):
    """A dependency exists but its version is outside the declared range.

    Attributes:
        dependency: The dependency's name.
        wanted: The specifier the plugin declared, e.g. ``">=1.0,<2"``.
        found: The version that is registered.
    """

    def __init__(self, plugin: str, dependency: str, wanted: str, found: str) -> None:
        super().__init__(
            f"plugin {plugin!r} needs {dependency!r} {wanted}, but version {found} "
            "is registered. Install a matching version or widen the range.",
            plugin=plugin,
        )
        self.dependency = dependency
        self.wanted = wanted
        self.found = found


class DependencyCycleError(DependencyError):
    """Plugins depend on each other in a ring.

    Attributes:
        cycle: The plugins in dependency order, the first repeated at the end:
            ``["a", "b", "c", "a"]`` means a depends on b, b on c, c on a.
    """

    def __init__(self, cycle: Sequence[str], *, plugin: str | None = None) -> None:
        ring = " -> ".join(cycle)
        who = f"plugin {plugin!r} is on or behind" if plugin else "found"
        super().__init__(
            f"{who} a dependency cycle: {ring}. Break the ring by removing one of "
            "these dependencies.",
            plugin=plugin,
        )
        self.cycle = list(cycle)


class DependencyFailedError(DependencyError):
    """A dependency exists but failed; its own error is ``__cause__``.

    The message ends with the first error down the chain that is not itself
    a failed dependency: the reason the whole chain cannot start.

    Attributes:
        dependency: The name of the failed dependency.
    """

    def __init__(self, plugin: str, dependency: str, cause: BaseException | None = None) -> None:
        root = cause
        while isinstance(root, DependencyFailedError) and root.__cause__ is not None:
            root = root.__cause__
        reason = f": {root}" if root is not None else ""
        super().__init__(
            f"plugin {plugin!r} cannot start because its dependency {dependency!r} failed{reason}",
            plugin=plugin,
        )
        self.dependency = dependency
        self.__cause__ = cause


class SignatureError(PluginError):
    """A wheel or distribution failed verification; nothing of it was imported.

    Deliberately not an :class:`ImportError`: code that catches
    ``ImportError`` to fall back when an optional module is missing must not
    silently swallow tampering.

    Attributes:
        distribution: The distribution's name.
        problems: Everything verification found wrong.
    """

    def __init__(
        self, distribution: str, problems: Sequence[Problem], *, plugin: str | None = None
    ) -> None:
        self.distribution = distribution
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:_SHOWN])
        more = len(self.problems) - _SHOWN
        if more > 0:
            shown += f"; and {more} more"
        super().__init__(
            f"distribution {distribution!r} failed verification: {shown}. Nothing of it "
            "was imported; reinstall it from a wheel signed by a trusted key.",
            plugin=plugin,
        )


class InvalidKeyError(PluginError, ValueError):
    """A key file or keyring cannot be used.

    Attributes:
        path: The file or directory concerned, if any.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class InvalidWheelError(PluginError, ValueError):
    """A wheel cannot be signed as it is.

    Attributes:
        path: The wheel.
        problems: What is wrong with it.
    """

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:_SHOWN])
        more = len(self.problems) - _SHOWN
        if more > 0:
            shown += f"; and {more} more"
        super().__init__(f"cannot sign {path.name}: {shown}")


class ConfigError(PluginError):
    """A plugin's configuration cannot be read, written or validated.

    Where another exception caused it (an ``OSError``, a msgpack decoding
    error, an attrs validator), that exception is ``__cause__``.

    Attributes:
        path: The config file concerned, if the error is about a file.
        group: The plugin's group, if known.
        field: Where in the config the problem is, if in one place: a key,
            or a path into nested values such as ``"retry.limit"`` or
            ``"hosts[2]"``.
        reason: What is wrong, without the file and field.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: Path | None = None,
        plugin: str | None = None,
        group: str | None = None,
        field: str | None = None,
    ) -> None:
        if path is not None:
            subject = f"config file {str(path)!r}"
        elif plugin is not None:
            subject = f"config of plugin {plugin!r}"
        else:
            subject = "config"
        where = f", field {field!r}" if field is not None else ""
        super().__init__(f"{subject}{where}: {reason}", plugin=plugin)
        self.path = path
        self.group = group
        self.field = field
        self.reason = reason


# Errors print as plugyard.PluginError, the name users catch them by.
_present_as("plugyard", globals(), __all__)
