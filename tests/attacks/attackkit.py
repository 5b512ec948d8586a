"""What the attack suite builds and runs: plugin projects, a host, and the checks of an outcome.

Every attack is on a host that runs ``TrustPolicy(mode="require", ...)`` in a
real virtual environment, against real wheels built with hatchling, signed
with the ``plugyard sign`` command and installed with pip (or ``installer``).
Code an attacker plants appends a line to the file named by
``$ATTACK_MARKER``: "nothing of it ran" means that file does not exist.

The projects (:data:`PROJECTS`):

- ``atk-victim``: the signed plugin ``victim``. Its ``setup`` imports the
  modules named by ``$ATTACK_LAZY`` with ``importlib.import_module`` and
  ``$ATTACK_IMPORT`` with an ``import`` statement (lazy imports, long after
  verification), runs the hooks its package data lists, and it tries an
  optional accelerator module that no distribution ships.
- ``atk-dependent``: signed plugins that depend on each victim
  (``dependent`` on ``victim``, ``ns-dependent`` on ``nsvictim``, ...).
- ``atk-ns``: the signed plugin ``nsvictim`` inside the namespace package
  ``atkns``, with a namespace ``atkns.nsvictim.space`` inside it.
- ``atk-lib``: the signed plugin ``libvictim``, whose ``setup`` loads a
  compiled extension that links a vendored ``atklib.libs`` shared library.
- ``atk-provider`` and ``atk-broken``: signed module entry points that
  register ``provided`` and ``brokenplugin``.
- ``atk-foreign``: a signed entry point naming a module of another distribution.
- ``atk-vendor``: a plugin signed by a key trusted only for some names.
- Unsigned: ``atk-legacy`` (admitted under ``warn``, it registers and
  replaces plugins), ``atk-shadow`` (a module ``atkns`` that hides the
  namespace package) and ``atk-helper`` (the module ``atk-foreign`` names).

The host (:data:`HOST`) makes a manager of group :data:`GROUP`, runs
``load_all()``, calls every active plugin, and prints a JSON report; a test
can have it run code before anything (``before``), and an app plugin named
``a-trigger`` whose ``setup`` runs ``attack`` (plugins set up in name order
when nothing orders them, so it runs after verification and before the
victims' ``setup``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from wheelhouse import Venv

GROUP = "attack.plugins"
#: What planted code does: append a tag to the marker file.
EVIL = (
    "import os as _os\n"
    "with open(_os.environ['ATTACK_MARKER'], 'a') as _f:\n"
    "    _f.write({tag!r} + '\\n')\n"
)


def evil(tag: str, then: str = "") -> str:
    """Python source that marks ``tag`` when run, then runs ``then``."""
    return EVIL.format(tag=tag) + then


_LAZY_SETUP = """\
    def setup(self, ctx):
        lazy = os.environ.get("ATTACK_LAZY")
        for name in lazy.split(",") if lazy else ():
            importlib.import_module(name)
        statement = os.environ.get("ATTACK_IMPORT")
        if statement:
            exec(f"import {statement}")
"""

_VICTIM = (
    '"""A signed plugin: the target."""\n'
    """import importlib
import json
import os
from importlib import resources

try:  # an optional accelerator, which no distribution ships
    import atkvictim_speedups
except ImportError:
    atkvictim_speedups = None

from . import core


class Victim:
"""
    + _LAZY_SETUP
    + """        root = resources.files(__name__)
        settings = json.loads(root.joinpath("data/settings.json").read_text())
        for hook in settings["hooks"]:
            exec(hook)
        for hook in sorted(root.joinpath("hooks").iterdir(), key=lambda t: t.name):
            exec(hook.read_text())

    def execute(self, data=None):
        return core.VALUE


def main():
    print(core.VALUE)
"""
)

_NS_VICTIM = (
    '"""A signed plugin inside the namespace package atkns."""\n'
    """import importlib
import os


class NsVictim:
"""
    + _LAZY_SETUP
    + """
    def execute(self, data=None):
        return "genuine"
"""
)

_LIB_VICTIM = (
    '"""A signed plugin whose setup loads an extension linking a vendored library."""\n'
    """import importlib


class LibVictim:
    def setup(self, ctx):
        self.ext = importlib.import_module("atklib._ext")

    def execute(self, data=None):
        return self.ext.value()
"""
)


def _registering(name: str, cls: str) -> str:
    return f"""import plugyard


@plugyard.register(group={GROUP!r}, name={name!r})
class {cls}:
    def execute(self, data=None):
        return "genuine"
"""


_LEGACY = (
    '"""Unsigned code a host lets in under trust mode warn."""\n'
    f"""import os

import plugyard


def mark(tag):
    with open(os.environ["ATTACK_MARKER"], "a") as f:
        f.write(tag + "\\n")


class Legacy:
    def execute(self, data=None):
        return "legacy"


class Evil:  # a new plugin in a group that requires signatures
    def setup(self, ctx):
        mark("evil registered into the group")

    def execute(self, data=None):
        mark("evil called")


class FakeVictim:  # replaces the signed installed plugin
    def setup(self, ctx):
        mark("victim replaced")

    def execute(self, data=None):
        return "pwned"


class FakeProvided:  # replaces the signed registered plugin
    def setup(self, ctx):
        mark("provided replaced")

    def execute(self, data=None):
        return "pwned"


class Claimer:  # claims the distribution whose verification failed
    def setup(self, ctx):
        mark("claimed atk-broken")

    def execute(self, data=None):
        return "pwned"


Claimer.__module__ = "atkbroken"
plugyard.register(Evil, group={GROUP!r}, name="evil")
plugyard.register(FakeVictim, group={GROUP!r}, name="victim", replace=True)
plugyard.register(FakeProvided, group={GROUP!r}, name="provided", replace=True)
plugyard.register(Claimer, group={GROUP!r}, name="claimed")
"""
)

#: Each dependent plugin of ``atk-dependent``, and the plugin it depends on.
DEPENDENTS = {
    "dependent": "victim",
    "ns-dependent": "nsvictim",
    "lib-dependent": "libvictim",
    "evil-dependent": "evil",
    "claimed-dependent": "claimed",
    "vendor-dependent": "vendorplugin",
    "foreign-dependent": "foreign",
    "broken-dependent": "brokenplugin",
}


def _class_name(plugin: str) -> str:
    return "".join(part.title() for part in plugin.split("-"))


def _dependents() -> str:
    lines = [
        "import plugyard",
        "",
        "",
        "def _dependent(name, target):",
        f"    @plugyard.register(group={GROUP!r}, name=name, depends_on=[target])",
        "    class Dependent:",
        "        def execute(self, data=None):",
        '            return f"{name} uses {target}"',
        "",
        "    return Dependent",
        "",
        "",
    ]
    lines += [f"{_class_name(n)} = _dependent({n!r}, {t!r})" for n, t in DEPENDENTS.items()]
    return "\n".join(lines) + "\n"


@attrs.frozen
class Project:
    """A plugin project: ``src/`` files, entry points, and what the wheel holds."""

    name: str
    files: Mapping[str, str]
    entry_points: Mapping[str, str] = attrs.field(factory=dict)
    scripts: Mapping[str, str] = attrs.field(factory=dict)
    include: Sequence[str] = ()
    force_include: Mapping[str, str] = attrs.field(factory=dict)
    version: str = "1.0"

    def write(self, root: Path) -> Path:
        """Write the project under ``root``; return its directory."""
        project = root / self.name
        for rel, text in self.files.items():
            path = project / "src" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

        def table(items: Mapping[str, str]) -> str:
            return "\n".join(f'"{k}" = "{v}"' for k, v in items.items())

        include = ", ".join(f'"src/{p}"' for p in self.include)
        lines = [
            "[build-system]",
            'requires = ["hatchling"]',
            'build-backend = "hatchling.build"',
            "",
            "[project]",
            f'name = "{self.name}"',
            f'version = "{self.version}"',
            "",
            f'[project.entry-points."{GROUP}"]',
            table(self.entry_points),
            "",
            "[project.scripts]",
            table(self.scripts),
            "",
            "[tool.hatch.build.targets.wheel]",
            f"only-include = [{include}]",
            'sources = ["src"]',
            "",
            "[tool.hatch.build.targets.wheel.force-include]",
            table(self.force_include),
            "",
        ]
        (project / "pyproject.toml").write_text("\n".join(lines))
        return project


PROJECTS: dict[str, Project] = {
    p.name: p
    for p in [
        Project(
            "atk-victim",
            {
                "atkvictim/__init__.py": _VICTIM,
                "atkvictim/core.py": 'VALUE = "genuine"\n',
                "atkvictim/lazy.py": 'LAZY = "genuine"\n',
                "atkvictim/data/settings.json": '{"hooks": ["greeting = 1"]}\n',
                "atkvictim/hooks/00-hello.txt": "hello = 1\n",
            },
            {"victim": "atkvictim:Victim"},
            scripts={"atk-victim": "atkvictim:main"},
            include=["atkvictim"],
        ),
        Project(
            "atk-dependent",
            {"atkdependent/__init__.py": _dependents()},
            {name: f"atkdependent:{_class_name(name)}" for name in DEPENDENTS},
            include=["atkdependent"],
        ),
        Project(
            "atk-ns",
            {
                "atkns/nsvictim/__init__.py": _NS_VICTIM,
                "atkns/nsvictim/space/impl.py": 'IMPL = "genuine"\n',
            },
            {"nsvictim": "atkns.nsvictim:NsVictim"},
            include=["atkns"],
        ),
        Project(
            "atk-lib",
            {"atklib/__init__.py": _LIB_VICTIM},
            {"libvictim": "atklib:LibVictim"},
            include=["atklib"],
            force_include={"atklib.libs": "atklib.libs"},
        ),
        Project(
            "atk-provider",
            {"atkprovider/__init__.py": _registering("provided", "Provided")},
            {"provider": "atkprovider"},
            include=["atkprovider"],
        ),
        Project(
            "atk-broken",
            {"atkbroken/__init__.py": _registering("brokenplugin", "BrokenPlugin")},
            {"broken": "atkbroken"},
            include=["atkbroken"],
        ),
        Project(
            "atk-legacy",
            {"atklegacy/__init__.py": _LEGACY},
            {"legacy": "atklegacy:Legacy"},
            include=["atklegacy"],
        ),
        Project(
            "atk-shadow",
            {"atkns.py": evil("atkns.py of another distribution ran")},
            include=["atkns.py"],
        ),
        Project(
            "atk-foreign",
            {"atkforeign/__init__.py": '"""Signed; its entry point names another\'s module."""\n'},
            {"foreign": "atkhelper:Helper"},
            include=["atkforeign"],
        ),
        Project(
            "atk-helper",
            {"atkhelper.py": evil("atkhelper ran", "class Helper:\n    pass\n")},
            include=["atkhelper.py"],
        ),
        Project(
            "atk-vendor",
            {
                "atkvendor/__init__.py": evil(
                    "a vendor key vouched out of its scope",
                    "class VendorPlugin:\n    def execute(self, data=None):\n        return 'v'\n",
                )
            },
            {"vendorplugin": "atkvendor:VendorPlugin"},
            include=["atkvendor"],
        ),
    ]
}

RELEASE_SIGNED = (
    "atk-victim",
    "atk-dependent",
    "atk-ns",
    "atk-lib",
    "atk-provider",
    "atk-broken",
    "atk-foreign",
)

_HELPER_C = "int atk_helper(void) { return 42; }\n"
_EVIL_LIB_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    const char *marker = getenv("ATTACK_MARKER");
    FILE *f = marker ? fopen(marker, "a") : NULL;
    if (f) { fputs("planted library ran\n", f); fclose(f); }
}
int atk_helper(void) { return 666; }
"""
_EXT_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int atk_helper(void);
static PyObject *value(PyObject *self, PyObject *args) { return PyLong_FromLong(atk_helper()); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""
#: The vendored library's file name, as auditwheel names them (a hash in the name).
HELPER_LIB = "libatkhelper-1a2b3c4d.so.1"


def compile_extension(project: Path, out: Path) -> Path:
    """Build ``atk-lib``'s extension and vendored library with the C compiler; return the evil lib.

    The extension finds the library through ``$ORIGIN/../atklib.libs``, as
    auditwheel makes them. The evil library (same symbol, a constructor that
    marks) is written to ``out``.
    """
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "a C compiler is needed to build the extension"
    libs = project / "atklib.libs"
    libs.mkdir(parents=True, exist_ok=True)
    work = out / "c"
    work.mkdir(parents=True, exist_ok=True)
    (work / "helper.c").write_text(_HELPER_C)
    (work / "evil.c").write_text(_EVIL_LIB_C)
    (work / "ext.c").write_text(_EXT_C)
    run = [cc, "-shared", "-fPIC", "-O1"]
    subprocess.run(
        [*run, f"-Wl,-soname,{HELPER_LIB}", "-o", libs / HELPER_LIB, work / "helper.c"], check=True
    )
    evil_lib = out / "evil-helper.so"
    subprocess.run([*run, f"-Wl,-soname,{HELPER_LIB}", "-o", evil_lib, work / "evil.c"], check=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    subprocess.run(
        [
            *run,
            f"-I{sysconfig.get_paths()['include']}",
            "-o",
            project / "src" / "atklib" / f"_ext{suffix}",
            work / "ext.c",
            libs / HELPER_LIB,
            "-Wl,-rpath,$ORIGIN/../atklib.libs",
        ],
        check=True,
    )
    return evil_lib


# -- the host ---------------------------------------------------------------------------

HOST = r"""
import importlib, json, logging, os, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
config = json.loads(os.environ["ATTACK_CONFIG"])
exec(config.get("before", ""))
import plugyard
from plugyard.trust import Keyring

if config.get("attack"):
    @plugyard.register(group=config["group"], name="a-trigger")
    class Trigger:
        def setup(self, ctx):
            exec(config["attack"], {"os": os, "sys": sys, "config": config})

try:
    keyring = Keyring.from_directory(config["keyring"])
except Exception as exc:  # the host cannot start: report why, and that nothing loaded
    failure = [type(exc).__name__, str(getattr(exc, "path", None)), str(exc)]
    empty = {"states": {}, "errors": {}, "results": {}, "loaders": {}, "credited": {}}
    loaded = sorted(m for m in sys.modules if m.startswith("atk"))
    print("REPORT " + json.dumps({**empty, "extra": {"keyring_error": failure, "atk": loaded}}))
    sys.exit(0)
policy = plugyard.TrustPolicy(mode="require", keyring=keyring, plugins=config.get("plugins", {}))
manager = plugyard.PluginManager(group=config["group"], trust=policy)
exec(config.get("ready", ""), {"manager": manager, "os": os, "sys": sys, "config": config})
for _ in range(2):  # the second picks up what the first one's imports registered
    states = manager.load_all()
errors = {}
for name, error in manager.errors().items():
    errors[name] = {
        "type": type(error).__name__,
        "distribution": getattr(error, "distribution", None),
        "problems": [[p.kind.value, p.path, p.message] for p in getattr(error, "problems", ())],
        "message": str(error),
    }
results = {}
for name, state in states.items():
    if str(state) == "active" and name != "a-trigger":
        try:
            results[name] = manager.execute(name)
        except Exception as exc:
            results[name] = f"{type(exc).__name__}: {exc}"
loaders = {
    name: type(getattr(module.__spec__, "loader", None)).__name__
    for name, module in sorted(sys.modules.items())
    if name.startswith("atk") and getattr(module, "__spec__", None) is not None
}
credited = {
    name: manager.info(name).distribution for name, s in states.items() if str(s) == "active"
}
extra = {}
exec(config.get("after", ""))
print("REPORT " + json.dumps({
    "states": {k: str(v) for k, v in states.items()},
    "errors": errors,
    "results": results,
    "loaders": loaders,
    "credited": credited,
    "extra": extra,
}))
"""


@attrs.frozen
class Report:
    """What one host run saw, and what it printed on stderr."""

    states: dict[str, str]
    errors: dict[str, dict[str, Any]]
    results: dict[str, Any]
    loaders: dict[str, str]
    credited: dict[str, str | None]
    extra: dict[str, Any]
    stderr: str

    def refused(self, plugin: str, kind: str, path: str | None = None) -> dict[str, Any]:
        """Assert ``plugin`` failed with a :class:`SignatureError` naming ``kind`` (at ``path``).

        Returns:
            The error, as the host reported it.
        """
        assert self.states.get(plugin) == "failed", (plugin, self.states, self.errors)
        error = self.errors[plugin]
        assert error["type"] == "SignatureError", error
        found = [(k, p) for k, p, _ in error["problems"]]
        assert any(k == kind and (path is None or path in (p or "")) for k, p in found), (
            kind,
            path,
            error["problems"],
        )
        return error

    def dependents_failed(self, *names: str) -> None:
        """Assert each of ``names`` failed because a dependency failed."""
        for name in names:
            assert self.states.get(name) == "failed", (name, self.states)
            assert self.errors[name]["type"] == "DependencyFailedError", self.errors[name]


@attrs.frozen
class Env:
    """A venv with plugyard and attack wheels installed, and how to attack it."""

    venv: Venv
    keyring: Path
    root: Path

    @property
    def site(self) -> Path:
        """The venv's site-packages."""
        return self.venv.site_packages

    def host(
        self,
        marker: Path,
        *,
        keyring: Path | None = None,
        plugins: Mapping[str, str] | None = None,
        before: str = "",
        ready: str = "",
        attack: str = "",
        after: str = "",
        env: Mapping[str, str] | None = None,
        **data: Any,
    ) -> Report:
        """Run the host in the venv; return its report.

        Args:
            marker: Where planted code would write.
            keyring: The host's keyring directory; the release key's by default.
            plugins: Trust modes by plugin, over ``require``.
            before: Code run first, before plugyard is imported.
            ready: Code run with the manager made, before anything is loaded.
            attack: Code run by the ``a-trigger`` plugin's ``setup``: after
                every plugin was verified and imported, before their ``setup``.
            after: Code run at the end; it may add to ``extra``.
            env: Environment variables for the host.
            data: Values the code finds in ``config``.
        """
        config = {
            **data,
            "group": GROUP,
            "keyring": str(keyring or self.keyring),
            "plugins": dict(plugins or {}),
            "before": before,
            "ready": ready,
            "attack": attack,
            "after": after,
        }
        host = self.venv.path / "bin" / "attack-host.py"
        if not host.exists():
            host.write_text(HOST)
        done = subprocess.run(
            [str(self.venv.python), "-E", "-s", str(host)],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.venv.path,
            env={
                **os.environ,
                "ATTACK_CONFIG": json.dumps(config),
                "ATTACK_MARKER": str(marker),
                **(env or {}),
            },
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        assert lines, (done.stdout, done.stderr)
        data = json.loads(lines[-1].removeprefix("REPORT "))
        return Report(**data, stderr=done.stderr)

    def cli(self, *args: str | Path, env: Mapping[str, str] | None = None) -> Cli:
        """Run the venv's ``plugyard`` command."""
        done = subprocess.run(
            [str(self.venv.path / "bin" / "plugyard"), *map(str, args)],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.venv.path,
            env={**os.environ, **(env or {})},
        )
        return Cli(done.returncode, done.stdout, done.stderr)

    def verify_group(self, keyring: Path | None = None, **kw: Any) -> Cli:
        """``plugyard verify --group attack.plugins --keyring ... --json``."""
        return self.cli(
            "verify", "--group", GROUP, "--keyring", keyring or self.keyring, "--json", **kw
        )


@attrs.frozen
class Cli:
    """What a ``plugyard`` command did."""

    code: int
    stdout: str
    stderr: str

    def reports(self, distribution: str, kind: str, path: str | None = None) -> None:
        """Assert ``plugyard verify --json`` failed and reported ``kind`` for ``distribution``."""
        assert self.code == 1, (self.code, self.stdout, self.stderr)
        results = {r["distribution"]: r for r in json.loads(self.stdout)}
        problems = [(p["kind"], p["path"]) for p in results[distribution]["problems"]]
        assert any(k == kind and (path is None or path in (p or "")) for k, p in problems), (
            kind,
            path,
            problems,
        )


def install_with_installer(venv: Venv, wheel: Path) -> None:
    """Install ``wheel`` into ``venv`` with the ``installer`` library, as into its own scheme."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    done = venv.run("import json, sysconfig; print(json.dumps(sysconfig.get_paths()))")
    paths = json.loads(done.stdout)
    scheme = {k: paths[k] for k in ("purelib", "platlib", "scripts", "data")}
    scheme["headers"] = paths["include"]
    destination = SchemeDictionaryDestination(scheme, str(venv.python), "posix")
    with WheelFile.open(wheel) as source:
        install(source, destination, {"INSTALLER": b"installer\n"})


def plugyard_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """This environment's ``plugyard`` command (``python -m plugyard``): keygen and sign."""
    done = subprocess.run(
        [sys.executable, "-m", "plugyard", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done
