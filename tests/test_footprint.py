"""What a loaded plugin costs the process: objects for the collector to walk, and bytes.

Each object the cyclic collector tracks is walked by every full collection,
so what a loaded plugin holds is paid again as the host grows (issue 14's
``load_all`` and ``shutdown`` rows at N = 10,000). The bounds below are what
the design holds, counted here with the collector's own list: a slot, a
handle, a candidate, the instance, one gate per activation (with its calls
list and the three bound methods a handle reaches), and with metrics on the
plugin's recorder.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter

import pytest

import plugyard
from plugyard.testing import MakeDistribution

N = 300


class _Plugin:
    def execute(self, data: object) -> object:
        return data


def _loaded(metrics: bool) -> tuple[plugyard.PluginManager, Counter[str], int]:
    """Load N registered plugins; what the load added, by type, and the bytes it still holds."""
    registry = plugyard.Registry("footprint")
    for i in range(N):
        registry.register(type(f"Plugin{i}", (_Plugin,), {}), name=f"plugin{i}")
    manager = plugyard.PluginManager(registry, entry_points=False, metrics=metrics)
    manager.states()  # listed: what a load adds is what is counted
    gc.collect()
    before = {id(obj) for obj in gc.get_objects()}
    tracemalloc.start()
    try:
        manager.load_all()
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    added = Counter(type(obj).__name__ for obj in gc.get_objects() if id(obj) not in before)
    return manager, added, held


@pytest.mark.parametrize(("metrics", "most"), [(True, 11), (False, 10)])
def test_a_loaded_plugin_holds_few_objects_for_the_collector(metrics: bool, most: int) -> None:
    manager, added, _ = _loaded(metrics)
    assert set(manager.states().values()) == {plugyard.PluginState.ACTIVE}
    per_plugin = sum(added.values()) / N
    assert per_plugin <= most + 0.1, added.most_common(12)
    # One gate per active plugin, the metered one only with metrics.
    gates = added["MeteredGate"] if metrics else added["Gate"]
    assert gates == N, added.most_common(12)


def test_the_gate_lets_the_instance_go_at_shutdown() -> None:
    """A torn-down plugin's instance is freed; its slot no longer holds the gate."""
    manager, _, _ = _loaded(metrics=True)
    manager.shutdown()
    gc.collect()
    assert not [obj for obj in gc.get_objects() if isinstance(obj, _Plugin)]


def test_a_loaded_plugin_holds_about_a_kilobyte_with_metrics() -> None:
    """Measured at about 1.27 kB on CPython 3.11; it was 2.7 kB before the gates."""
    _, _, held = _loaded(metrics=True)
    assert held / N < 1_600


PLUGIN = """
class Plugin:
    def execute(self, data):
        return data
"""


def test_installed_plugins_share_their_group_and_version_strings(
    make_distribution: MakeDistribution,
) -> None:
    """Equal strings read from many distributions' metadata are one object, not one each."""
    group = "tests.footprint"
    for i in range(3):
        make_distribution(
            f"tests-footprint{i}",
            "1.0.0",
            entry_points={group: {f"plugin{i}": f"tests_footprint{i}:Plugin"}},
            files={f"tests_footprint{i}.py": PLUGIN},
        )
    manager = plugyard.PluginManager(group=group)
    manager.load_all()
    candidates = {candidate.name: candidate for candidate in manager.candidates()}
    eps = [candidates[f"plugin{i}"].entry_point for i in range(3)]
    assert all(ep is not None for ep in eps)
    groups = {id(ep.group) for ep in eps if ep is not None}
    versions = {id(ep.version) for ep in eps if ep is not None}
    assert (len(groups), len(versions)) == (1, 1)
    for i, ep in enumerate(eps):
        info = manager.info(f"plugin{i}")
        assert ep is not None
        # The origin is the entry point's value, and the metrics' version key is its version.
        assert info.origin is ep.value
        assert next(iter(manager.metrics(f"plugin{i}").versions)) is ep.version
