"""What a first call imports: exactly the modules its path needs, and nothing heavy.

Command-line tools pay every import on every start, so the path from
``import plugyard`` to the first call of one installed plugin is kept to a
known list of plugyard's modules; a change that adds one fails here and
says which, so that it is added on purpose (or imported where it is used).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: plugyard's modules on the path of a first call (entry point, default trust, no config).
FIRST_CALL_MODULES = {
    "plugyard",
    "plugyard._admission",
    "plugyard._asyncapi",
    "plugyard._bus",
    "plugyard._candidate",
    "plugyard._configure",
    "plugyard._discovery",
    "plugyard._errorbase",
    "plugyard._handles",
    "plugyard._indexcache",
    "plugyard._introspect",
    "plugyard._lifecycle",
    "plugyard._loader",
    "plugyard._log",
    "plugyard._manager",
    "plugyard._metafiles",
    "plugyard._metrics",
    "plugyard._model",
    "plugyard._policy",
    "plugyard._public",
    "plugyard._registry",
    "plugyard._reloadapi",
    "plugyard._resolve",
    "plugyard._sandbox_errors",
    "plugyard._sources",
    "plugyard._start",
    "plugyard._table",
    "plugyard._value",
    "plugyard._versions",
    "plugyard.exceptions",
}

#: What none of those needs: each costs a measurable part of a cold start.
NOT_ON_THE_PATH = [
    "asyncio",
    "attrs",
    "cryptography",
    "email",
    "hashlib",
    "importlib.metadata",
    "inspect",
    "logging",
    "msgpack",
    "packaging.requirements",
    "packaging.specifiers",
    "pathlib",
    "prometheus_client",
    "stevedore",
    "tempfile",
    "zipfile",
]

# With a setup(): a first call makes the plugin's context too.
ECHO = """
class Echo:
    def setup(self, context):
        self.context = context

    def execute(self, data):
        return data
"""
ENTRY_POINTS = "[coldstart]\necho = coldstart_echo:Echo\n"

PROBE = """
import sys
before = set(sys.modules)
import plugyard
assert plugyard.PluginManager(group="coldstart").execute("echo", 42) == 42
print(sorted(set(sys.modules) - before))
"""


@pytest.fixture(name="site")
def fixture_site(tmp_path: Path) -> Path:
    """A directory laid out as site-packages, with one installed plugin."""
    site = tmp_path / "site"
    meta = site / "coldstart_echo-1.0.dist-info"
    meta.mkdir(parents=True)
    (site / "coldstart_echo.py").write_text(ECHO)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: coldstart-echo\nVersion: 1.0\n")
    (meta / "entry_points.txt").write_text(ENTRY_POINTS)
    (meta / "RECORD").write_text("")
    return site


def _first_call(site: Path, cache: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    new: list[str] = ast.literal_eval(done.stdout.strip())
    return new


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_a_first_call_imports_only_its_path(site: Path, tmp_path: Path, cache: str) -> None:
    home = tmp_path / "cache"
    if cache == "warm":
        _first_call(site, home)  # writes the index cache
    new = _first_call(site, home)
    ours = {m for m in new if m.split(".")[0] == "plugyard"}
    assert ours - FIRST_CALL_MODULES == set(), "new on the first call's path"
    assert FIRST_CALL_MODULES - ours == set(), "no longer on the path: take it off the list"
    assert [m for m in NOT_ON_THE_PATH if m in new] == []


def test_registering_imports_the_registry_alone() -> None:
    """A module that only registers a plugin does not load the manager."""
    code = (
        "import sys\n"
        "import plugyard\n"
        "@plugyard.register(name='x', group='g')\n"
        "def x(data):\n"
        "    return data\n"
        "print(sorted(m for m in sys.modules if m.startswith('plugyard')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = ast.literal_eval(done.stdout.strip())
    assert loaded == [
        "plugyard",
        "plugyard._errorbase",
        "plugyard._introspect",
        "plugyard._log",
        "plugyard._model",
        "plugyard._public",
        "plugyard._registry",
        "plugyard._sandbox_errors",
        "plugyard._value",
        "plugyard.exceptions",
    ]


VERIFIED_PROBE = """
import sys
import plugyard
from plugyard.trust import Keyring
policy = plugyard.TrustPolicy(mode="require", keyring=Keyring.from_directory(sys.argv[1]))
manager = plugyard.PluginManager(group="coldstart", trust=policy)
assert manager.execute("echo", 42) == 42
loader = type(sys.modules["coldstart_echo"].__spec__.loader).__name__
assert loader == "_VerifiedLoader", loader
print(sorted(sys.modules))
"""

#: What verifying before an import does not need: the signing side and the lookups by name.
NOT_ON_THE_VERIFIED_PATH = [
    "attrs",
    "email",
    "importlib.metadata",
    "packaging.tags",
    "packaging.utils",
    "plugyard.trust._detached",
    "plugyard.trust._traversable",
    "plugyard.trust._wheel",
    "subprocess",
    "zipfile",
]


def test_a_verified_first_call_loads_no_signing_machinery(tmp_path: Path) -> None:
    from plugyard.trust import generate_key, load_private_key, sign_wheel
    from trust_helpers import install_wheel, write_wheel

    wheel = write_wheel(
        tmp_path / "wheels",
        {
            "coldstart_echo.py": ECHO,
            "coldstart_echo-1.0.dist-info/entry_points.txt": ENTRY_POINTS,
        },
        name="coldstart-echo",
        version="1.0",
    )
    private, public = generate_key(tmp_path / "keys")
    keyring = tmp_path / "keyring"
    keyring.mkdir()
    (keyring / public.name).write_bytes(public.read_bytes())
    site = install_wheel(sign_wheel(wheel, load_private_key(private)), tmp_path / "root")
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", VERIFIED_PROBE, str(keyring)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    loaded = ast.literal_eval(done.stdout.strip())
    assert [m for m in NOT_ON_THE_VERIFIED_PATH if m in loaded] == []
    assert "plugyard.trust._importer" in loaded  # it was imported verified
