"""plugyard: plugins verified before import, ordered by their dependencies."""

from __future__ import annotations

from typing import Any

from ._discovery import EntryPoint
from ._manager import Candidate, PluginHandle, PluginManager
from ._model import Dependency, FunctionPlugin, Plugin, PluginContext, PluginInfo, PluginState
from ._policy import TrustPolicy
from ._registry import DEFAULT_GROUP, Registry, get_registry, register
from ._resolve import Plan

__all__ = [
    "DEFAULT_GROUP",
    "Candidate",
    "Dependency",
    "EntryPoint",
    "FunctionPlugin",
    "Plan",
    "Plugin",
    "PluginContext",
    "PluginHandle",
    "PluginInfo",
    "PluginManager",
    "PluginState",
    "Registry",
    "TrustPolicy",
    "__version__",
    "get_registry",
    "register",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("plugyard")
    raise AttributeError(f"module 'plugyard' has no attribute {name!r}")
