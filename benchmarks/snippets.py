"""The code each fresh benchmark process runs, one snippet per contender.

A snippet is run as ``python -c SNIPPET GROUP PLUGGY_GROUP NAME N`` with the
synthetic site on ``PYTHONPATH`` (see ``synth.py``). It times itself with
``time.perf_counter_ns`` and prints one line ``BENCH phase=ns ...`` that
``run.py`` reads. It checks its result after the clock stops (the count, the
value returned, that listing imported no plugin module) and fails loudly
otherwise: a benchmark of something that did not work is worth nothing.

Nothing is imported before the clock starts but ``sys`` and ``time``, which
every interpreter has loaded at startup; in particular not ``json``, which
stevedore imports and would otherwise get for free.

Phases:

- ``import``: importing the framework;
- ``call``: the operation, the framework already imported;
- ``total``: both, from before the import to the result;
- ``register``: registering the plugins in code (the scaling rows, section 7).
"""

from __future__ import annotations

import textwrap

_IMPORT = """\
from time import perf_counter_ns
t0 = perf_counter_ns()
import {module}
t1 = perf_counter_ns()
print(f"BENCH import={{t1 - t0}}")
"""


def import_module(module: str) -> str:
    """Time ``import module`` and nothing else."""
    return _IMPORT.format(module=module)


# What the first use of plugyard.PluginManager adds to ``import plugyard``.
IMPORT_PLUGYARD_MANAGER = """\
from time import perf_counter_ns
t0 = perf_counter_ns()
from plugyard import PluginManager
t1 = perf_counter_ns()
print(f"BENCH import={t1 - t0}")
"""


# stevedore turns its cache off when the interpreter is under /tmp (or a
# .disable file is there): a stevedore figure measured so is worth nothing.
# The smoke tests, which check the report's shape and not its figures, set
# PLUGYARD_BENCH_ANY_CACHE=1 so that they also run from a checkout under /tmp.
_STEVEDORE_CACHE_ON = """\
import os, stevedore._cache
assert not stevedore._cache._c._disable_caching or os.environ.get("PLUGYARD_BENCH_ANY_CACHE"), (
    "stevedore's cache is off (/tmp?)"
)
"""

# No plugin module may be imported by listing; plugin modules are pkgNNN.
_NO_PLUGIN_IMPORTED = """\
imported = [m for m in sys.modules if m[:3] == "pkg" and m[3:].isdigit()]
assert not imported, f"listing imported {imported[:3]}"
"""


# plugyard's names are imported on first use: ``import plugyard`` alone loads
# almost nothing. Where a figure leaves the framework's import out of the
# clock (or times it apart from the call), the manager is imported with it,
# as stevedore's managers are by ``import stevedore``.
_PLUGYARD = "import plugyard\nplugyard.PluginManager  # imports the manager's modules"


def _listing(setup: str, call: str, count: str) -> str:
    return (
        "import sys\n"
        "from time import perf_counter_ns\n"
        f"{setup}\n"
        "group, pluggy_group, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
        "t0 = perf_counter_ns()\n"
        f"found = {call}\n"
        "t1 = perf_counter_ns()\n"
        f"assert {count} == n, f'listed {{{count}}}, expected {{n}}'\n"
        f"{_NO_PLUGIN_IMPORTED}"
        'print(f"BENCH call={t1 - t0}")\n'
    )


LIST_PLUGYARD = _listing(
    _PLUGYARD,
    "plugyard.PluginManager(group=group).candidates()",
    "len(found)",
)
LIST_PLUGYARD_INDEX = _listing(
    "from plugyard import _discovery",
    "_discovery.entry_points(group)",
    "len(found)",
)
LIST_IMPORTLIB = _listing(
    "from importlib.metadata import entry_points",
    "entry_points(group=group)",
    "len(found)",
)
# What ExtensionManager.list_entry_points() calls (through a class-level dict
# that only matters within one process); a manager's constructor would load
# every plugin, so this is the cheapest listing a stevedore user gets.
LIST_STEVEDORE = (
    _listing(
        "from stevedore import _cache",
        "_cache.get_group_all(group)",
        "len(found)",
    )
    + _STEVEDORE_CACHE_ON
)


def _startup(imports: str, body: str, check: str) -> str:
    return (
        "import sys\n"
        "from time import perf_counter_ns\n"
        "group, pluggy_group, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
        "t0 = perf_counter_ns()\n"
        f"{imports}\n"
        "t1 = perf_counter_ns()\n"
        f"{textwrap.dedent(body).strip()}\n"
        "t2 = perf_counter_ns()\n"
        f"{textwrap.dedent(check).strip()}\n"
        'print(f"BENCH import={t1 - t0} call={t2 - t1} total={t2 - t0}")\n'
    )


_PLUGGY_SPEC = """\
marker = pluggy.HookspecMarker("plugbench")
class Spec:
    @marker
    def plugbench_execute(self, data):
        pass
pm = pluggy.PluginManager("plugbench")
pm.add_hookspecs(Spec)
"""

FIRST_CALL_PLUGYARD = _startup(
    _PLUGYARD,
    "result = plugyard.PluginManager(group=group).execute(name, 42)",
    "assert result == 42, result",
)
FIRST_CALL_STEVEDORE = _startup(
    "from stevedore import DriverManager",
    "result = DriverManager(group, name, invoke_on_load=True).driver.execute(42)",
    "assert result == 42, result\n" + _STEVEDORE_CACHE_ON,
)
# name= makes pluggy import only the one plugin, as the others do.
FIRST_CALL_PLUGGY = _startup(
    "import pluggy",
    _PLUGGY_SPEC
    + "pm.load_setuptools_entrypoints(pluggy_group, name=name)\n"
    + "result = pm.hook.plugbench_execute(data=42)\n",
    "assert result == [42], result",
)

LOAD_ALL_PLUGYARD = _startup(
    _PLUGYARD,
    "states = plugyard.PluginManager(group=group).load_all()",
    """
    active = [s for s in states.values() if s is plugyard.PluginState.ACTIVE]
    assert len(active) == n, f"{len(active)} active of {len(states)}, expected {n}"
    """,
)
LOAD_ALL_STEVEDORE = _startup(
    "from stevedore import ExtensionManager",
    "mgr = ExtensionManager(group, invoke_on_load=True)",
    "assert len(mgr.extensions) == n, len(mgr.extensions)\n" + _STEVEDORE_CACHE_ON,
)

# -- issue 14: the first call under a requiring trust policy, memory per plugin,
# shutdown of installed plugins. Run as the others; the trust probe gets a
# keyring trusting the middle distribution's signer as a fifth argument.

# The plugin's distribution is signed, verified and imported from the verified
# bytes, its compiled code from the code cache an untimed first run filled
# (``warm=0`` if a timed run wrote to it). The keyring read and the import of
# plugyard.trust (and cryptography) are in the clock.
FIRST_CALL_PLUGYARD_REQUIRE = """\
import os, sys
from time import perf_counter_ns
group, pluggy_group, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
code = os.path.join(os.environ["XDG_CACHE_HOME"], "plugyard", "code")
before = os.stat(code).st_mtime_ns if os.path.isdir(code) else None
t0 = perf_counter_ns()
import plugyard
from plugyard.trust import Keyring
plugyard.PluginManager  # the manager's modules load on first use
t1 = perf_counter_ns()
policy = plugyard.TrustPolicy(mode="require", keyring=Keyring.from_directory(sys.argv[5]))
result = plugyard.PluginManager(group=group, trust=policy).execute(name, 42)
t2 = perf_counter_ns()
assert result == 42, result
module = sys.modules["pkg" + name[len("plugin"):]]
loader = type(module.__spec__.loader).__name__
assert loader == "_VerifiedLoader", f"the plugin was imported by {loader}"
warm = int(before is not None and os.stat(code).st_mtime_ns == before)
print(f"BENCH import={t1 - t0} call={t2 - t1} total={t2 - t0} warm={warm}")
"""


def _memory(imports: str, load: str, check: str) -> str:
    """Bytes held per plugin after loading all N, traced from after the import.

    ``memory`` is what ``tracemalloc`` counts as still allocated after the
    load and a full collection, over N; ``peak`` the most it counted during
    the load, over N; ``modules`` how many modules other than the plugins'
    the load imported (a framework importing on first use pays for them here).
    """
    return (
        "import sys, gc, tracemalloc\n"
        "group, pluggy_group, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
        f"{imports}\n"
        "gc.collect()\n"
        "before = set(sys.modules)\n"
        "tracemalloc.start()\n"
        f"{textwrap.dedent(load).strip()}\n"
        "gc.collect()\n"
        "current, peak = tracemalloc.get_traced_memory()\n"
        "tracemalloc.stop()\n"
        f"{textwrap.dedent(check).strip()}\n"
        "new = [m for m in set(sys.modules) - before if not (m[:3] == 'pkg' and m[3:].isdigit())]\n"
        'print(f"BENCH memory={current // n} peak={peak // n} modules={len(new)}")\n'
    )


_ALL_ACTIVE_INSTALLED = """\
active = [s for s in states.values() if s is plugyard.PluginState.ACTIVE]
assert len(active) == n, f"{len(active)} active of {len(states)}, expected {n}"
"""

MEMORY_PLUGYARD = _memory(
    _PLUGYARD,
    "manager = plugyard.PluginManager(group=group)\nstates = manager.load_all()",
    _ALL_ACTIVE_INSTALLED,
)
MEMORY_PLUGYARD_NO_METRICS = _memory(
    _PLUGYARD,
    "manager = plugyard.PluginManager(group=group, metrics=False)\nstates = manager.load_all()",
    _ALL_ACTIVE_INSTALLED,
)
MEMORY_STEVEDORE = _memory(
    "from stevedore import ExtensionManager",
    "mgr = ExtensionManager(group, invoke_on_load=True)",
    "assert len(mgr.extensions) == n, len(mgr.extensions)\n" + _STEVEDORE_CACHE_ON,
)
# The floor: each plugin's module imported and its class instantiated, kept in a list.
MEMORY_BARE = _memory(
    "import importlib",
    """
    width = max(3, len(str(n - 1)))
    plugins = [importlib.import_module(f"pkg{i:0{width}d}").Plugin() for i in range(n)]
    """,
    "assert len(plugins) == n and plugins[-1].execute(42) == 42",
)

# shutdown() of N installed plugins, all loaded by load_all() before the clock.
SHUTDOWN_PLUGYARD = _startup(
    f"{_PLUGYARD}\n"
    "manager = plugyard.PluginManager(group=group)\n"
    "states = manager.load_all()\n"
    "assert sum(s is plugyard.PluginState.ACTIVE for s in states.values()) == n, states",
    "manager.shutdown()",
    """
    left = [k for k, s in manager.states().items() if s is plugyard.PluginState.ACTIVE]
    assert not left, f"{len(left)} still active after shutdown"
    """,
)


# -- 8. plugyard.stevedore: run as the others, with a keyring trusting the
# middle distribution's signer as a fifth argument (see synth.sign_middle).

# The driver, under a policy that requires a signature, verified and imported
# from the verified bytes; the other N - 1 distributions are unsigned and
# never verified. Everything is in the clock: the keyring read, the import of
# plugyard.trust (and cryptography) that verification needs.
FIRST_CALL_VERIFIED_DRIVER = _startup(
    "from plugyard import TrustPolicy\n"
    "from plugyard.stevedore import DriverManager\n"
    "from plugyard.trust import Keyring",
    """
    policy = TrustPolicy(mode="require", keyring=Keyring.from_directory(sys.argv[5]))
    result = DriverManager(group, name, invoke_on_load=True, trust=policy).driver.execute(42)
    """,
    """
    assert result == 42, result
    module = sys.modules["pkg" + name[len("plugin"):]]
    loader = type(module.__spec__.loader).__name__
    assert loader == "_VerifiedLoader", f"the driver was imported by {loader}"
    verified = [m for m in sys.modules if m[:3] == "pkg" and m[3:].isdigit()]
    assert len(verified) == 1, verified
    """,
)
LOAD_ALL_STEVEDORE_PLUGYARD = _startup(
    "from plugyard import TrustPolicy\nfrom plugyard.stevedore import ExtensionManager",
    "mgr = ExtensionManager(group, invoke_on_load=True, trust=TrustPolicy())",
    "assert len(mgr.extensions) == n, len(mgr.extensions)",
)
LOAD_ALL_PLUGGY = _startup(
    "import pluggy",
    _PLUGGY_SPEC + "count = pm.load_setuptools_entrypoints(pluggy_group)\n",
    "assert count == n and len(pm.hook.plugbench_execute(data=1)) == n, count",
)


# -- 6. signing: run as ``python -c SNIPPET SITE DIST PACKAGE KEYRING MODULES`` ------
# (see signing.py), with SITE on PYTHONPATH. ``warm=0`` says that a cache the
# row assumes warm was written during the run: only the untimed first run may.

_SIGNED_ARGS = """\
import sys
from time import perf_counter_ns
site, dist_name, package, keyring_dir = sys.argv[1:5]
count = int(sys.argv[5])
"""

_ALL_LOADED = """\
loaded = [m for m in sys.modules if m == package or m.startswith(package + ".")]
assert len(loaded) == count, f"imported {len(loaded)} modules, expected {count}"
loaders = {type(sys.modules[m].__spec__.loader).__name__ for m in loaded}
"""

# Everything but the verification and the import happens before the clock:
# importing plugyard.trust (row 1 times a framework's import), reading the
# keyring, finding the distribution, making the importer.
VERIFIED_IMPORT = (
    _SIGNED_ARGS
    + """\
import os
from importlib.metadata import distributions
from plugyard.trust import Keyring, VerifiedImporter, verify_distribution
keyring = Keyring.from_directory(keyring_dir)
dist = next(iter(distributions(name=dist_name, path=[site])))
importer = VerifiedImporter()
cache = importer.cache_dir
assert cache is not None, "the compiled-code cache is off"
cache_mtime = os.stat(cache).st_mtime_ns
t0 = perf_counter_ns()
result = verify_distribution(dist, keyring)
t1 = perf_counter_ns()
importer.add(result)
importer.install()
__import__(package)
t2 = perf_counter_ns()
assert result.ok, result.problems
"""
    + _ALL_LOADED
    + """\
assert loaders == {"_VerifiedLoader"}, loaders
warm = int(os.stat(cache).st_mtime_ns == cache_mtime)
print(f"BENCH verify={t1 - t0} import={t2 - t1} total={t2 - t0} warm={warm}")
"""
)

# The default import system, __pycache__ written at install (and by the first run).
NORMAL_IMPORT = (
    _SIGNED_ARGS
    + """\
import os
caches = [os.path.join(d, "__pycache__") for d, _, _ in os.walk(os.path.join(site, package))]
caches = {c: os.stat(c).st_mtime_ns for c in caches if os.path.isdir(c)}
t0 = perf_counter_ns()
__import__(package)
t1 = perf_counter_ns()
"""
    + _ALL_LOADED
    + """\
assert loaders == {"SourceFileLoader"}, loaders
assert all(sys.modules[m].__cached__.startswith(tuple(caches)) for m in loaded)
warm = int(all(os.stat(c).st_mtime_ns == t for c, t in caches.items()))
print(f"BENCH import={t1 - t0} warm={warm}")
"""
)


# -- 7. scaling: run as ``python -c SNIPPET GROUP PLUGGY_GROUP NAME N`` like
# the others but without the synthetic site (NAME is unused). The N plugins are
# registered in code, so that the figures are the lifecycle's alone: no
# discovery, no imports (plugyard is imported before the clock). Each plugin is
# a class of its own, as N installed plugins would be. Only the public API is
# used. ``register`` times the N registrations; ``call`` the row's operation.

_FLAT = "None"
# A binary tree, log2(N) deep: every plugin i > 0 depends on plugin i // 2.
_TREE = "[names[i // 2]] if i else None"
# A chain, N deep: every plugin i > 0 depends on plugin i - 1.
_CHAIN = "[names[i - 1]] if i else None"

_ALL_ACTIVE = """\
active = sum(s is plugyard.PluginState.ACTIVE for s in states.values())
assert active == len(states) == n, f"{active} active of {len(states)}, expected {n}"
"""


def _registered(
    body: str, check: str, *, depends: str = _FLAT, before: str = "", collect: bool = True
) -> str:
    # collect=False times the operation with Python's cyclic garbage collector
    # paused (after one full collection): what the code's own work costs, apart
    # from the collector's full passes over a heap that grows with N.
    pause = "" if collect else "import gc\ngc.collect()\ngc.disable()\n"
    return (
        "import sys\n"
        "from time import perf_counter_ns\n"
        f"{_PLUGYARD}\n"
        "group, n = sys.argv[1], int(sys.argv[4])\n"
        "width = max(3, len(str(n - 1)))\n"
        'names = [f"plugin{i:0{width}d}" for i in range(n)]\n'
        "class Plugin:\n"
        "    def execute(self, data):\n"
        "        return data\n"
        "plugins = [type(name, (Plugin,), {}) for name in names]\n"
        "registry = plugyard.Registry(group)\n"
        "t0 = perf_counter_ns()\n"
        "for i, (name, plugin) in enumerate(zip(names, plugins)):\n"
        f"    registry.register(plugin, name=name, depends_on={depends})\n"
        "t1 = perf_counter_ns()\n"
        "manager = plugyard.PluginManager(registry, entry_points=False)\n"
        f"{textwrap.dedent(before).strip()}\n"
        f"{pause}"
        "t2 = perf_counter_ns()\n"
        f"{textwrap.dedent(body).strip()}\n"
        "t3 = perf_counter_ns()\n"
        f"{textwrap.dedent(check).strip()}\n"
        'print(f"BENCH register={t1 - t0} call={t3 - t2}")\n'
    )


SCALE_REGISTER = _registered("pass", "assert len(registry) == n, len(registry)")
SCALE_LOAD_ALL = _registered("states = manager.load_all()", _ALL_ACTIVE)
SCALE_LOAD_ALL_NO_GC = _registered("states = manager.load_all()", _ALL_ACTIVE, collect=False)
SCALE_LOAD_ALL_TREE = _registered("states = manager.load_all()", _ALL_ACTIVE, depends=_TREE)
SCALE_LOAD_ALL_CHAIN = _registered("states = manager.load_all()", _ALL_ACTIVE, depends=_CHAIN)
# Each call loads the one plugin it names: the first call of each in turn.
SCALE_LAZY_CALLS = _registered(
    "results = [manager.execute(name, 42) for name in names]",
    "assert results == [42] * n, results[:3]\nstates = manager.states()\n" + _ALL_ACTIVE,
)
SCALE_LAZY_CALLS_NO_GC = _registered(
    "results = [manager.execute(name, 42) for name in names]",
    "assert results == [42] * n, results[:3]\nstates = manager.states()\n" + _ALL_ACTIVE,
    collect=False,
)
SCALE_SHUTDOWN = _registered(
    "manager.shutdown()",
    """
    left = [name for name, s in manager.states().items() if s is plugyard.PluginState.ACTIVE]
    assert not left, f"{len(left)} still active after shutdown"
    """,
    before="states = manager.load_all()\n" + _ALL_ACTIVE,
)
_NOTHING_LOADED = """\
loaded = [s for s in manager.states().values() if s is not plugyard.PluginState.DISCOVERED]
assert len(found) == n and not loaded, f"listed {len(found)} of {n}; {len(loaded)} loaded"
"""
SCALE_STATES = _registered("found = manager.states()", _NOTHING_LOADED)
SCALE_CANDIDATES = _registered("found = manager.candidates()", _NOTHING_LOADED)
