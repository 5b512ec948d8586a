"""The rows compared with a peer: what each figure times and the targets.

To add a row: add a contender (a probe and a phase from ``snippets.py``, or a
``percall.py`` key) to ``CONTENDERS`` and a :class:`~model.Row` to ``ROWS``.
The scaling rows are in ``scalerows.py``.
"""

from __future__ import annotations

import coldstart
import snippets
from model import Contender, Probe, Row, _c

PROBES: dict[str, Probe] = {
    "import-plugyard": Probe(snippets.import_module("plugyard"), site=False),
    "import-stevedore": Probe(snippets.import_module("stevedore"), site=False),
    "import-pluggy": Probe(snippets.import_module("pluggy"), site=False),
    "import-plugyard-manager": Probe(snippets.IMPORT_PLUGYARD_MANAGER, site=False),
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
PROBES.update(coldstart.PROBES)


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
    "import/plugyard-manager": _c(
        "`from plugyard import PluginManager`",
        "`from plugyard import PluginManager`: the import plus the manager's modules, "
        "which load on first use",
        "import-plugyard-manager",
        "import",
    ),
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
CONTENDERS.update(coldstart.CONTENDERS)


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
        "1.import-manager",
        "Import the framework and its manager (fresh process): what the first use pays",
        "import/plugyard-manager",
        ("import/stevedore", "import/pluggy"),
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
        targets={"first/stevedore": 0.3, "first/pluggy": 0.5},
    ),
    Row(
        "3.first-call-no-import",
        "Time to the first call of one plugin among N, after the import (fresh process)",
        "first-call/plugyard",
        ("first-call/stevedore", "first-call/pluggy"),
    ),
    *coldstart.FIRST_CALL_REQUIRE,
    Row(
        "4.load-all",
        "Load all N plugins, import included (fresh process)",
        "all/plugyard",
        ("all/stevedore", "all/pluggy"),
        targets={"all/stevedore": 1.0},
    ),
    Row(
        "4.load-all-no-import",
        "Load all N plugins, after the import (fresh process)",
        "all-call/plugyard",
        ("all-call/stevedore", "all-call/pluggy"),
    ),
    *coldstart.MEMORY,
    Row(
        "5.handle",
        "Per call: a plugyard handle, metrics off",
        "call/plugyard-handle",
        ("call/direct", "call/direct-bound", "call/stevedore-driver", "call/pluggy-hook"),
        targets={"call/direct": 1.3},
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
        targets={"call/pluggy-hook": 0.25},
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
