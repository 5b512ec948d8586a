"""Benchmark plugyard side by side with stevedore, pluggy and importlib.metadata.

Usage::

    python benchmarks/run.py [--n 100 1000] [--repeat 10] [--out benchmarks/results/latest.md]
    python benchmarks/run.py --only scaling [--scaling-n 100 1000 5000 10000]
    python benchmarks/run.py --only stevedore [--n 1000]

Everything runs in one go on one machine, and the table reports each figure
next to the same figure for the peers, as a ratio: absolute times say more
about the machine than about the code. What needs a fresh interpreter
(imports, listing, the first call, loading everything) is the median of
``--repeat`` fresh processes per contender, each timing itself (see
``snippets.py``); per-call overheads are the median of ``timeit`` samples in
one process (see ``percall.py``). The plugins are ``N`` synthetic installed
distributions in a temporary directory (see ``synth.py``). The signing rows
(section 6) use one signed distribution of about 60 modules instead, once
whatever ``N`` (see ``signing.py``). The scaling rows (section 7) compare
each figure with itself at another ``N`` instead of with a peer: whether the
lifecycle is linear in ``N``, for the ``N`` of ``--scaling-n``, each process
stopped after ``--scaling-timeout`` seconds. Section 8 (issue 11,
``STEVEDORE_ROWS``) compares ``plugyard.stevedore``'s managers with
stevedore's and judges the index against issue 11's targets; it is also run
alone with ``--only stevedore``, to ``results/stevedore.md``.

To add a row: add a contender (a probe and a phase from ``snippets.py``, or a
``percall.py`` key) to ``CONTENDERS`` and a :class:`Row` to ``ROWS``; for a
scaling row, a probe to ``SCALING_PROBES``, a contender to
``SCALING_CONTENDERS`` and a :class:`Row` to ``SCALING_ROWS``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import signing
import snippets
import synth

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_N = 1000  # the targets are set at this N


# -- what is measured ---------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A snippet run in fresh processes, and the state of the caches it runs with.

    ``cache`` is ``"cold"`` (a new, empty ``XDG_CACHE_HOME`` for every
    process), ``"warm"`` (one ``XDG_CACHE_HOME`` per probe, filled by an
    untimed first run), or ``"off"`` (cold, and ``PLUGYARD_NO_CACHE=1``).
    A probe without ``site`` runs with no synthetic distributions, once
    whatever ``N``; a ``signed`` one runs once, on the signed distribution
    of ``signing.py`` instead.
    """

    code: str
    cache: str = "warm"
    site: bool = True
    signed: bool = False


PROBES: dict[str, Probe] = {
    "import-plugyard": Probe(snippets.import_module("plugyard"), site=False),
    "import-stevedore": Probe(snippets.import_module("stevedore"), site=False),
    "import-pluggy": Probe(snippets.import_module("pluggy"), site=False),
    "list-plugyard-cold": Probe(snippets.LIST_PLUGYARD, cache="cold"),
    "list-plugyard-warm": Probe(snippets.LIST_PLUGYARD),
    "list-plugyard-off": Probe(snippets.LIST_PLUGYARD, cache="off"),
    "index-plugyard-cold": Probe(snippets.LIST_PLUGYARD_INDEX, cache="cold"),
    "index-plugyard-warm": Probe(snippets.LIST_PLUGYARD_INDEX),
    "list-importlib": Probe(snippets.LIST_IMPORTLIB, cache="cold"),
    "list-stevedore-cold": Probe(snippets.LIST_STEVEDORE, cache="cold"),
    "list-stevedore-warm": Probe(snippets.LIST_STEVEDORE),
    "first-plugyard": Probe(snippets.FIRST_CALL_PLUGYARD),
    "first-stevedore": Probe(snippets.FIRST_CALL_STEVEDORE),
    "first-pluggy": Probe(snippets.FIRST_CALL_PLUGGY),
    "all-plugyard": Probe(snippets.LOAD_ALL_PLUGYARD),
    "all-stevedore": Probe(snippets.LOAD_ALL_STEVEDORE),
    "all-pluggy": Probe(snippets.LOAD_ALL_PLUGGY),
    "first-sd-verified": Probe(snippets.FIRST_CALL_VERIFIED_DRIVER),
    "all-sd-plugyard": Probe(snippets.LOAD_ALL_STEVEDORE_PLUGYARD),
    "import-verified": Probe(snippets.VERIFIED_IMPORT, site=False, signed=True),
    "import-normal": Probe(snippets.NORMAL_IMPORT, site=False, signed=True),
}


@dataclass(frozen=True)
class Contender:
    """One figure: a phase of a probe, or a ``percall.py`` key.

    Attributes:
        label: How the table names it.
        how: What exactly is timed, for the legend.
        probe: The probe (fresh processes), or ``None`` for a figure timed
            in one process by ``script``.
        phase: The probe's phase (``import``, ``call``, ``total``) or the
            script's key.
        script: What times a figure without a probe: ``percall.py`` (per
            ``N``) or ``signing.py`` (once).
    """

    label: str
    how: str
    probe: str | None
    phase: str
    script: str = "percall.py"


def _c(
    label: str, how: str, probe: str | None, phase: str, script: str = "percall.py"
) -> Contender:
    return Contender(label, how, probe, phase, script)


_STEVEDORE_LIST = "`stevedore._cache.get_group_all(G)`"
_PLUGGY_FIRST = (
    '`pluggy.PluginManager("plugbench")`, `add_hookspecs(Spec)`, '
    "`load_setuptools_entrypoints(G11, name=NAME)`, `pm.hook.plugbench_execute(data=42)`"
)
_PLUGGY_ALL = (
    '`pluggy.PluginManager("plugbench")`, `add_hookspecs(Spec)`, `load_setuptools_entrypoints(G11)`'
)

CONTENDERS: dict[str, Contender] = {
    # 1. imports
    "import/plugyard": _c("`import plugyard`", "`import plugyard`", "import-plugyard", "import"),
    "import/stevedore": _c(
        "`import stevedore`", "`import stevedore`", "import-stevedore", "import"
    ),
    "import/pluggy": _c("`import pluggy`", "`import pluggy`", "import-pluggy", "import"),
    # 2. listing
    "list/plugyard-cold": _c(
        "candidates(), cache cold",
        "`plugyard.PluginManager(group=G).candidates()`, empty `XDG_CACHE_HOME`",
        "list-plugyard-cold",
        "call",
    ),
    "list/plugyard-warm": _c(
        "candidates(), cache warm",
        "`plugyard.PluginManager(group=G).candidates()`, cache written by an earlier process",
        "list-plugyard-warm",
        "call",
    ),
    "list/plugyard-off": _c(
        "candidates(), cache off",
        "`plugyard.PluginManager(group=G).candidates()` with `PLUGYARD_NO_CACHE=1`",
        "list-plugyard-off",
        "call",
    ),
    "list/index-cold": _c(
        "_discovery.entry_points(G), cache cold",
        "`plugyard._discovery.entry_points(G)` (internal: the index without the manager), "
        "empty `XDG_CACHE_HOME`",
        "index-plugyard-cold",
        "call",
    ),
    "list/index-warm": _c(
        "_discovery.entry_points(G), cache warm",
        "`plugyard._discovery.entry_points(G)`, cache written by an earlier process",
        "index-plugyard-warm",
        "call",
    ),
    "list/importlib": _c(
        "importlib.metadata",
        "`importlib.metadata.entry_points(group=G)` (keeps no cache across processes)",
        "list-importlib",
        "call",
    ),
    "list/stevedore-cold": _c(
        "stevedore, cache cold",
        f"{_STEVEDORE_LIST}, empty `XDG_CACHE_HOME` (what every stevedore manager "
        "calls to list; a manager's constructor would also load every plugin)",
        "list-stevedore-cold",
        "call",
    ),
    "list/stevedore-warm": _c(
        "stevedore, cache warm",
        f"{_STEVEDORE_LIST}, cache written by an earlier process",
        "list-stevedore-warm",
        "call",
    ),
    # 3. time to the first call, caches warm
    "first/plugyard": _c(
        "plugyard",
        "`import plugyard`; `plugyard.PluginManager(group=G).execute(NAME, 42)`",
        "first-plugyard",
        "total",
    ),
    "first/stevedore": _c(
        "stevedore DriverManager",
        "`from stevedore import DriverManager`; "
        "`DriverManager(G, NAME, invoke_on_load=True).driver.execute(42)`",
        "first-stevedore",
        "total",
    ),
    "first/pluggy": _c("pluggy", f"`import pluggy`; {_PLUGGY_FIRST}", "first-pluggy", "total"),
    "first-call/plugyard": _c(
        "plugyard",
        "`plugyard.PluginManager(group=G).execute(NAME, 42)`",
        "first-plugyard",
        "call",
    ),
    "first-call/stevedore": _c(
        "stevedore DriverManager",
        "`DriverManager(G, NAME, invoke_on_load=True).driver.execute(42)`",
        "first-stevedore",
        "call",
    ),
    "first-call/pluggy": _c("pluggy", _PLUGGY_FIRST, "first-pluggy", "call"),
    # 4. loading all N, caches warm
    "all/plugyard": _c(
        "plugyard load_all()",
        "`import plugyard`; `plugyard.PluginManager(group=G).load_all()`",
        "all-plugyard",
        "total",
    ),
    "all/stevedore": _c(
        "stevedore ExtensionManager",
        "`from stevedore import ExtensionManager`; `ExtensionManager(G, invoke_on_load=True)`",
        "all-stevedore",
        "total",
    ),
    "all/pluggy": _c("pluggy", f"`import pluggy`; {_PLUGGY_ALL}", "all-pluggy", "total"),
    "all-call/plugyard": _c(
        "plugyard load_all()",
        "`plugyard.PluginManager(group=G).load_all()`",
        "all-plugyard",
        "call",
    ),
    "all-call/stevedore": _c(
        "stevedore ExtensionManager",
        "`ExtensionManager(G, invoke_on_load=True)`",
        "all-stevedore",
        "call",
    ),
    "all-call/pluggy": _c("pluggy", _PLUGGY_ALL, "all-pluggy", "call"),
    # 5. per call (timeit, one process; the timeit loop's own cost subtracted)
    "call/direct": _c(
        "direct call", "`plugin.execute(x)` on the plugin's instance", None, "direct"
    ),
    "call/direct-bound": _c(
        "pre-bound method", "`execute(x)`, `execute = plugin.execute`", None, "direct-bound"
    ),
    "call/plugyard-handle": _c(
        "handle call, metrics off",
        "`handle.execute(x)`, `handle = manager.get(NAME)`, metrics off (see Method)",
        None,
        "plugyard-handle",
    ),
    "call/plugyard-handle-metrics": _c(
        "handle call, metrics on",
        "`handle.execute(x)`, `handle = manager.get(NAME)`, metrics on (see Method)",
        None,
        "plugyard-handle-metrics",
    ),
    "call/plugyard-execute": _c(
        "manager.execute, metrics off",
        "`manager.execute(NAME, x)`, metrics off (see Method)",
        None,
        "plugyard-execute",
    ),
    "call/plugyard-execute-metrics": _c(
        "manager.execute, metrics on",
        "`manager.execute(NAME, x)`, metrics on (see Method)",
        None,
        "plugyard-execute-metrics",
    ),
    "call/pluggy-hook": _c(
        "pluggy hook, 1 impl",
        "`pm.hook.plugbench_execute(data=x)` with one plugin registered",
        None,
        "pluggy-hook",
    ),
    "call/stevedore-driver": _c(
        "stevedore driver", "`mgr.driver.execute(x)` on a `DriverManager`", None, "stevedore-driver"
    ),
    "call/stevedore-call": _c(
        "stevedore mgr(func, x)",
        "`mgr(call, x)`, `call = lambda ext, data: ext.obj.execute(data)`",
        None,
        "stevedore-call",
    ),
    # 6. signing, on the signed distribution of signing.py
    "verify/plugyard": _c(
        "verify_distribution",
        "`verify_distribution(dist, keyring)`, `dist` the installed distribution as "
        "`importlib.metadata` finds it (timeit, one process)",
        None,
        "verify",
        "signing.py",
    ),
    "verify/bare": _c(
        "bare sha256 pass + 1 Ed25519 verify",
        "for each file of the signed manifest: `os.open`, `hashlib.sha256(os.read(...))` to "
        "the end, `os.close`; then one `Ed25519PublicKey.verify` of the signature "
        "(timeit, one process)",
        None,
        "bare",
        "signing.py",
    ),
    "verify/bare-open": _c(
        "bare pass with open()",
        "as the bare pass, each file read with `open(path, 'rb').read()` (timeit, one process)",
        None,
        "bare-open",
        "signing.py",
    ),
    "verify-single/plugyard": _c(
        "verify_distribution, 1 module",
        "`verify_distribution(dist, keyring)` of the one-module distribution (timeit, one process)",
        None,
        "verify",
        "signing.py",
    ),
    "verify-single/bare": _c(
        "bare pass, 1 module",
        "the bare pass over the one-module distribution's signed files, then one Ed25519 "
        "verify (timeit, one process)",
        None,
        "bare",
        "signing.py",
    ),
    "signed-import/verified": _c(
        "verified import",
        "`importer.add(result)`, `importer.install()`, `import sigbench` with a "
        "`VerifiedImporter` whose compiled-code cache an earlier process filled; "
        "`result` verified before the clock (fresh process)",
        "import-verified",
        "import",
    ),
    "signed-import/verified-total": _c(
        "verify + verified import",
        "`verify_distribution(dist, keyring)`, then the verified import (fresh process)",
        "import-verified",
        "total",
    ),
    "signed-import/normal": _c(
        "normal import",
        "`import sigbench` by the default import system, `__pycache__` written at install "
        "(fresh process)",
        "import-normal",
        "import",
    ),
    # 8. plugyard.stevedore and the index (issue 11)
    "sd-first/verified": _c(
        "verified DriverManager",
        "`from plugyard.stevedore import DriverManager` (and `TrustPolicy`, `Keyring`); "
        '`policy = TrustPolicy(mode="require", keyring=Keyring.from_directory(RING))`; '
        "`DriverManager(G, NAME, invoke_on_load=True, trust=policy).driver.execute(42)`: "
        "NAME's distribution signed, verified, imported by the `VerifiedImporter`",
        "first-sd-verified",
        "total",
    ),
    "sd-first-call/verified": _c(
        "verified DriverManager",
        "as above, after the imports",
        "first-sd-verified",
        "call",
    ),
    "sd-all/plugyard": _c(
        "plugyard.stevedore ExtensionManager, verification off",
        "`from plugyard.stevedore import ExtensionManager` (and `TrustPolicy`); "
        "`ExtensionManager(G, invoke_on_load=True, trust=TrustPolicy())`",
        "all-sd-plugyard",
        "total",
    ),
    "sd-all-call/plugyard": _c(
        "plugyard.stevedore ExtensionManager, verification off",
        "`ExtensionManager(G, invoke_on_load=True, trust=TrustPolicy())`",
        "all-sd-plugyard",
        "call",
    ),
    "keys/files": _c(
        "the key used: every file read",
        "`os.stat` of every `sys.path` entry, every `entry_points.txt` and `METADATA` read and "
        "every metadata directory without entry points, compared (what a warm read checks; "
        "timeit, one process)",
        None,
        "files",
        "cachekeys.py",
    ),
    "keys/entries": _c(
        "sys.path entries only",
        "`os.stat` of every `sys.path` entry: the key before issue 11, blind to edits in place "
        "and to files added to an installed distribution (timeit, one process)",
        None,
        "entries",
        "cachekeys.py",
    ),
    "keys/dirs": _c(
        "entries and metadata directories",
        "`os.stat` of every entry and every `.dist-info`/`.egg-info` directory: sees files "
        "added, removed or replaced, not edits in place (timeit, one process)",
        None,
        "dirs",
        "cachekeys.py",
    ),
    "keys/read": _c(
        "a whole warm read",
        "`_discovery.entry_points(G)` with the cache warm, in the same process: the check, "
        "the cache file, the entry points made (timeit, one process)",
        None,
        "read",
        "cachekeys.py",
    ),
}


@dataclass(frozen=True)
class Row:
    """A plugyard figure and the peers it is compared with, one table line per peer.

    Attributes:
        id: A stable name, ``section.what``.
        what: What is measured.
        plugyard: The plugyard contender.
        peers: The contenders it is divided by.
        targets: The issue's targets: the highest plugyard/peer ratio, by peer.
        per_n: Whether the figure depends on ``N`` (else it is measured once).
    """

    id: str
    what: str
    plugyard: str
    peers: tuple[str, ...]
    targets: Mapping[str, float] = field(default_factory=dict)
    per_n: bool = True


ROWS: list[Row] = [
    Row(
        "1.import",
        "Import the framework (fresh process)",
        "import/plugyard",
        ("import/stevedore", "import/pluggy"),
        targets={"import/stevedore": 0.5},
        per_n=False,
    ),
    Row(
        "2.list-cold",
        "List the group, every cache cold (fresh process, import not timed)",
        "list/plugyard-cold",
        ("list/importlib", "list/stevedore-cold"),
        targets={"list/importlib": 1.0},
    ),
    Row(
        "2.list-warm",
        "List the group, caches warm (fresh process, import not timed)",
        "list/plugyard-warm",
        ("list/stevedore-warm", "list/importlib"),
        targets={"list/stevedore-warm": 0.5},
    ),
    Row(
        "2.list-off",
        "List the group, plugyard's cache off (fresh process, import not timed)",
        "list/plugyard-off",
        ("list/importlib", "list/stevedore-cold"),
    ),
    Row(
        "2.index-cold",
        "plugyard's index alone, cache cold (fresh process, import not timed)",
        "list/index-cold",
        ("list/importlib", "list/stevedore-cold"),
    ),
    Row(
        "2.index-warm",
        "plugyard's index alone, cache warm (fresh process, import not timed)",
        "list/index-warm",
        ("list/stevedore-warm", "list/importlib"),
    ),
    Row(
        "3.first-call",
        "Time to the first call of one plugin among N, import included (fresh process)",
        "first/plugyard",
        ("first/stevedore", "first/pluggy"),
        targets={"first/stevedore": 0.2},
    ),
    Row(
        "3.first-call-no-import",
        "Time to the first call of one plugin among N, after the import (fresh process)",
        "first-call/plugyard",
        ("first-call/stevedore", "first-call/pluggy"),
    ),
    Row(
        "4.load-all",
        "Load all N plugins, import included (fresh process)",
        "all/plugyard",
        ("all/stevedore", "all/pluggy"),
    ),
    Row(
        "4.load-all-no-import",
        "Load all N plugins, after the import (fresh process)",
        "all-call/plugyard",
        ("all-call/stevedore", "all-call/pluggy"),
    ),
    Row(
        "5.handle",
        "Per call: a plugyard handle, metrics off",
        "call/plugyard-handle",
        ("call/direct", "call/direct-bound", "call/stevedore-driver", "call/pluggy-hook"),
        targets={"call/direct": 2.0},
    ),
    Row(
        "5.handle-metrics",
        "Per call: a plugyard handle, metrics on",
        "call/plugyard-handle-metrics",
        ("call/direct", "call/pluggy-hook"),
    ),
    Row(
        "5.execute",
        "Per call: `manager.execute(name, x)`, metrics off",
        "call/plugyard-execute",
        ("call/pluggy-hook", "call/stevedore-driver", "call/stevedore-call", "call/direct"),
    ),
    Row(
        "5.execute-metrics",
        "Per call: `manager.execute(name, x)`, metrics on",
        "call/plugyard-execute-metrics",
        ("call/pluggy-hook", "call/direct"),
        targets={"call/pluggy-hook": 0.3},
    ),
]

# 6. Signing: on one signed distribution of about 60 modules (signing.py),
# whatever N. The import target is about the import: "6.import" is the
# verified import alone, "6.import-verify" adds the verification before it.
SIGNING_ROWS: list[Row] = [
    Row(
        "6.verify",
        "Verify one installed, signed distribution of about 60 modules (one process)",
        "verify/plugyard",
        ("verify/bare", "verify/bare-open"),
        targets={"verify/bare": 2.0},
        per_n=False,
    ),
    Row(
        "6.verify-1",
        "Verify an installed, signed distribution of one module: the fixed cost (one process)",
        "verify-single/plugyard",
        ("verify-single/bare",),
        per_n=False,
    ),
    Row(
        "6.import",
        "Import a signed package of about 60 modules through the VerifiedImporter, "
        "compiled-code cache warm, verification not timed (fresh process)",
        "signed-import/verified",
        ("signed-import/normal",),
        targets={"signed-import/normal": 1.1},
        per_n=False,
    ),
    Row(
        "6.import-verify",
        "Verify, then import, the signed package; caches warm (fresh process)",
        "signed-import/verified-total",
        ("signed-import/normal",),
        per_n=False,
    ),
]
ROWS += SIGNING_ROWS

# 8. Issue 11: plugyard.stevedore, and the index now that it gives
# importlib.metadata's answers and checks every file it was read from. Its
# own section of the report, with its own targets, at N=1000.
STEVEDORE_ROWS: list[Row] = [
    Row(
        "8.list-cold",
        "List the group, every cache cold (fresh process, import not timed)",
        "list/plugyard-cold",
        ("list/importlib", "list/stevedore-cold"),
        targets={"list/importlib": 0.8},
    ),
    Row(
        "8.index-cold",
        "plugyard's index alone, cache cold (fresh process, import not timed)",
        "list/index-cold",
        ("list/importlib",),
    ),
    Row(
        "8.list-warm",
        "List the group, caches warm (fresh process, import not timed)",
        "list/plugyard-warm",
        ("list/stevedore-warm",),
        targets={"list/stevedore-warm": 0.4},
    ),
    Row(
        "8.index-warm",
        "plugyard's index alone, cache warm (fresh process, import not timed)",
        "list/index-warm",
        ("list/stevedore-warm",),
    ),
    Row(
        "8.driver-first",
        "A verified DriverManager's first call against stevedore's unverified one, caches "
        "warm, imports included (fresh process)",
        "sd-first/verified",
        ("first/stevedore",),
        targets={"first/stevedore": 1.1},
    ),
    Row(
        "8.driver-first-no-import",
        "The same, after the imports (fresh process)",
        "sd-first-call/verified",
        ("first-call/stevedore",),
        targets={"first-call/stevedore": 1.1},
    ),
    Row(
        "8.extension-all",
        "ExtensionManager loading all N, verification off, against stevedore's, caches warm, "
        "imports included (fresh process)",
        "sd-all/plugyard",
        ("all/stevedore",),
        targets={"all/stevedore": 1.1},
    ),
    Row(
        "8.extension-all-no-import",
        "The same, after the imports (fresh process)",
        "sd-all-call/plugyard",
        ("all-call/stevedore",),
        targets={"all-call/stevedore": 1.1},
    ),
    Row(
        "8.cache-key",
        "Checking the index cache: the key used against cheaper ones, and a whole warm read "
        "(one process)",
        "keys/files",
        ("keys/entries", "keys/dirs", "keys/read"),
    ),
]


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


# -- running ---------------------------------------------------------------


_BENCH_LINE = re.compile(r"^BENCH (?P<fields>.*)$", re.MULTILINE)
# Variables that would change what a child measures (PYTHONPATH and
# PYTHONHOME are kept: they may be how plugyard itself is found).
_CLEAR_ENV = ("PYTHON", "PLUGYARD_", "COV_CORE_", "COVERAGE_")
# PLUGYARD_BENCH_ANY_CACHE: the smoke tests let stevedore probes run with its cache off.
_KEEP_ENV = ("PYTHONPATH", "PYTHONHOME", "PLUGYARD_BENCH_ANY_CACHE")


class BenchmarkError(RuntimeError):
    """A child process failed or printed no figures."""


@dataclass
class Bench:
    """The state of one run: options, the temporary tree, and the samples in ns."""

    repeat: int
    min_time: float
    tmp: Path
    samples: dict[tuple[str, int | None], list[float]] = field(default_factory=dict)
    loop_ns: float = 0.0  # the empty timeit loop, per iteration
    metrics_switch: str = "not measured"  # how percall.py turned metrics on and off
    signed: signing.SignedSite | None = None  # the signing rows' distribution, once built
    single: signing.SignedSite | None = None  # the one-module distribution of row 6.verify-1
    scaling_repeat: int = 5
    scaling_timeout: float = 120.0  # seconds, per process
    # Scaling probes that ran no figure at an N: "timed out", or "not run" after that.
    capped: dict[tuple[str, int], str] = field(default_factory=dict)
    sites: dict[int, synth.Site] = field(default_factory=dict)  # by N, built once per run
    # By N: how many paths each cache key checks (cachekeys.py).
    key_counts: dict[int, list[int]] = field(default_factory=dict)

    def env(self, cache_home: Path, site: Path | None, *, no_cache: bool = False) -> dict[str, str]:
        """A child's environment: ours without what would change its figures."""
        env = {
            k: v for k, v in os.environ.items() if k in _KEEP_ENV or not k.startswith(_CLEAR_ENV)
        }
        env["XDG_CACHE_HOME"] = str(cache_home)
        if site is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        if no_cache:
            env["PLUGYARD_NO_CACHE"] = "1"
        return env

    def cwd(self) -> Path:
        """An empty working directory: ``-c`` puts it first on ``sys.path``."""
        path = self.tmp / "cwd"
        path.mkdir(exist_ok=True)
        return path


def _run(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(
        argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    found = _BENCH_LINE.findall(proc.stdout)
    if proc.returncode != 0 or not found:
        raise BenchmarkError(
            f"{argv[1][:60]!r}... exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return str(found[-1])


Target = synth.Site | signing.SignedSite | None


def _run_probe(bench: Bench, key: str, site: Target) -> dict[str, int]:
    probe = PROBES[key]
    n = site.n if isinstance(site, synth.Site) else 0
    if probe.cache == "warm":
        cache_home = bench.tmp / "warm" / f"{key}-{n}"
        cache_home.mkdir(parents=True, exist_ok=True)
    else:
        (bench.tmp / "cold").mkdir(exist_ok=True)
        cache_home = Path(tempfile.mkdtemp(dir=bench.tmp / "cold"))
    if isinstance(site, signing.SignedSite):
        argv = [sys.executable, "-c", probe.code, *site.argv()]
    else:
        names = [site.middle, str(site.n)] if site is not None else ["", "0"]
        if site is not None and site.keyring is not None:
            names.append(str(site.keyring))
        argv = [sys.executable, "-c", probe.code, synth.GROUP, synth.PLUGGY_GROUP, *names]
    env = bench.env(
        cache_home, site.path if site is not None else None, no_cache=probe.cache == "off"
    )
    try:
        line = _run(argv, env, bench.cwd())
    finally:
        if probe.cache != "warm":
            shutil.rmtree(cache_home, ignore_errors=True)
    return _fields(line)


def _fields(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in line.split())}


def run_probes(bench: Bench, keys: Iterable[str], site: Target) -> None:
    """Run each probe once untimed, then ``repeat`` rounds in a shuffled order.

    The untimed run writes the warm caches and warms the OS's and Python's
    own (``.pyc``, page cache); rounds spread a slow spell of the machine
    over every contender.
    """
    keys = sorted(set(keys))
    if not keys:
        return
    n = site.n if isinstance(site, synth.Site) else None
    what = "signed" if isinstance(site, signing.SignedSite) else f"N={n or '-'}"
    for key in keys:
        _run_probe(bench, key, site)
    results: dict[str, list[dict[str, int]]] = {key: [] for key in keys}
    for round_ in range(bench.repeat):
        _progress(f"{what}: fresh processes, round {round_ + 1}/{bench.repeat}")
        order = list(keys)
        random.Random(round_).shuffle(order)
        for key in order:
            sample = _run_probe(bench, key, site)
            if not sample.get("warm", 1):
                raise BenchmarkError(f"{key}: a cache meant to be warm was written in a timed run")
            results[key].append(sample)
    for name, contender in CONTENDERS.items():
        if contender.probe in results:
            phases = results[contender.probe]
            bench.samples[name, n] = [float(p[contender.phase]) for p in phases]


def run_percall(bench: Bench, keys: Iterable[str], site: synth.Site) -> None:
    """Time the per-call contenders in one child process; subtract the empty loop."""
    _progress(f"N={site.n}: per-call timings")
    argv = [
        sys.executable,
        str(HERE / "percall.py"),
        synth.GROUP,
        synth.PLUGGY_GROUP,
        site.middle,
        "--repeat",
        str(bench.repeat),
        "--min-time",
        str(bench.min_time),
    ]
    cache_home = Path(tempfile.mkdtemp(dir=bench.tmp))
    line = _run(argv, bench.env(cache_home, site.path), bench.cwd())
    output = json.loads(line)
    samples: dict[str, list[float]] = output["samples"]
    bench.metrics_switch = output["metrics"]
    loop = statistics.median(samples["empty"])
    bench.loop_ns = loop
    for name in keys:
        phase = CONTENDERS[name].phase
        bench.samples[name, site.n] = [s - loop for s in samples[phase]]


def run_signing(bench: Bench, keys: Iterable[str], signed: signing.SignedSite) -> None:
    """Time the in-process signing contenders (``signing.py``) in one child process per site.

    The ``verify-single/`` contenders are timed on :attr:`Bench.single`, the rest on ``signed``.
    """
    keys = list(keys)
    single = [k for k in keys if k.startswith("verify-single/")]
    if single:
        if bench.single is None:
            bench.single = signing.make_signed_site(bench.tmp / "single", single=True)
        _run_signing(bench, single, bench.single)
    _run_signing(bench, [k for k in keys if k not in single], signed)


def _run_signing(bench: Bench, keys: Sequence[str], signed: signing.SignedSite) -> None:
    if not keys:
        return
    _progress(f"signed: verify_distribution vs a bare pass, {signed.path.parent.name}")
    argv = [
        sys.executable,
        str(HERE / "signing.py"),
        str(signed.path),
        str(signed.keyring),
        "--repeat",
        str(bench.repeat),
        "--min-time",
        str(bench.min_time),
    ]
    cache_home = Path(tempfile.mkdtemp(dir=bench.tmp))
    samples: dict[str, list[float]] = json.loads(
        _run(argv, bench.env(cache_home, None), bench.cwd())
    )["samples"]
    for name in keys:
        bench.samples[name, None] = samples[CONTENDERS[name].phase]


def run_cachekeys(bench: Bench, keys: Iterable[str], site: synth.Site) -> None:
    """Time what checking the index cache costs (``cachekeys.py``) in one child process."""
    _progress(f"N={site.n}: the index cache's keys, in one process")
    argv = [
        sys.executable,
        str(HERE / "cachekeys.py"),
        synth.GROUP,
        "--repeat",
        str(bench.repeat),
        "--min-time",
        str(bench.min_time),
    ]
    cache_home = Path(tempfile.mkdtemp(dir=bench.tmp))
    output = json.loads(_run(argv, bench.env(cache_home, site.path), bench.cwd()))
    bench.key_counts[site.n] = output["counts"]
    for name in keys:
        bench.samples[name, site.n] = output["samples"][CONTENDERS[name].phase]


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def measure(bench: Bench, ns: Sequence[int], rows: Sequence[Row] | None = None) -> None:
    """Measure every contender ``rows`` name (all rows by default): once, or per N."""
    rows = [*ROWS, *STEVEDORE_ROWS] if rows is None else rows
    used = {key for row in rows for key in (row.plugyard, *row.peers)}
    unknown = used - set(CONTENDERS)
    assert not unknown, f"rows name unknown contenders: {sorted(unknown)}"
    probes = {p for p in (CONTENDERS[k].probe for k in used) if p is not None}
    once = {p for p in probes if not PROBES[p].site and not PROBES[p].signed}
    signed_probes = {p for p in probes if PROBES[p].signed}
    in_process = [k for k in used if CONTENDERS[k].probe is None]
    signed_keys = [k for k in in_process if CONTENDERS[k].script == "signing.py"]
    percall = [k for k in in_process if CONTENDERS[k].script == "percall.py"]
    cachekeys = [k for k in in_process if CONTENDERS[k].script == "cachekeys.py"]
    run_probes(bench, once, None)
    if signed_probes or signed_keys:
        started = time.monotonic()
        bench.signed = signing.make_signed_site(bench.tmp / "signed")
        run_probes(bench, signed_probes, bench.signed)
        if signed_keys:
            run_signing(bench, signed_keys, bench.signed)
        _progress(f"signed: {time.monotonic() - started:.0f} s")
    for n in ns:
        started = time.monotonic()
        site = _site(bench, n)
        run_probes(bench, probes - once - signed_probes, site)
        if percall:
            run_percall(bench, percall, site)
        if cachekeys:
            run_cachekeys(bench, cachekeys, site)
        _progress(f"N={n}: {time.monotonic() - started:.0f} s")


def _site(bench: Bench, n: int) -> synth.Site:
    """The synthetic site of ``n`` distributions, written on first use."""
    site = bench.sites.get(n)
    if site is None:
        made = synth.make_site(bench.tmp / f"site-{n}", n)
        # The middle distribution is signed, for the verified DriverManager (row 8).
        site = bench.sites[n] = synth.sign_middle(made, bench.tmp / f"signer-{n}")
    return site


def _run_scaling_probe(bench: Bench, key: str, site: synth.Site) -> dict[str, int] | None:
    """One fresh process of a scaling probe, or ``None`` (recorded) if it ran past the cap."""
    probe = SCALING_PROBES[key]
    cache_home = bench.tmp / "warm" / f"{key}-{site.n}"
    cache_home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", probe.code, synth.GROUP, synth.PLUGGY_GROUP, site.middle]
    env = bench.env(cache_home, site.path if probe.site else None)
    try:
        line = _run([*argv, str(site.n)], env, bench.cwd(), bench.scaling_timeout)
    except subprocess.TimeoutExpired:
        _progress(f"scaling N={site.n}: {key} ran past {bench.scaling_timeout:g} s")
        bench.capped[key, site.n] = "timed out"
        return None
    return _fields(line)


def run_scaling(bench: Bench, ns: Sequence[int]) -> None:
    """Run every scaling probe at every N: once untimed, then in shuffled rounds.

    The untimed runs go smallest N first. The rounds mix every N, so that a
    slow spell of the machine spreads over the N a ratio compares instead of
    landing on one of them. A probe whose process runs past the cap gets no
    figure at that N (one slow process is enough: its median could be past
    the cap too), and none at a larger N, where it would only be slower: it
    is not run there (again).
    """
    ns = sorted(set(ns))
    keys = sorted({_scaling_probe(key) for key in _scaling_keys()})
    started = time.monotonic()

    def attempt(key: str, n: int) -> dict[str, int] | None:
        sample = _run_scaling_probe(bench, key, _site(bench, n))
        if sample is None:
            for m in ns:
                if m > n and (key, m) not in bench.capped:
                    bench.capped[key, m] = "not run"
        return sample

    for n in ns:
        for key in keys:
            if (key, n) not in bench.capped:
                attempt(key, n)
        _progress(f"scaling N={n}: untimed runs done at {time.monotonic() - started:.0f} s")
    results: dict[tuple[str, int], list[dict[str, int]]] = {}
    for round_ in range(bench.scaling_repeat):
        order = [(key, n) for n in ns for key in keys if (key, n) not in bench.capped]
        if not order:
            break
        _progress(f"scaling: fresh processes, round {round_ + 1}/{bench.scaling_repeat}")
        random.Random(round_).shuffle(order)
        for key, n in order:
            if (key, n) in bench.capped:  # capped earlier in this round
                continue
            sample = attempt(key, n)
            if sample is not None:
                results.setdefault((key, n), []).append(sample)
    for name in _scaling_keys():
        contender = SCALING_CONTENDERS[name]
        for n in ns:
            phases = results.get((_scaling_probe(name), n))
            if phases and (_scaling_probe(name), n) not in bench.capped:
                bench.samples[name, n] = [float(p[contender.phase]) for p in phases]
    _progress(f"scaling: {time.monotonic() - started:.0f} s")


def _scaling_probe(key: str) -> str:
    """The probe a scaling contender's figure comes from."""
    probe = SCALING_CONTENDERS[key].probe
    assert probe is not None, f"{key} names no probe"
    return probe


def _scaling_keys() -> list[str]:
    """The scaling contenders, in the order of the table."""
    return [key for row in SCALING_ROWS for key in (row.plugyard, *row.peers)]


# -- the report ---------------------------------------------------------------


def _unit(ns: float) -> tuple[str, float]:
    """The unit that suits a duration in ns, and its size in ns."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return unit, scale
    return "ns", 1.0


def fmt_time(ns: float) -> str:
    """A duration in ns, in the unit that suits it, to three significant digits."""
    unit, scale = _unit(ns)
    return f"{ns / scale:.3g} {unit}"


def _cell(samples: Sequence[float]) -> str:
    median = statistics.median(samples)
    mad = statistics.median(abs(s - median) for s in samples)
    spread = f" ±{100 * mad / median:.0f}%" if median > 0 else ""
    return f"{fmt_time(median)}{spread}"


def _verdict(ratio: float, target: float | None, n: int | None) -> str:
    if target is None:
        return ""
    if n is not None and n != TARGET_N:
        return f"≤ {target:g}x (at N={TARGET_N})"
    return f"≤ {target:g}x **{'met' if ratio <= target else 'missed'}**"


@dataclass(frozen=True)
class Line:
    """One table line: a plugyard figure against one peer at one N."""

    row: Row
    n: int | None
    peer: str
    mine: list[float]
    theirs: list[float]

    @property
    def ratio(self) -> float:
        """The median of plugyard's samples over the peer's."""
        return statistics.median(self.mine) / statistics.median(self.theirs)

    @property
    def target(self) -> float | None:
        """The issue's highest ratio for this pair, if it sets one."""
        return self.row.targets.get(self.peer)


def lines(bench: Bench, ns: Sequence[int], rows: Sequence[Row] | None = None) -> list[Line]:
    """Every table line of ``rows`` (the main rows by default), by N, peers in order."""
    found = []
    for row in ROWS if rows is None else rows:
        for n in ns if row.per_n else [None]:
            for peer in row.peers:
                mine, theirs = bench.samples[row.plugyard, n], bench.samples[peer, n]
                found.append(Line(row, n, peer, mine, theirs))
    return found


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match[1].strip() if match else platform.processor() or "unknown"


def _git_revision() -> str:
    try:
        proc = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip()


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    return {
        "Date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "Platform": platform.platform(),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} CPUs",
        "Python": f"{platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable})",
        "plugyard": f"{_version('plugyard')} (git {_git_revision()})",
        "stevedore": _version("stevedore"),
        "pluggy": _version("pluggy"),
        "Load average (1, 5, 15 min) at start": _loadavg(),
    }


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _header(
    title: str, info: Mapping[str, str], wall: float, argv: Sequence[str], per_figure: str
) -> list[str]:
    """The title and what the figures were measured on, how, and for how long."""
    out = [f"# {title}", ""]
    out += [f"- **{key}**: {value}" for key, value in info.items()]
    return [
        *out,
        f"- **Load average at end**: {_loadavg()}",
        f"- **Command**: `python benchmarks/run.py {' '.join(argv)}`",
        f"- **Wall time**: {wall:.0f} s; {per_figure}",
        "",
    ]


def report(
    bench: Bench,
    ns: Sequence[int],
    info: Mapping[str, str],
    wall: float,
    argv: Sequence[str],
    scaling_ns: Sequence[int] = (),
) -> str:
    """The Markdown report: every row, then the scaling rows at ``scaling_ns`` if any."""
    found = lines(bench, ns)
    per_figure = f"{bench.repeat} fresh processes (or timeit samples) per figure"
    if scaling_ns:
        per_figure += f", {bench.scaling_repeat} fresh processes per scaling figure"
    out = _header("plugyard benchmarks", info, wall, argv, per_figure)
    out += [
        "Figures are medians, ± the median absolute deviation. They are noisy: the machine "
        "may be shared, and only the ratios, measured side by side in one run, are meant "
        "to be compared across machines.",
        "",
        f"## Targets (issue 6, at N={TARGET_N})",
        "",
        "| target | plugyard / peer | |",
        "| --- | ---: | --- |",
    ]
    targeted = [line for line in found if line.target is not None]
    for line in targeted:
        if line.n not in (None, TARGET_N):
            continue
        mine, theirs = CONTENDERS[line.row.plugyard], CONTENDERS[line.peer]
        verdict = "met" if line.ratio <= (line.target or 0) else "missed"
        out.append(
            f"| {line.row.id}: {mine.label} ≤ {line.target:g}x {theirs.label} "
            f"| {line.ratio:.2f}x | **{verdict}** |"
        )
    if TARGET_N not in ns and any(row.per_n and row.targets for row in ROWS):
        out.append(f"| (N={TARGET_N} was not in this run; targets at other N are not judged) | | |")
    out += [
        "",
        "## Results",
        "",
        "| row | N | plugyard | median | peer | median | plugyard / peer | target |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for line in found:
        mine, theirs = CONTENDERS[line.row.plugyard], CONTENDERS[line.peer]
        out.append(
            f"| {line.row.id} | {line.n if line.n is not None else 'any'} "
            f"| {_escape(mine.label)} | {_cell(line.mine)} "
            f"| {_escape(theirs.label)} | {_cell(line.theirs)} "
            f"| {line.ratio:.2f}x | {_verdict(line.ratio, line.target, line.n)} |"
        )
    out += ["", "## Rows", ""]
    out += [f"- **{row.id}**: {row.what}" for row in ROWS]
    out += ["", "## What each figure times", ""]
    shown = {key for row in ROWS for key in (row.plugyard, *row.peers)}
    for key, contender in CONTENDERS.items():
        if key in shown:
            out.append(f"- **{key}** ({_escape(contender.label)}): {contender.how}")
    out += [
        "",
        "## Method",
        "",
        f"- The plugins are N synthetic installed distributions in a temporary directory on "
        f"`PYTHONPATH`, each with one module `pkgNNN.py` and two entry points: "
        f"`[{synth.GROUP}] pluginNNN = pkgNNN:Plugin` (G, for plugyard and stevedore) and "
        f"`[{synth.PLUGGY_GROUP}] pluginNNN = pkgNNN` (G11, a module with a pluggy hook "
        "implementation, as `pytest11` plugins are). The modules import nothing and are "
        "byte-compiled beforehand. The environment's own distributions are on `sys.path` too, "
        "as for any application.",
        "- NAME is the plugin in the middle of the N.",
        "- Fresh-process figures: `python -c SNIPPET` (see `benchmarks/snippets.py`); the "
        "child times itself with `time.perf_counter_ns` and imports nothing before the clock "
        "starts. Every probe runs once untimed first (writing the warm caches and `.pyc` "
        "files, warming the page cache), then in rounds, in a shuffled order per round. "
        "Import rows run without the synthetic site.",
        "- Cache cold: a new, empty `XDG_CACHE_HOME` per process, which both plugyard "
        "(`plugyard/entry-points`) and stevedore (`python-entrypoints`) keep their caches in; "
        "it does not mean the OS page cache or `.pyc` files are cold. Warm: an "
        "`XDG_CACHE_HOME` written by the untimed run. Rows 3 and 4 run with warm caches.",
        "- stevedore's listing is `stevedore._cache.get_group_all(G)`: what "
        "`ExtensionManager.list_entry_points()` calls and what every stevedore manager "
        "lists with. stevedore offers no public listing that loads nothing: its managers "
        "load every (or every named) plugin in their constructor; `list_entry_points()`'s "
        "class-level memo matters only within one process.",
        "- pluggy loads one plugin for row 3 (`load_setuptools_entrypoints(G11, name=NAME)`), "
        "as plugyard and stevedore import only the one asked for.",
        "- Per-call figures: `benchmarks/percall.py`, `timeit` in one process, each sample "
        f"at least {bench.min_time:g} s of calls; the cost of the empty `timeit` loop "
        f"({fmt_time(bench.loop_ns)} per iteration) is subtracted.",
        f"- Metrics on and off in rows 5: {bench.metrics_switch}. Rows 2 to 4 use the "
        "manager's defaults, as a user who does not choose would.",
    ]
    if sys.executable.startswith("/tmp"):  # noqa: S108 - stevedore's own test
        out.append(
            "- **Warning**: the interpreter is under /tmp, where stevedore turns its cache "
            "off: its warm rows are cold."
        )
    out += ["", "## 6. Signing", "", *_signing_method(bench.signed), ""]
    out += [*stevedore_section(bench, ns), ""]
    if scaling_ns:
        out += [*scaling_section(bench, scaling_ns), ""]
    return "\n".join(out)


def stevedore_section(bench: Bench, ns: Sequence[int]) -> list[str]:
    """Section 8: plugyard.stevedore and the index, with the targets of issue 11."""
    found = lines(bench, ns, STEVEDORE_ROWS)
    out = [
        "## 8. stevedore and the index (issue 11)",
        "",
        f"### Targets (issue 11, at N={TARGET_N})",
        "",
        "| target | plugyard / peer | |",
        "| --- | ---: | --- |",
    ]
    for line in found:
        if line.target is None or line.n not in (None, TARGET_N):
            continue
        mine, theirs = CONTENDERS[line.row.plugyard], CONTENDERS[line.peer]
        verdict = "met" if line.ratio <= line.target else "missed"
        out.append(
            f"| {line.row.id}: {_escape(mine.label)} ≤ {line.target:g}x {_escape(theirs.label)} "
            f"| {line.ratio:.2f}x | **{verdict}** |"
        )
    if TARGET_N not in ns:
        out.append(f"| (N={TARGET_N} was not in this run; targets at other N are not judged) | | |")
    out += [
        "",
        "### Results",
        "",
        "| row | N | plugyard | median | peer | median | plugyard / peer | target |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for line in found:
        mine, theirs = CONTENDERS[line.row.plugyard], CONTENDERS[line.peer]
        out.append(
            f"| {line.row.id} | {line.n if line.n is not None else 'any'} "
            f"| {_escape(mine.label)} | {_cell(line.mine)} "
            f"| {_escape(theirs.label)} | {_cell(line.theirs)} "
            f"| {line.ratio:.2f}x | {_verdict(line.ratio, line.target, line.n)} |"
        )
    out += ["", *(f"- **{row.id}**: {row.what}" for row in STEVEDORE_ROWS), ""]
    shown = {key for row in STEVEDORE_ROWS for key in (row.plugyard, *row.peers)}
    out += [
        f"- **{key}** ({_escape(contender.label)}): {contender.how}"
        for key, contender in CONTENDERS.items()
        if key in shown
    ]
    counts = ", ".join(
        f"N={n}: {a} entries, {b} with the metadata directories, {c} for the key used"
        for n, (a, b, c) in sorted(bench.key_counts.items())
    )
    out += [
        "",
        "- The same synthetic site as rows 2 to 4, its middle distribution reinstalled from a "
        "signed wheel (`synth.sign_middle`: `plugyard.trust.sign_wheel`, a fresh key, the "
        "`installer` library). The verified DriverManager runs under "
        '`TrustPolicy(mode="require")` with a keyring trusting that key: the driver is '
        "verified and imported from the verified bytes (each process checks its loader); the "
        "other N - 1 distributions are unsigned and never verified. stevedore's DriverManager "
        "and ExtensionManager are unverified, their cache warm.",
        "- Rows 8.driver-first and 8.extension-all are judged with the imports in the clock "
        "and, in their no-import rows, without: `plugyard.stevedore` imports stevedore and "
        "plugyard (the verified driver also `plugyard.trust` and cryptography), stevedore "
        "itself only.",
        "- stevedore turns its cache off when the interpreter is under `/tmp` or a `.disable` "
        "file is in its cache directory; every stevedore probe checks after the clock that it "
        "was on, and fails otherwise.",
        "- Rows 8.list-* and 8.index-* repeat the figures of rows 2.*, judged against issue "
        "11's targets; the listing now gives `importlib.metadata`'s answers and its cache "
        "checks every file it was read from.",
        f"- Row 8.cache-key: `benchmarks/cachekeys.py`, `timeit` in one process; paths "
        f"checked: {counts or 'not measured'}. The cheaper keys miss edits in place "
        "(`entries` also misses files added to an installed distribution); the key used "
        "costs its extra `stat` calls on every warm read.",
    ]
    return out


def stevedore_report(
    bench: Bench, ns: Sequence[int], info: Mapping[str, str], wall: float, argv: Sequence[str]
) -> str:
    """The Markdown report of section 8 run alone."""
    per_figure = f"{bench.repeat} fresh processes (or timeit samples) per figure"
    out = _header("plugyard benchmarks: stevedore and the index", info, wall, argv, per_figure)
    return "\n".join([*out, *stevedore_section(bench, ns), ""])


def scaling_report(
    bench: Bench, ns: Sequence[int], info: Mapping[str, str], wall: float, argv: Sequence[str]
) -> str:
    """The Markdown report of a run of the scaling rows alone."""
    per_figure = f"{bench.scaling_repeat} fresh processes per figure"
    out = _header("plugyard benchmarks: scaling", info, wall, argv, per_figure)
    return "\n".join([*out, *scaling_section(bench, ns), ""])


def _scaling_cell(bench: Bench, key: str, n: int) -> str:
    """The median of a scaling figure at ``n``, with its range, in one unit."""
    capped = bench.capped.get((_scaling_probe(key), n))
    if capped == "not run":
        return "not run"
    if capped is not None:
        return f"> {fmt_time(bench.scaling_timeout * 1e9)}"
    samples = bench.samples[key, n]
    unit, scale = _unit(statistics.median(samples))

    def digits(ns: float) -> str:
        value = ns / scale  # three digits, without the exponent .3g would give 999.5
        return f"{value:.3g}" if value < 999.5 else f"{value:.0f}"

    return (
        f"{digits(statistics.median(samples))} {unit} "
        f"({digits(min(samples))}-{digits(max(samples))})"
    )


def _scaling_limit(n: int, base: int) -> float:
    """The highest figure at ``n`` over the figure at ``base`` that still counts as linear."""
    return SCALING_SLACK * n / base


def _scaling_ratio(bench: Bench, key: str, n: int, base: int) -> str:
    """The figure at ``n`` over the figure at ``base``, judged against the limit."""
    probe = _scaling_probe(key)
    if (probe, base) in bench.capped:
        return "n/a"
    below = statistics.median(bench.samples[key, base])
    limit = _scaling_limit(n, base)
    if (probe, n) in bench.capped:  # at least the cap over the figure at base
        ratio = bench.scaling_timeout * 1e9 / below
        return f"> {ratio:.2f}x" + (" **missed**" if ratio > limit else "")
    ratio = statistics.median(bench.samples[key, n]) / below
    return f"{ratio:.2f}x **{'met' if ratio <= limit else 'missed'}**"


def scaling_section(bench: Bench, ns: Sequence[int]) -> list[str]:
    """The Scaling section: the table, N across and rows down, then how it was measured."""
    ns = sorted(set(ns))
    base = SCALING_BASE_N if SCALING_BASE_N in ns else ns[0]
    larger = [n for n in ns if n > base]
    cap = fmt_time(bench.scaling_timeout * 1e9)
    out = [
        "## Scaling",
        "",
        "Whether the lifecycle is linear in the number of plugins N. Each cell is the median "
        f"of {bench.scaling_repeat} fresh processes (min-max, in the median's unit). Each "
        f"ratio is the median at N over the median at N={base}; linear would be N / {base}, "
        f"and a ratio up to {SCALING_SLACK:g} times that is **met**. A process is stopped "
        f"after {cap}, its start and setup included: its cell says `> {cap}`, its ratio is "
        "the cap over the figure at the base (a lower bound, but for the setup's second or "
        "so), and the row is not run at larger N (`not run`).",
        "",
        "| row | contender | "
        + " | ".join(f"N={n}" for n in ns)
        + "".join(f" | N={n} / N={base} (≤ {_scaling_limit(n, base):g}x)" for n in larger)
        + " |",
        "| --- | --- | " + " | ".join("---:" for _ in [*ns, *larger]) + " |",
    ]
    for row in SCALING_ROWS:
        for key in (row.plugyard, *row.peers):
            cells = [_scaling_cell(bench, key, n) for n in ns]
            cells += [_scaling_ratio(bench, key, n, base) for n in larger]
            label = _escape(SCALING_CONTENDERS[key].label)
            out.append(f"| {row.id} | {label} | " + " | ".join(cells) + " |")
    out += ["", *(f"- **{row.id}**: {row.what}" for row in SCALING_ROWS), ""]
    out += [
        f"- **{key}** ({_escape(contender.label)}): {contender.how}"
        for key, contender in SCALING_CONTENDERS.items()
    ]
    out += [
        "",
        "- The plugyard lines run `python -c SNIPPET` (see `benchmarks/snippets.py`, "
        "section 7): the child imports plugyard, registers N plugins in "
        "`registry = plugyard.Registry(G)`, each a class of its own, named `plugin000`, "
        "`plugin001` and so on, makes a fresh "
        "`manager = plugyard.PluginManager(registry, entry_points=False)` (its other "
        "arguments the defaults) and times one operation with `time.perf_counter_ns`. "
        "Only the public API is used. Nothing is discovered or "
        "imported, so the figures are the lifecycle's own. Each child checks its result "
        "after the clock stops: every plugin active after `load_all()` and the calls, none "
        "after `shutdown()`, N listed and none loaded by listing.",
        "- stevedore has no lazy loading, shutdown or dependencies: its one line, under "
        "7.load-all, is `ExtensionManager(G, invoke_on_load=True)` over N synthetic installed "
        "distributions (one module and one entry point each, see `benchmarks/synth.py`), its "
        "cache warm. It lists the entry points and imports N modules, which plugyard's "
        "registered plugins do not, so compare how it grows with N, not its time.",
        "- Every probe runs once untimed at each N, smallest N first, then in rounds, each "
        "round every probe at every N in a shuffled order, so that a slow spell of the "
        "machine does not land on one N of a ratio. The cap is on the whole process: "
        "interpreter start, import, registration and the operation.",
    ]
    return out


def _signing_method(signed: signing.SignedSite | None) -> list[str]:
    if signed is None:
        return ["Not measured in this run."]
    return [
        f"- One distribution, `{signing.DIST}`, whatever N: a package of {len(signed.modules)} "
        f"modules ({len(signing.SUBPACKAGES)} subpackages of "
        f"{signing.MODULES_PER_SUBPACKAGE} modules, their `__init__`s and the top-level "
        f"`__init__`, which imports them all), a `py.typed` and a JSON data file: "
        f"{signed.files} signed files, {signed.size / 1024:.0f} kB. The modules hold classes, "
        "functions and constants, 1 to 10 kB each, and import only each other. The wheel is "
        "written by the wheel spec (see `benchmarks/signing.py`), signed with "
        "`plugyard.trust.sign_wheel` and a fresh Ed25519 key, and installed with the "
        "`installer` library, which byte-compiles it as pip does.",
        "- Row 6.verify: `benchmarks/signing.py`, `timeit` in one process, the contenders "
        "alternating; the page cache is warm. The target's peer is the bare pass with "
        "`os.read`, the cheapest way Python reads a file (what `verify_distribution` does "
        "too); the pass with `open()` is shown for scale. Row 6.verify-1 is the same on "
        f"`{signing.SINGLE_DIST}`, the same metadata with one module: the fixed cost.",
        "- Rows 6.import and 6.import-verify: fresh processes with the site on `PYTHONPATH`. "
        "Before the clock: `import plugyard.trust`, the keyring read, the distribution found "
        "with `importlib.metadata`, the `VerifiedImporter` made. Its compiled-code cache is "
        "the probe's warm `XDG_CACHE_HOME`, filled by the untimed first run; each timed run "
        "checks that it wrote nothing there, and the normal import that it wrote nothing to "
        "`__pycache__`. The target row is 6.import, the import alone (the target is about "
        "the import); 6.import-verify adds the `verify_distribution` call that precedes it.",
    ]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000], help="how many plugins")
    parser.add_argument("--repeat", type=int, default=10, help="fresh processes per figure")
    parser.add_argument(
        "--min-time", type=float, default=0.1, help="seconds per per-call timeit sample"
    )
    parser.add_argument(
        "--only",
        choices=["scaling", "stevedore", "signing"],
        help="measure only these rows: the scaling rows, section 8 (issue 11) or the signing "
        "rows (section 6); by default every row",
    )
    parser.add_argument(
        "--scaling-n",
        type=_positive,
        nargs="+",
        default=list(SCALING_N),
        help="how many plugins in the scaling rows (default: %(default)s)",
    )
    parser.add_argument(
        "--scaling-repeat",
        type=_positive,
        default=5,
        help="fresh processes per scaling figure (default: %(default)s)",
    )
    parser.add_argument(
        "--scaling-timeout",
        type=_seconds,
        default=120.0,
        help="seconds before a scaling process is stopped (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the report; by default benchmarks/results/latest.md, or "
        "benchmarks/results/scaling.md with --only scaling, benchmarks/results/signing.md "
        "with --only signing",
    )
    parser.add_argument(
        "--list-rows", action="store_true", help="print the rows as JSON, measure nothing"
    )
    args = parser.parse_args(argv)
    only_scaling = args.only == "scaling"
    only_stevedore = args.only == "stevedore"
    only_signing = args.only == "signing"
    if only_signing:
        ROWS[:] = SIGNING_ROWS  # this run measures and reports section 6 alone
    if args.list_rows:
        listed: list[dict[str, object]]
        if only_scaling:
            listed = [
                {
                    "id": row.id,
                    "contenders": [
                        SCALING_CONTENDERS[key].label for key in (row.plugyard, *row.peers)
                    ],
                }
                for row in SCALING_ROWS
            ]
        else:
            listed = [
                {"id": row.id, "peers": list(row.peers), "per_n": row.per_n, "targets": row.targets}
                for row in (STEVEDORE_ROWS if only_stevedore else ROWS)
            ]
        print(json.dumps(listed, indent=1))
        return
    default = {"scaling": "scaling.md", "stevedore": "stevedore.md", "signing": "signing.md"}.get(
        args.only, "latest.md"
    )
    out = args.out or HERE / "results" / default
    scaling_ns = [] if only_signing or only_stevedore else sorted(set(args.scaling_n))
    started = time.monotonic()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="plugyard-bench-") as tmp:
        bench = Bench(
            repeat=args.repeat,
            min_time=args.min_time,
            tmp=Path(tmp),
            scaling_repeat=args.scaling_repeat,
            scaling_timeout=args.scaling_timeout,
        )
        if only_stevedore:
            measure(bench, args.n, STEVEDORE_ROWS)
        elif only_signing:
            measure(bench, [], ROWS)
        elif not only_scaling:
            measure(bench, args.n)
        if scaling_ns:
            run_scaling(bench, scaling_ns)
    wall = time.monotonic() - started
    if only_scaling:
        text = scaling_report(bench, scaling_ns, info, wall, sys.argv[1:])
    elif only_stevedore:
        text = stevedore_report(bench, args.n, info, wall, sys.argv[1:])
    else:
        text = report(bench, [] if only_signing else args.n, info, wall, sys.argv[1:], scaling_ns)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + _kept_sections(out), encoding="utf-8")
    _progress(f"wrote {out} in {time.monotonic() - started:.0f} s")


#: Sections other scripts write into the report, kept when it is written anew.
KEPT = [("<!-- reload:start -->", "<!-- reload:end -->")]  # benchmarks/reload.py


def _kept_sections(out: Path) -> str:
    """The sections of ``out`` that other scripts wrote (see ``KEPT``), to append again."""
    try:
        old = out.read_text(encoding="utf-8")
    except OSError:
        return ""
    kept = []
    for start, end in KEPT:
        if start in old and end in old:
            kept.append(start + old.partition(start)[2].partition(end)[0] + end + "\n")
    return "".join("\n" + section for section in kept)


if __name__ == "__main__":
    main()
