"""The scaling rows: whether the lifecycle is linear in the number of plugins N."""

from __future__ import annotations

import snippets
from model import Contender, Probe, Row, _c

# 7. Scaling: whether the lifecycle is linear in N. Every figure is measured
# at every N of --scaling-n, in fresh processes capped by --scaling-timeout,
# and compared with itself at SCALING_BASE_N rather than with a peer: linear
# is N / SCALING_BASE_N times the figure there, and the limit is
# SCALING_SLACK times that (6x for 5x the plugins, 12x for 10x).
SCALING_N = (100, 1000, 10000)  # issue 14 asks for these three
SCALING_BASE_N = 1000  # the ratios divide by the figure at this N, when it is measured
SCALING_SLACK = 1.2

SCALING_PROBES: dict[str, Probe] = {
    "scale-register": Probe(snippets.SCALE_REGISTER, site=False),
    "scale-load-all": Probe(snippets.SCALE_LOAD_ALL, site=False),
    "scale-load-all-no-gc": Probe(snippets.SCALE_LOAD_ALL_NO_GC, site=False),
    "scale-load-all-tree": Probe(snippets.SCALE_LOAD_ALL_TREE, site=False),
    "scale-load-all-chain": Probe(snippets.SCALE_LOAD_ALL_CHAIN, site=False),
    "scale-lazy-calls": Probe(snippets.SCALE_LAZY_CALLS, site=False),
    "scale-lazy-calls-no-gc": Probe(snippets.SCALE_LAZY_CALLS_NO_GC, site=False),
    "scale-shutdown": Probe(snippets.SCALE_SHUTDOWN, site=False),
    "scale-states": Probe(snippets.SCALE_STATES, site=False),
    "scale-candidates": Probe(snippets.SCALE_CANDIDATES, site=False),
    # The same snippet as "all-stevedore", apart so that its samples are its own.
    "scale-stevedore": Probe(snippets.LOAD_ALL_STEVEDORE),
    # Issue 14: N installed plugins (the synthetic site), caches warm.
    "scale-list": Probe(snippets.LIST_PLUGYARD),
    "scale-list-stevedore": Probe(snippets.LIST_STEVEDORE),
    "scale-list-importlib": Probe(snippets.LIST_IMPORTLIB),
    "scale-first": Probe(snippets.FIRST_CALL_PLUGYARD),
    "scale-first-stevedore": Probe(snippets.FIRST_CALL_STEVEDORE),
    "scale-first-pluggy": Probe(snippets.FIRST_CALL_PLUGGY),
    "scale-all": Probe(snippets.LOAD_ALL_PLUGYARD),
    "scale-all-pluggy": Probe(snippets.LOAD_ALL_PLUGGY),
    "scale-shutdown-installed": Probe(snippets.SHUTDOWN_PLUGYARD),
}

# The setup every plugyard line shares is in the report's notes: N classes
# registered in a plugyard.Registry(G), a fresh manager; here is what is timed.
SCALING_CONTENDERS: dict[str, Contender] = {
    "scale/register": _c(
        "Registry.register, N times",
        "`registry.register(cls, name=NAME)` for each of the N classes, no dependencies",
        "scale-register",
        "register",
    ),
    "scale/load-all": _c(
        "plugyard load_all()", "`manager.load_all()`, no dependencies", "scale-load-all", "call"
    ),
    "scale/load-all-no-gc": _c(
        "plugyard load_all(), GC paused",
        "`manager.load_all()`, no dependencies, with the cyclic garbage collector paused "
        "(`gc.disable()` after a full collection) for the timed call only",
        "scale-load-all-no-gc",
        "call",
    ),
    "scale/load-all-tree": _c(
        "plugyard load_all(), tree",
        "`manager.load_all()`, every plugin i > 0 registered with "
        "`depends_on=[plugin i // 2]`: a binary tree, log2 N deep",
        "scale-load-all-tree",
        "call",
    ),
    "scale/load-all-chain": _c(
        "plugyard load_all(), chain",
        "`manager.load_all()`, every plugin i > 0 registered with "
        "`depends_on=[plugin i - 1]`: a chain, N deep",
        "scale-load-all-chain",
        "call",
    ),
    "scale/lazy-calls": _c(
        "plugyard execute(), N times",
        "`manager.execute(name, 42)` for every name in turn, each call loading the one "
        "plugin it names",
        "scale-lazy-calls",
        "call",
    ),
    "scale/lazy-calls-no-gc": _c(
        "plugyard execute(), N times, GC paused",
        "as `scale/lazy-calls`, with the cyclic garbage collector paused for the timed calls",
        "scale-lazy-calls-no-gc",
        "call",
    ),
    "scale/shutdown": _c(
        "plugyard shutdown()",
        "`manager.shutdown()` after `manager.load_all()` (not timed)",
        "scale-shutdown",
        "call",
    ),
    "scale/states": _c(
        "plugyard states()", "`manager.states()`, its first call", "scale-states", "call"
    ),
    "scale/candidates": _c(
        "plugyard candidates()",
        "`manager.candidates()`, its first call",
        "scale-candidates",
        "call",
    ),
    "scale/stevedore": _c(
        "stevedore ExtensionManager, installed",
        "`ExtensionManager(G, invoke_on_load=True)` over N synthetic installed distributions, "
        "cache warm: the entry points listed and N modules imported (as row "
        "4.load-all-no-import)",
        "scale-stevedore",
        "call",
    ),
}

_AFTER = "after the import, caches warm"
SCALING_CONTENDERS.update(
    {
        "scale/list": _c(
            "plugyard candidates()",
            f"`plugyard.PluginManager(group=G).candidates()` over N installed plugins, {_AFTER}",
            "scale-list",
            "call",
        ),
        "scale/list-stevedore": _c(
            "stevedore get_group_all()",
            f"`stevedore._cache.get_group_all(G)`, {_AFTER}",
            "scale-list-stevedore",
            "call",
        ),
        "scale/list-importlib": _c(
            "importlib.metadata",
            "`importlib.metadata.entry_points(group=G)`, after the import (no cache)",
            "scale-list-importlib",
            "call",
        ),
        "scale/first": _c(
            "plugyard execute()",
            f"`plugyard.PluginManager(group=G).execute(NAME, 42)`, {_AFTER}",
            "scale-first",
            "call",
        ),
        "scale/first-stevedore": _c(
            "stevedore DriverManager",
            f"`DriverManager(G, NAME, invoke_on_load=True).driver.execute(42)`, {_AFTER}",
            "scale-first-stevedore",
            "call",
        ),
        "scale/first-pluggy": _c(
            "pluggy",
            "`load_setuptools_entrypoints(G11, name=NAME)` and one hook call, after the import",
            "scale-first-pluggy",
            "call",
        ),
        "scale/all": _c(
            "plugyard load_all()",
            f"`plugyard.PluginManager(group=G).load_all()` over N installed plugins, {_AFTER}",
            "scale-all",
            "call",
        ),
        "scale/all-stevedore": _c(
            "stevedore ExtensionManager",
            f"`ExtensionManager(G, invoke_on_load=True)`, {_AFTER}",
            "scale-stevedore",
            "call",
        ),
        "scale/all-pluggy": _c(
            "pluggy",
            "`load_setuptools_entrypoints(G11)`, after the import",
            "scale-all-pluggy",
            "call",
        ),
        "scale/shutdown-installed": _c(
            "plugyard shutdown()",
            "`manager.shutdown()` after `manager.load_all()` (not timed) of N installed plugins",
            "scale-shutdown-installed",
            "call",
        ),
    }
)

SCALING_ROWS: list[Row] = [
    Row("7.register", "Register N plugins in code", "scale/register", ()),
    Row(
        "7.load-all",
        "Load all N registered plugins, no dependencies; stevedore loads N installed ones",
        "scale/load-all",
        ("scale/load-all-no-gc", "scale/stevedore"),
    ),
    Row(
        "7.load-all-tree",
        "Load all N registered plugins, each plugin i > 0 depending on plugin i // 2",
        "scale/load-all-tree",
        (),
    ),
    Row(
        "7.load-all-chain",
        "Load all N registered plugins, each plugin i > 0 depending on plugin i - 1",
        "scale/load-all-chain",
        (),
    ),
    Row(
        "7.lazy-calls",
        "Call each of N registered plugins once, each call loading its plugin",
        "scale/lazy-calls",
        ("scale/lazy-calls-no-gc",),
    ),
    Row("7.shutdown", "Shut down N active plugins", "scale/shutdown", ()),
    Row("7.states", "List the states of N registered plugins", "scale/states", ()),
    Row("7.candidates", "List N registered plugins as candidates", "scale/candidates", ()),
    # Issue 14: linear to N = 10,000 for listing, the first call, load_all and
    # shutdown of installed plugins; the peers beside them, for scale.
    Row(
        "7.list-installed",
        "List N installed plugins, caches warm, after the import",
        "scale/list",
        ("scale/list-stevedore", "scale/list-importlib"),
    ),
    Row(
        "7.first-call-installed",
        "The first call of one plugin among N installed, caches warm, after the import",
        "scale/first",
        ("scale/first-stevedore", "scale/first-pluggy"),
    ),
    Row(
        "7.load-all-installed",
        "Load all N installed plugins, caches warm, after the import",
        "scale/all",
        ("scale/all-stevedore", "scale/all-pluggy"),
    ),
    Row(
        "7.shutdown-installed",
        "Shut down N installed plugins, all loaded",
        "scale/shutdown-installed",
        (),
    ),
]

#: The rows issue 14 asks to be linear to N = 10,000, plotted with their peers.
INSTALLED_ROWS = [row for row in SCALING_ROWS if row.id.endswith("-installed")]
