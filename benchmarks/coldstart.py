"""The rows issue 14 (cold start) adds: a first call under ``require``, memory per plugin.

``rows.py`` puts these probes, contenders and rows beside the others (rows
3 and 4); ``goals.py`` judges them, with the rows they sit beside, against
issue 14's targets.
"""

from __future__ import annotations

import snippets
from model import Contender, Probe, Row, _c

#: Memory barely varies from one process to the next, and tracing is slow.
MEMORY_ROUNDS = 3

PROBES: dict[str, Probe] = {
    "first-plugyard-require": Probe(snippets.FIRST_CALL_PLUGYARD_REQUIRE),
    "memory-plugyard": Probe(snippets.MEMORY_PLUGYARD, rounds=MEMORY_ROUNDS),
    "memory-plugyard-no-metrics": Probe(snippets.MEMORY_PLUGYARD_NO_METRICS, rounds=MEMORY_ROUNDS),
    "memory-stevedore": Probe(snippets.MEMORY_STEVEDORE, rounds=MEMORY_ROUNDS),
    "memory-bare": Probe(snippets.MEMORY_BARE, rounds=MEMORY_ROUNDS),
}

_REQUIRE = (
    '`policy = plugyard.TrustPolicy(mode="require", keyring=Keyring.from_directory(RING))`; '
    "`plugyard.PluginManager(group=G, trust=policy).execute(NAME, 42)`: NAME's distribution "
    "signed, verified, imported by the `VerifiedImporter` from its code cache, written by an "
    "earlier process (each process checks the loader, and that it wrote nothing there)"
)
_TRACED = (
    "bytes `tracemalloc` counts as held after the load and `gc.collect()`, over N; tracing "
    "starts after the import"
)

CONTENDERS: dict[str, Contender] = {
    "first-require/plugyard": _c(
        "plugyard, trust require",
        f"`import plugyard`, `from plugyard.trust import Keyring`; {_REQUIRE}",
        "first-plugyard-require",
        "total",
    ),
    "first-require-call/plugyard": _c(
        "plugyard, trust require", _REQUIRE, "first-plugyard-require", "call"
    ),
    "memory/plugyard": _c(
        "plugyard load_all()",
        f"`plugyard.PluginManager(group=G).load_all()` (metrics on, the default): {_TRACED}",
        "memory-plugyard",
        "memory",
        unit="B",
    ),
    "memory/plugyard-no-metrics": _c(
        "plugyard load_all(), metrics off",
        f"`plugyard.PluginManager(group=G, metrics=False).load_all()`: {_TRACED}",
        "memory-plugyard-no-metrics",
        "memory",
        unit="B",
    ),
    "memory/stevedore": _c(
        "stevedore ExtensionManager",
        f"`ExtensionManager(G, invoke_on_load=True)`, cache warm: {_TRACED}",
        "memory-stevedore",
        "memory",
        unit="B",
    ),
    "memory/bare": _c(
        "import + instantiate",
        "`importlib.import_module(f'pkg{i:03d}').Plugin()` for each of the N, kept in a list: "
        f"the plugins' own memory, no framework; {_TRACED}",
        "memory-bare",
        "memory",
        unit="B",
    ),
    "memory-peak/plugyard": _c(
        "plugyard load_all()",
        "as `memory/plugyard`, the most `tracemalloc` counted during the load, over N",
        "memory-plugyard",
        "peak",
        unit="B",
    ),
    "memory-modules/plugyard": _c(
        "plugyard load_all()",
        "modules other than the plugins' that the load imported",
        "memory-plugyard",
        "modules",
        unit="count",
    ),
    "memory-modules/stevedore": _c(
        "stevedore ExtensionManager",
        "modules other than the plugins' that the load imported",
        "memory-stevedore",
        "modules",
        unit="count",
    ),
    "memory-peak/stevedore": _c(
        "stevedore ExtensionManager",
        "as `memory/stevedore`, the most `tracemalloc` counted during the load, over N",
        "memory-stevedore",
        "peak",
        unit="B",
    ),
}

FIRST_CALL_REQUIRE = [
    Row(
        "3.first-call-require",
        "Time to the first call of one plugin among N under a requiring trust policy, its "
        "code cache warm, imports included, against stevedore's unverified DriverManager "
        "(fresh process)",
        "first-require/plugyard",
        ("first/stevedore",),
        targets={"first/stevedore": 0.5},
    ),
    Row(
        "3.first-call-require-no-import",
        "The same, after the imports (fresh process)",
        "first-require-call/plugyard",
        ("first-call/stevedore",),
    ),
]

MEMORY = [
    Row(
        "4.memory",
        "Memory held per loaded plugin after loading all N (fresh process, tracemalloc)",
        "memory/plugyard",
        ("memory/stevedore", "memory/bare"),
        targets={"memory/stevedore": 1.0},
    ),
    Row(
        "4.memory-no-metrics",
        "The same, plugyard's metrics off (fresh process, tracemalloc)",
        "memory/plugyard-no-metrics",
        ("memory/stevedore",),
    ),
    Row(
        "4.memory-peak",
        "The most memory per plugin held during the load (fresh process, tracemalloc)",
        "memory-peak/plugyard",
        ("memory-peak/stevedore",),
    ),
]
