"""The entry points a verified distribution declares, read from the bytes that were hashed.

A listing of entry points (plugyard's index, its on-disk cache, stevedore's)
is read before verification, from files that may have changed since, or
from a cache that was written by someone else. What is imported must be
what the signed ``entry_points.txt`` declares: :func:`check_entry_point`
compares one listed entry point with the verified declaration and with the
signed manifest.
"""

from __future__ import annotations

import importlib.machinery
import re

from .._model import canonical
from .._singlefile import MODULE_PREFIX, module_of
from ._problems import Problem, ProblemKind, VerificationResult

_SECTION = re.compile(r"^\[(?P<group>[^\]]+)\]\s*$")


def parse_entry_points(raw: bytes) -> tuple[tuple[str, str, str], ...]:
    """``(group, name, value)`` of every entry point of an ``entry_points.txt``, in file order.

    Read exactly as plugyard's discovery reads the file (UTF-8, undecodable
    bytes replaced), so that a listing and the verified declaration of the
    same bytes are equal.
    """
    found: list[tuple[str, str, str]] = []
    group = None
    for raw_line in raw.decode("utf-8", errors="replace").splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        section = _SECTION.match(line)
        if section:
            group = section["group"].strip()
            continue
        name, eq, value = line.partition("=")
        if group is not None and eq:
            found.append((group, name.strip(), value.strip()))
    return tuple(found)


def module_files(module: str) -> tuple[str, ...]:
    """The site-relative paths a module named ``module`` may be installed as."""
    base = module.replace(".", "/")
    suffixes = (".py", *importlib.machinery.EXTENSION_SUFFIXES)
    return (*(base + s for s in suffixes), *(f"{base}/__init__{s}" for s in suffixes))


def check_entry_point(
    result: VerificationResult,
    group: str,
    name: str,
    value: str,
    distribution: str | None = None,
) -> tuple[Problem, ...]:
    """What is wrong with importing entry point ``name = value`` of ``group`` from ``result``.

    The entry point must be declared, with that value, by the verified
    ``entry_points.txt``; the module it names must be a module of the signed
    manifest (not of another distribution, nor of the standard library); and
    the distribution it is listed under, if given, must be the one whose
    verified ``METADATA`` was read.

    Args:
        result: An ``ok`` result of :func:`verify_distribution`.
        group: The entry point's group.
        name: Its name.
        value: What it names, ``module:object`` or ``module``.
        distribution: The distribution a listing credits it to (any spelling).

    Returns:
        The problems; empty when the entry point may be imported.
    """
    manifest = result.manifest
    if manifest is None:
        return ()
    where = f"{manifest.dist_info}/entry_points.txt"
    problems = []
    if distribution is not None and canonical(distribution) != result.distribution:
        problems.append(
            Problem(
                ProblemKind.NAME_MISMATCH,
                f"the entry point {name!r} is listed under distribution {distribution!r}, "
                f"but the verified METADATA there names {result.distribution!r}; rescan "
                "(the listing or its cache is stale or was changed)",
                where,
                expected=result.distribution,
                actual=distribution,
            )
        )
    declared = [v for g, n, v in result.entry_points if g == group and n == name]
    if not result.entry_points:
        declared += _implied(manifest.dist_info, name)
    if value not in declared:
        said = f"; it declares {name} = {declared[0]}" if declared else ""
        problems.append(
            Problem(
                ProblemKind.UNDECLARED_ENTRY_POINT,
                f"the entry point {name} = {value} (group {group!r}) is not declared by the "
                f"verified entry_points.txt{said}: the listing it came from was changed or "
                "is stale; nothing of it is imported",
                where,
                expected=declared[0] if declared else None,
                actual=value,
            )
        )
        return tuple(problems)
    module = value.partition(":")[0].strip()
    files = manifest.installed_files()
    if not any(path in files for path in module_files(module)):
        problems.append(
            Problem(
                ProblemKind.FOREIGN_MODULE,
                f"the entry point {name} = {value} names module {module!r}, which is not in "
                f"the signed manifest of {result.distribution!r}: a signed entry point may "
                "only import its own distribution's code",
                where,
                actual=module,
            )
        )
    return tuple(problems)


def _implied(dist_info: str, name: str) -> list[str]:
    """The entry point a signed single-file plugin implies, having no entry_points.txt.

    A single-file plugin ``NAME.py`` is installed as module ``plugyard_file_NAME``
    with a ``plugyard_file_NAME-VERSION.dist-info`` beside it; its detached
    signature covers the module and its ``METADATA``, not a group, so the one
    entry point it may be imported through is ``NAME = plugyard_file_NAME:plugin``,
    in whatever group the plugin directory serves.
    """
    module = dist_info.partition("-")[0]
    if not module.startswith(MODULE_PREFIX) or module != module_of(name):
        return []
    return [f"{module}:plugin"]
