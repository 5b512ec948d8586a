"""How the public names of plugyard's packages present themselves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


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
