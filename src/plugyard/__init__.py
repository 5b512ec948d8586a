"""plugyard: plugins verified before import, ordered by their dependencies."""

from __future__ import annotations

from typing import Any

from ._configstore import ConfigStore
from ._discovery import EntryPoint
from ._events import (
    ConfigChanged,
    ConfigRejected,
    Event,
    EventBus,
    PluginActivated,
    PluginDiscovered,
    PluginFailed,
    PluginLoaded,
    PluginUnloaded,
    SignatureRejected,
    Subscription,
)
from ._manager import Candidate, PluginHandle, PluginManager
from ._metrics import MetricsSnapshot, to_prometheus
from ._model import Dependency, FunctionPlugin, Plugin, PluginContext, PluginInfo, PluginState
from ._policy import TrustPolicy
from ._registry import DEFAULT_GROUP, Registry, get_registry, register
from ._resolve import Plan

__all__ = [
    "DEFAULT_GROUP",
    "Candidate",
    "ConfigChanged",
    "ConfigRejected",
    "ConfigStore",
    "Dependency",
    "EntryPoint",
    "Event",
    "EventBus",
    "FunctionPlugin",
    "MetricsSnapshot",
    "Plan",
    "Plugin",
    "PluginActivated",
    "PluginContext",
    "PluginDiscovered",
    "PluginFailed",
    "PluginHandle",
    "PluginInfo",
    "PluginLoaded",
    "PluginManager",
    "PluginState",
    "PluginUnloaded",
    "Registry",
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
