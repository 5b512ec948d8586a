"""Installed plugins in a real virtual environment: laziness, the CLI, rescan."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wheelhouse import MakeVenv, Venv

pytestmark = pytest.mark.slow


def test_listing_in_a_venv_imports_no_plugin_module(demo_venv: Venv) -> None:
    code = textwrap.dedent(
        """
        import json, sys
        import plugyard
        manager = plugyard.PluginManager(group="plugyard.demo")
        listed = [c.name for c in manager.candidates()]
        states = {k: str(v) for k, v in manager.states().items()}
        imported = sorted(m for m in sys.modules if m.startswith("plugyard_demo"))
        manager.execute("normalize", "x")
        after = sorted(m for m in sys.modules if m.startswith("plugyard_demo"))
        print(json.dumps([listed, states, imported, after]))
        """
    )
    listed, states, imported, after = json.loads(demo_venv.run(code).stdout)
    assert listed == ["charcount", "extras", "normalize", "report", "tokenize", "wordcount"]
    assert set(states.values()) == {"discovered"}
    assert imported == []
    assert after == ["plugyard_demo_normalize", "plugyard_demo_tokenize"]


def cli(venv: Venv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv.python.parent / "plugyard"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=venv.path,
    )


def test_cli_lists_graphs_and_runs_installed_plugins(demo_venv: Venv) -> None:
    listing = cli(demo_venv, "list", "--group", "plugyard.demo", "--json")
    assert listing.returncode == 0, listing.stderr
    plugins = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}
    assert plugins["normalize"]["distribution"] == "plugyard-demo-normalize"
    assert plugins["extras"]["kind"] == "module"

    graph = cli(demo_venv, "graph", "--group", "plugyard.demo")
    assert graph.returncode == 0, graph.stderr
    order = [line.split()[1] for line in graph.stdout.split("load order:\n")[1].splitlines()]
    assert order.index("tokenize") < order.index("normalize") < order.index("wordcount")
    assert order.index("charcount") < order.index("report")
    assert "  normalize -> tokenize<2,>=1.0\n" in graph.stdout

    run = cli(demo_venv, "run", "report", "Hello big World", "--group", "plugyard.demo")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"words": 3, "chars": 13}

    inspect = cli(demo_venv, "inspect", "shout", "--group", "plugyard.demo", "--json")
    assert json.loads(inspect.stdout)["depends_on"] == [
        {"name": "normalize", "specifier": "", "optional": True}
    ]


def test_cli_reports_a_missing_dependency_with_exit_1(make_venv: MakeVenv) -> None:
    venv = make_venv("plugyard-demo-normalize")  # tokenize is not installed
    run = cli(venv, "run", "normalize", "a", "--group", "plugyard.demo")
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.strip() == (
        "plugyard: normalize: MissingDependencyError: plugin 'normalize' depends on "
        "'tokenize', which is not registered. Install or register 'tokenize', or drop it "
        "from depends_on."
    )


def test_rescan_finds_a_distribution_installed_while_running(
    make_venv: MakeVenv, wheels: dict[str, Path]
) -> None:
    venv = make_venv("plugyard-demo-tokenize")
    install = [
        sys.executable, "-m", "pip", "--python", str(venv.python), "install",
        "--no-deps", "--no-index", str(wheels["plugyard-demo-normalize"]),
    ]  # fmt: skip
    code = textwrap.dedent(
        f"""
        import json, subprocess
        import plugyard
        manager = plugyard.PluginManager(group="plugyard.demo")
        before = [c.name for c in manager.candidates()]
        manager.execute("tokenize", "a b")
        subprocess.run({install!r}, check=True, capture_output=True)
        new = manager.rescan()
        result = manager.execute("normalize", "A B")
        print(json.dumps([before, new, result, str(manager.states()["tokenize"])]))
        """
    )
    before, new, result, tokenize_state = json.loads(venv.run(code).stdout)
    assert before == ["tokenize"]
    assert new == ["normalize"]
    assert result == ["a", "b"]
    assert tokenize_state == "active"
