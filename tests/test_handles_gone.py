"""Handles of plugins whose distribution was uninstalled: calls say not found, repr still works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lifecycle_helpers import unique_group
from plugyard import PluginManager, PluginState
from plugyard.exceptions import PluginNotFoundError
from plugyard.testing import MakeDistribution


@pytest.fixture(autouse=True)
def _no_index_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scan the site directory on every rescan: these tests are about handles, not the cache."""
    monkeypatch.setenv("PLUGYARD_NO_CACHE", "1")


def install(make_distribution: MakeDistribution) -> tuple[str, Path]:
    """Install plugin ``gone`` in a group of its own; return the group and its dist-info."""
    group = unique_group("tests.gone")
    module = group.replace(".", "_")
    dist_info = make_distribution(
        f"{module}-dist",
        "1.0",
        entry_points={group: {"gone": f"{module}:gone"}},
        files={f"{module}.py": "def gone(data):\n    return data\n"},
    )
    return group, dist_info


def uninstall(manager: PluginManager, dist_info: Path) -> None:
    """Remove the distribution as an uninstaller would, and tell the manager."""
    shutil.rmtree(dist_info)
    assert manager.rescan() == []
    assert "gone" not in manager.states()


@pytest.mark.parametrize("via", ["load", "get"])
def test_a_handle_of_an_unloaded_plugin_whose_distribution_is_gone(
    make_distribution: MakeDistribution, via: str
) -> None:
    group, dist_info = install(make_distribution)
    with PluginManager(group=group, path=[str(dist_info.parent)]) as manager:
        handle = manager.load("gone") if via == "load" else manager.get("gone")
        assert handle.execute(1) == 1
        manager.unload("gone")
        uninstall(manager, dist_info)
        with pytest.raises(PluginNotFoundError) as exc:
            handle.execute(1)
        assert exc.value.plugin == "gone"
        assert exc.value.group == group
        assert "gone" in repr(handle)


def test_a_plugin_never_loaded_whose_distribution_is_gone_is_not_found(
    make_distribution: MakeDistribution,
) -> None:
    group, dist_info = install(make_distribution)
    with PluginManager(group=group, path=[str(dist_info.parent)]) as manager:
        assert manager.states() == {"gone": PluginState.DISCOVERED}
        uninstall(manager, dist_info)
        for call in (lambda: manager.execute("gone", 1), lambda: manager.get("gone")):
            with pytest.raises(PluginNotFoundError) as exc:
                call()
            assert exc.value.plugin == "gone"
            assert exc.value.group == group
