"""plugyard: plugins verified before import, ordered by their dependencies."""

from __future__ import annotations

from typing import Any

from . import _public, exceptions
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
    PluginReloaded,
    PluginUnloaded,
    ReloadFailed,
    SignatureRejected,
    Subscription,
)
from ._handles import MapResult, PluginHandle
from ._manager import PluginManager
from ._metrics import MetricsSnapshot
from ._model import Dependency, FunctionPlugin, Plugin, PluginContext, PluginInfo, PluginState
from ._policy import TrustPolicy
from ._registry import DEFAULT_GROUP, Registry, get_registry, register
from ._resolve import Plan
from .exceptions import *  # noqa: F403 - every error, as exceptions.__all__ lists them

__all__ = [
    "DEFAULT_GROUP",
    "Candidate",
    "CandidateKind",
    "ConfigChanged",
    "ConfigRejected",
    "ConfigStore",
    "Dependency",
    "EntryPoint",
    "Event",
    "EventBus",
    "FunctionPlugin",
    "MapResult",
    "MetricsSnapshot",
    "Plan",
    "Plugin",
    "PluginActivated",
    "PluginContext",
    "PluginCrashed",
    "PluginDiscovered",
    "PluginFailed",
    "PluginHandle",
    "PluginInfo",
    "PluginLoaded",
    "PluginManager",
    "PluginReloaded",
    "PluginState",
    "PluginUnloaded",
    "Registry",
    "ReloadFailed",
    "SignatureRejected",
    "Subscription",
    "TrustPolicy",
    "__version__",  # noqa: F405 - made on first use by __getattr__ below
    "get_registry",
    "register",
    "to_prometheus",  # noqa: F405 - imported on first use by __getattr__ below
    *exceptions.__all__,
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("plugyard")
    if name == "to_prometheus":  # needs prometheus_client: imported when used
        from .prometheus import to_prometheus

        return to_prometheus
    raise AttributeError(f"module 'plugyard' has no attribute {name!r}")


_public.present_as(__name__, globals(), __all__)
