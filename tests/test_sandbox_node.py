"""The Node.js plugin of contrib_plugins/, served by real Node over the protocol."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plugyard import EventBus, PluginActivated, PluginManager, Registry
from plugyard.exceptions import ConfigError, RemoteError
from plugyard.runtime import Sandbox, external

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_stray_processes")]

PLUGIN = Path(__file__).resolve().parents[1] / "contrib_plugins" / "node-wordfreq"
NODE = shutil.which("node")


@pytest.fixture(name="wordfreq")
def fixture_wordfreq(registry: Registry) -> Registry:
    """A registry with the Node plugin registered as ``wordfreq``."""
    if NODE is None:
        pytest.fail("Node.js is not installed: the Node plugin cannot be tested")
    if not (PLUGIN / "node_modules" / "@msgpack" / "msgpack").is_dir():
        pytest.fail(f"run 'npm ci --prefix {PLUGIN}' first (.ci/run does)")
    argv = [NODE, str(PLUGIN / "index.js"), "wordfreq"]
    registry.register(external(argv, readable=[str(PLUGIN)]), name="wordfreq", version="1.0.0")
    return registry


def test_the_node_plugin_counts_words_under_every_layer(wordfreq: Registry) -> None:
    bus = EventBus()
    activated: list[str] = []
    bus.subscribe(PluginActivated, lambda e: activated.append(e.plugin))
    with PluginManager(wordfreq, events=bus, sandbox=Sandbox()) as manager:
        counts = manager.execute("wordfreq", "The cat saw the other cat; the end.")
        assert counts == {"the": 3, "cat": 2, "end": 1, "other": 1, "saw": 1}
        layers = manager.get("wordfreq").instance.supervisor.child.launch.applied
        assert {"rlimits", "environment", "cwd", "no_new_privs"} <= set(layers)
        assert manager.metrics("wordfreq").calls == 1
    assert activated == ["wordfreq"]


def test_the_node_plugin_takes_config_and_reports_its_errors(wordfreq: Registry) -> None:
    with PluginManager(wordfreq, sandbox=Sandbox()) as manager:
        manager.load("wordfreq")
        manager.configure("wordfreq", {"top": 1})
        assert manager.execute("wordfreq", "a b b") == {"b": 2}
        with pytest.raises(ConfigError, match="top must be a positive integer"):
            manager.configure("wordfreq", {"top": 0})
        with pytest.raises(RemoteError) as exc:
            manager.execute("wordfreq", 42)
        assert exc.value.data["type"] == "TypeError"
        assert manager.execute("wordfreq", "c c") == {"c": 2}
