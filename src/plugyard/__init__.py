"""plugyard: plugins verified before import, ordered by their dependencies."""

from __future__ import annotations

from typing import Any

from . import _public
from ._candidate import Candidate, CandidateKind
from ._configstore import ConfigStore
from ._discovery import EntryPoint
from ._events import (
    ConfigChanged,
    ConfigRejected,
    Event,
    EventBus,
    PluginActivated,
    PluginCrashed,
    PluginDiscovered,
    PluginFailed,
    PluginLoaded,
    PluginUnloaded,
    SignatureRejected,
    Subscription,
)
from ._handles import PluginHandle
from ._manager import PluginManager
from ._metrics import MetricsSnapshot, to_prometheus
from ._model import Dependency, FunctionPlugin, Plugin, PluginContext, PluginInfo, PluginState
from ._policy import TrustPolicy
from ._registry import DEFAULT_GROUP, Registry, get_registry, register
from ._resolve import Plan
from .exceptions import (
    CallTimeoutError,
    ConfigError,
    DependencyCycleError,
    DependencyError,
    DependencyFailedError,
    DependencyVersionError,
    DependentsActiveError,
    DuplicatePluginError,
    InvalidKeyError,
    InvalidPluginError,
    InvalidWheelError,
    IsolationError,
    ManagerBusyError,
    ManagerClosedError,
    MissingDependencyError,
    PluginBusyError,
    PluginConflictError,
    PluginCrashedError,
    PluginError,
    PluginLoadError,
    PluginNotActiveError,
    PluginNotFoundError,
    PluginSetupError,
    PluginStateError,
    PluginWarning,
    RemoteError,
    SandboxError,
    SignatureError,
)

__all__ = [
    "DEFAULT_GROUP",
    "CallTimeoutError",
    "Candidate",
    "CandidateKind",
    "ConfigChanged",
    "ConfigError",
    "ConfigRejected",
    "ConfigStore",
    "Dependency",
    "DependencyCycleError",
    "DependencyError",
    "DependencyFailedError",
    "DependencyVersionError",
    "DependentsActiveError",
    "DuplicatePluginError",
    "EntryPoint",
    "Event",
    "EventBus",
    "FunctionPlugin",
    "InvalidKeyError",
    "InvalidPluginError",
    "InvalidWheelError",
    "IsolationError",
    "ManagerBusyError",
    "ManagerClosedError",
    "MetricsSnapshot",
    "MissingDependencyError",
    "Plan",
    "Plugin",
    "PluginActivated",
    "PluginBusyError",
    "PluginConflictError",
    "PluginContext",
    "PluginCrashed",
    "PluginCrashedError",
    "PluginDiscovered",
    "PluginError",
    "PluginFailed",
    "PluginHandle",
    "PluginInfo",
    "PluginLoadError",
    "PluginLoaded",
    "PluginManager",
    "PluginNotActiveError",
    "PluginNotFoundError",
    "PluginSetupError",
    "PluginState",
    "PluginStateError",
    "PluginUnloaded",
    "PluginWarning",
    "Registry",
    "RemoteError",
    "SandboxError",
    "SignatureError",
    "SignatureRejected",
    "Subscription",
    "TrustPolicy",
    "__version__",
    "get_registry",
    "register",
    "to_prometheus",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("plugyard")
    raise AttributeError(f"module 'plugyard' has no attribute {name!r}")


_public.present_as(__name__, globals(), __all__)
