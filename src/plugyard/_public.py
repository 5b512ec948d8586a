"""How the public names of plugyard's packages present themselves."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any


def present_as(package: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Make the classes and functions among ``names`` print as members of ``package``.

    Only names defined in a private module under ``package`` (``plugyard._model``,
    ``plugyard.exceptions`` for the top level) are changed, so that users see
    ``plugyard.PluginManager`` in reprs, tracebacks and the docs, the path they
    import it from. This is the one place where ``__module__`` is set.
    """
    for name in names:
        value = namespace.get(name)
        module = getattr(value, "__module__", None)
        if callable(value) and isinstance(module, str) and module.startswith(f"{package}."):
            value.__module__ = package


def import_on_first_use(
    package: str, namespace: dict[str, Any], homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` (PEP 562) of a package with lazy names.

    ``homes`` says which submodule of ``package`` defines each name; the first
    use imports it, presents the value as ``package.<name>`` and keeps it in
    ``namespace`` (the package's globals), so later uses are plain lookups.
    """
    import importlib

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's name
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        present_as(package, {name: value}, [name])
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the module hook's name
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__


def present_top_level(namespace: Mapping[str, object]) -> None:
    """Present the top-level names a private module defines as ``plugyard.<name>``.

    Each module listed in :data:`HOMES` calls this at its end, so its public
    classes print as plugyard's whichever path reached them first.
    """
    module = namespace["__name__"]
    present_as(
        "plugyard", namespace, [n for n, home in HOMES.items() if module == f"plugyard.{home}"]
    )


#: Where each name of the top-level package is defined, as a module of the package;
#: ``plugyard.__getattr__`` imports it from there on first use. (The errors are
#: imported with the package: every path that does anything raises or catches them.)
HOMES: dict[str, str] = {
    **dict.fromkeys(["Candidate", "CandidateKind"], "_candidate"),
    "ConfigStore": "_configstore",
    "EntryPoint": "_discovery",
    **dict.fromkeys(
        [
            "ConfigChanged",
            "ConfigRejected",
            "Event",
            "PluginActivated",
            "PluginCrashed",
            "PluginDiscovered",
            "PluginFailed",
            "PluginLoaded",
            "PluginReloaded",
            "PluginUnloaded",
            "ReloadFailed",
            "SignatureRejected",
        ],
        "_events",
    ),
    **dict.fromkeys(["EventBus", "Subscription"], "_bus"),
    **dict.fromkeys(["MapResult", "PluginHandle"], "_handles"),
    "PluginManager": "_manager",
    "MetricsSnapshot": "_metrics",
    **dict.fromkeys(
        ["Dependency", "FunctionPlugin", "Plugin", "PluginContext", "PluginInfo", "PluginState"],
        "_model",
    ),
    "TrustPolicy": "_policy",
    **dict.fromkeys(["DEFAULT_GROUP", "Registry", "get_registry", "register"], "_registry"),
    "Plan": "_resolve",
    "to_prometheus": "prometheus",  # needs prometheus_client
}
