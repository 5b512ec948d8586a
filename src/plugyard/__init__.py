"""plugyard: plugins verified before import, ordered by their dependencies.

Every public name but the errors is imported on first use (PEP 562), so
``import plugyard`` costs next to nothing and a command-line tool pays only
for what it touches: ``plugyard.register`` loads the registry,
``plugyard.PluginManager`` the manager, and neither loads events, trust,
config validation or the sandbox until they are used. The errors come with
the package: every path that does anything raises or catches them.
"""

from __future__ import annotations

import importlib

from . import _public, exceptions
from .exceptions import *  # noqa: F403 - every error, as exceptions.__all__ lists them

TYPE_CHECKING = False
if TYPE_CHECKING:  # what each lazy name is, for type checkers and editors
    from typing import Any

    from ._bus import EventBus as EventBus, Subscription as Subscription
    from ._candidate import (
        Candidate as Candidate,
        CandidateKind as CandidateKind,
    )
    from ._configstore import ConfigStore as ConfigStore
    from ._discovery import EntryPoint as EntryPoint
    from ._events import (
        ConfigChanged as ConfigChanged,
        ConfigRejected as ConfigRejected,
        Event as Event,
        PluginActivated as PluginActivated,
        PluginCrashed as PluginCrashed,
        PluginDiscovered as PluginDiscovered,
        PluginFailed as PluginFailed,
        PluginLoaded as PluginLoaded,
        PluginReloaded as PluginReloaded,
        PluginUnloaded as PluginUnloaded,
        ReloadFailed as ReloadFailed,
        SignatureRejected as SignatureRejected,
    )
    from ._handles import (
        MapResult as MapResult,
        PluginHandle as PluginHandle,
    )
    from ._manager import PluginManager as PluginManager
    from ._metrics import MetricsSnapshot as MetricsSnapshot
    from ._model import (
        Dependency as Dependency,
        FunctionPlugin as FunctionPlugin,
        Plugin as Plugin,
        PluginContext as PluginContext,
        PluginInfo as PluginInfo,
        PluginState as PluginState,
    )
    from ._policy import TrustPolicy as TrustPolicy
    from ._registry import (
        DEFAULT_GROUP as DEFAULT_GROUP,
        Registry as Registry,
        get_registry as get_registry,
        register as register,
    )
    from ._resolve import Plan as Plan
    from .prometheus import to_prometheus as to_prometheus

#: The subpackages and public modules reachable as attributes, imported on first use.
_SUBMODULES = frozenset(
    {"cli", "exceptions", "prometheus", "runtime", "stevedore", "testing", "trust", "worker"}
)

# __version__ is made by __getattr__ below, not by the star import.
__all__ = ["__version__", *sorted(_public.HOMES), *exceptions.__all__]  # noqa: F405


_lazy, __dir__ = _public.import_on_first_use(__name__, globals(), _public.HOMES)


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("plugyard")
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    return _lazy(name)
