"""The contrib plugins, built as wheels and installed with pip into fresh venvs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import parse_wheel_filename

from wheelhouse import MakeVenv, Venv

pytestmark = pytest.mark.slow

GROUP = "plugyard.demo"

# name -> (value, distribution, version), as each pyproject.toml declares them.
ENTRY_POINTS = {
    "charcount": ("plugyard_demo_stats:CharCount", "plugyard-demo-stats", "1.0.0"),
    "extras": ("plugyard_demo_extras", "plugyard-demo-extras", "0.3.0"),
    "normalize": ("plugyard_demo_normalize:Normalize", "plugyard-demo-normalize", "1.0.0"),
    "report": ("plugyard_demo_stats:Report", "plugyard-demo-stats", "1.0.0"),
    "tokenize": ("plugyard_demo_tokenize:Tokenize", "plugyard-demo-tokenize", "1.2.0"),
    "wordcount": ("plugyard_demo_stats:WordCount", "plugyard-demo-stats", "1.0.0"),
}

PLUGINS = ["charcount", "normalize", "report", "reverse", "shout", "tokenize", "wordcount"]

PRELUDE = """
import importlib, importlib.metadata, json
import plugyard

group = "plugyard.demo"
setup_order = []
"""

# Imports every module the group's entry points name, as an application that
# imports its plugins itself does, so the decorators register the plugins
# before any manager exists. Records the order plugins are set up in by
# wrapping each class's setup().
IMPORT_PLUGINS = """
for point in importlib.metadata.entry_points(group=group):
    importlib.import_module(point.module)
registry = plugyard.get_registry(group)

def traced(name, setup):
    def wrapper(self, ctx):
        setup_order.append(name)
        if setup is not None:
            setup(self, ctx)
    return wrapper

for info in registry:
    target = registry.target(info.name)
    if isinstance(target, type):
        target.setup = traced(info.name, getattr(target, "setup", None))
"""

LOAD_ALL = """
with plugyard.PluginManager(group=group) as manager:
    states = manager.load_all()
    active = [name for name, state in states.items() if state is plugyard.PluginState.ACTIVE]
    calls = {
        "report": ("report", "Hello World"),
        "shout": ("shout", "Hello, World"),
        "reverse": ("reverse", "Hello"),
    }
    print(json.dumps({
        "states": {name: str(state) for name, state in states.items()},
        "versions": {name: str(manager.info(name).version) for name in states},
        "errors": {
            name: [type(error).__name__, vars(error)] for name, error in manager.errors().items()
        },
        "setup_order": setup_order,
        "results": {key: manager.execute(*call) for key, call in calls.items() if key in active},
    }, default=str))
"""

DISTRIBUTION_VERSIONS = {
    "charcount": "1.0.0",
    "normalize": "1.0.0",
    "report": "1.0.0",
    "reverse": "0.3.0",
    "shout": "0.3.0",
    "tokenize": "1.2.0",
    "wordcount": "1.0.0",
}

RESULTS = {"report": {"words": 2, "chars": 10}, "shout": "HELLO WORLD!", "reverse": "olleH"}


def run_json(venv: Venv, *parts: str) -> Any:
    """Run the code ``parts`` make up in ``venv``; return what it printed, parsed as JSON."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    return json.loads(venv.run(code).stdout)


def test_wheels_are_built_for_plugyard_and_each_contrib_project(wheels: dict[str, Path]) -> None:
    versions = {name: str(parse_wheel_filename(w.name)[1]) for name, w in wheels.items()}
    assert versions == {
        "plugyard": versions["plugyard"],
        "plugyard-demo-extras": "0.3.0",
        "plugyard-demo-normalize": "1.0.0",
        "plugyard-demo-stats": "1.0.0",
        "plugyard-demo-tokenize": "1.2.0",
    }


def test_venv_imports_the_installed_wheels_not_the_source_tree(demo_venv: Venv) -> None:
    found = run_json(
        demo_venv,
        """
        import json, plugyard, plugyard_demo_stats
        print(json.dumps([plugyard.__file__, plugyard_demo_stats.__file__]))
        """,
    )
    for path in found:
        assert Path(path).is_relative_to(demo_venv.site_packages)


def test_entry_points_name_every_plugin_module_with_its_distribution(demo_venv: Venv) -> None:
    found = run_json(
        demo_venv,
        """
        import importlib.metadata, json
        points = importlib.metadata.entry_points(group="plugyard.demo")
        print(json.dumps({p.name: [p.value, p.dist.name, p.dist.version] for p in points}))
        """,
    )
    assert found == {name: list(row) for name, row in ENTRY_POINTS.items()}


def test_discovered_plugins_run_with_their_distributions_versions(demo_venv: Venv) -> None:
    found = run_json(demo_venv, PRELUDE, LOAD_ALL)

    assert found["errors"] == {}
    assert found["states"] == dict.fromkeys(PLUGINS, "active")
    assert found["versions"] == DISTRIBUTION_VERSIONS
    assert found["results"] == RESULTS


def test_imported_pipeline_loads_in_dependency_order_and_runs(demo_venv: Venv) -> None:
    found = run_json(demo_venv, PRELUDE, IMPORT_PLUGINS, LOAD_ALL)

    assert found["errors"] == {}
    assert found["states"] == dict.fromkeys(PLUGINS, "active")
    order = found["setup_order"]
    # Only class plugins are traced: reverse is a function.
    assert sorted(order) == sorted(set(PLUGINS) - {"reverse"})
    assert order.index("tokenize") < order.index("normalize")
    assert order.index("normalize") < order.index("wordcount") < order.index("report")
    assert order.index("normalize") < order.index("charcount") < order.index("report")
    assert order.index("normalize") < order.index("shout")  # optional, but present
    assert found["results"] == RESULTS


def test_imported_plugins_get_their_distributions_versions(demo_venv: Venv) -> None:
    found = run_json(demo_venv, PRELUDE, IMPORT_PLUGINS, LOAD_ALL)

    assert found["versions"] == DISTRIBUTION_VERSIONS


def test_plugin_whose_optional_dependency_failed_still_runs(make_venv: MakeVenv) -> None:
    venv = make_venv("plugyard-demo-extras", "plugyard-demo-normalize")

    found = run_json(venv, PRELUDE, LOAD_ALL)

    assert found["states"] == {"normalize": "failed", "reverse": "active", "shout": "active"}
    kind, data = found["errors"]["normalize"]
    assert kind == "MissingDependencyError"
    assert data["missing"] == "tokenize"
    assert found["results"] == {"shout": "HELLO, WORLD!", "reverse": "olleH"}
