"""The scaling rows: whether the lifecycle is linear in the number of plugins N."""

from __future__ import annotations

import snippets
from model import Contender, Probe, Row, _c

# 7. Scaling: whether the lifecycle is linear in N. Every figure is measured
# at every N of --scaling-n, in fresh processes capped by --scaling-timeout,
# and compared with itself at SCALING_BASE_N rather than with a peer: linear
# is N / SCALING_BASE_N times the figure there, and the limit is
# SCALING_SLACK times that (6x for 5x the plugins, 12x for 10x).
SCALING_N = (100, 1000, 5000, 10000)
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
]
