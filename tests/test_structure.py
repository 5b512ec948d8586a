"""The shape of the package: the import graph has no cycle and the flow runs one way.

Read from the source (the AST), not by importing it, so a lazy import inside
a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "plugyard"

#: What any module may import: errors, the value types, how names present themselves.
FOUNDATION = [
    "plugyard.exceptions",
    "plugyard._errorbase",
    "plugyard._sandbox_errors",
    "plugyard._public",
    "plugyard._log",
    "plugyard._value",
    "plugyard._introspect",
    "plugyard._model",
    "plugyard._singlefile",
]
#: Services the stages use; they import only the foundation and each other.
SERVICES = [
    "plugyard._events",
    "plugyard._bus",
    "plugyard._metrics",
    "plugyard._configtypes",
    "plugyard._configstore",
    "plugyard.trust",
    "plugyard._indexcache",
    "plugyard._metafiles",
]
#: The flow, in order: a stage imports earlier stages, never a later one.
STAGES = [
    "plugyard._registry",
    "plugyard._discovery",
    "plugyard._candidate",
    "plugyard._versions",
    "plugyard._sources",
    "plugyard._plugindirs",
    "plugyard._policy",
    "plugyard._admission",
    "plugyard._install",
    "plugyard._loader",
    "plugyard._resolve",
    "plugyard._interface",
    "plugyard._handles",
    "plugyard.runtime",
    "plugyard._lifecycle",
    "plugyard._table",
    "plugyard._configure",
    "plugyard._start",
    "plugyard._asyncapi",
    "plugyard._reload",
    "plugyard._watch",
    "plugyard._reloadapi",
    "plugyard._manager",
]
#: What uses the library from outside the flow.
CONSUMERS = [
    "plugyard",
    "plugyard.__main__",
    "plugyard.cli",
    "plugyard.prometheus",
    "plugyard.stevedore",
    "plugyard.testing",
    "plugyard.worker",
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(path: Path, *, runtime_only: bool) -> set[str]:
    """The plugyard modules that the module at ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(tree):
        if runtime_only and _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from . import _loader" imports a module; "from ._x import y" imports from one.
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {base})
    return {m for m in found if m in modules and m != name}


def _graph(*, runtime_only: bool) -> dict[str, set[str]]:
    return {
        _module_name(path): _imports(path, runtime_only=runtime_only)
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _group(module: str) -> str:
    """The entry of the tables above that ``module`` belongs to."""
    for entry in [*FOUNDATION, *SERVICES, *STAGES, *CONSUMERS]:
        if module == entry or (module.startswith(entry + ".") and entry != "plugyard"):
            return entry
    raise AssertionError(f"{module} is in no table of tests/test_structure.py: add it")


def test_every_module_has_a_place_in_the_flow() -> None:
    for module in _graph(runtime_only=False):
        _group(module)


def test_the_import_graph_has_no_cycle() -> None:
    sorter = graphlib.TopologicalSorter(_graph(runtime_only=True))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:  # pragma: no cover - only when it fails
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_no_stage_imports_a_later_stage_or_a_consumer() -> None:
    order = {entry: index for index, entry in enumerate(STAGES)}
    wrong = []
    for module, imported in _graph(runtime_only=False).items():
        mine = _group(module)
        for other in imported:
            theirs = _group(other)
            if mine == theirs:
                continue
            if mine in FOUNDATION:
                allowed = theirs in FOUNDATION or (
                    # exceptions.py names trust's Problem in annotations only.
                    module == "plugyard.exceptions" and theirs == "plugyard.trust"
                )
            elif mine in SERVICES:
                allowed = theirs in FOUNDATION or theirs in SERVICES
            elif mine in STAGES:
                allowed = theirs not in CONSUMERS and order.get(theirs, -1) < order[mine]
            else:
                allowed = True
            if not allowed:
                wrong.append(f"{module} imports {other}")
    assert wrong == []


def test_no_private_name_is_imported_from_another_module() -> None:
    """``from ._x import _y`` only inside a subpackage (``cli/``, ``trust/``).

    Modules may be private; the names they keep private stay in them.
    """
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, node.module] if node.module else anchor)
            same_subpackage = node.level == 1 and package != "plugyard"
            for alias in node.names:
                private = alias.name.startswith("_") and f"{base}.{alias.name}" not in modules
                if private and not same_subpackage:
                    wrong.append(f"{name}: from {base} import {alias.name}")
    assert wrong == []


def test_no_module_is_longer_than_600_lines() -> None:
    long = {
        _module_name(path): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}


def test_the_architecture_page_lists_every_module() -> None:
    page = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if f"`{path.relative_to(PACKAGE)}`" not in page
    ]
    assert missing == []
