"""The manager's events, metrics and configuration, end to end."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugyard import (
    ConfigChanged,
    ConfigRejected,
    ConfigStore,
    Event,
    PluginActivated,
    PluginContext,
    PluginDiscovered,
    PluginFailed,
    PluginLoaded,
    PluginManager,
    PluginState,
    PluginUnloaded,
    Registry,
    to_prometheus,
)
from plugyard._handles import Gate
from plugyard.exceptions import (
    ConfigError,
    DependencyFailedError,
    PluginError,
    PluginNotActiveError,
)


def simple(registry: Registry) -> None:
    @registry.register(name="base", version="1.0")
    def base(data: int) -> int:
        return data + 1

    @registry.register(name="top", depends_on=["base"])
    class Top:
        def setup(self, ctx: PluginContext) -> None:
            self.base = ctx.dependency("base")

        def execute(self, data: int) -> int:
            if data < 0:
                raise ValueError("negative")
            return int(self.base.execute(data)) * 2


# -- events -----------------------------------------------------------------


def test_lifecycle_events_in_order(registry: Registry, manager: PluginManager) -> None:
    simple(registry)
    seen: list[tuple[str, str]] = []
    manager.events.subscribe(None, lambda e: seen.append((type(e).__name__, e.plugin)))
    manager.load("top")
    manager.unload("top")
    assert seen == [
        ("PluginDiscovered", "base"),
        ("PluginDiscovered", "top"),
        ("PluginLoaded", "base"),
        ("PluginActivated", "base"),
        ("PluginLoaded", "top"),
        ("PluginActivated", "top"),
        ("PluginUnloaded", "top"),
    ]


def test_subscribe_by_type_and_by_name(registry: Registry, manager: PluginManager) -> None:
    simple(registry)
    by_type: list[PluginActivated] = []
    by_name: list[Event] = []
    manager.events.subscribe(PluginActivated, by_type.append)
    sub = manager.events.subscribe("PluginLoaded", by_name.append)
    manager.load("base")
    sub.unsubscribe()
    manager.load("top")
    assert [e.plugin for e in by_type] == ["base", "top"]
    assert [e.plugin for e in by_name] == ["base"]
    assert isinstance(by_name[0], PluginLoaded)
    assert by_type[0].group == registry.group
    assert by_type[0].version == "1.0"


def test_failure_event_carries_the_error(registry: Registry, manager: PluginManager) -> None:
    @registry.register(depends_on=["missing"])
    def lonely(data: object) -> object:
        return data

    failures: list[PluginFailed] = []
    manager.events.subscribe(PluginFailed, failures.append)
    manager.load_all()
    (event,) = failures
    assert event.plugin == "lonely"
    assert event.error is manager.errors()["lonely"]


def test_handlers_run_after_the_lock_is_released_and_may_call_back(
    registry: Registry, manager: PluginManager
) -> None:
    simple(registry)
    results: list[object] = []

    def handler(event: PluginActivated) -> None:
        # Another thread could take the manager's lock now: it is free.
        free = threading.Event()

        def probe() -> None:
            manager.states()
            free.set()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join(timeout=5)
        results.append(free.is_set())
        if event.plugin == "top":
            results.append(manager.execute("top", 1))
            manager.unload("top")

    manager.events.subscribe(PluginActivated, handler)
    manager.load("top")
    assert results == [True, True, 4]
    assert manager.states()["top"] is PluginState.UNLOADED


def test_a_failing_handler_is_logged_and_stops_nothing(
    registry: Registry, manager: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    simple(registry)
    after: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    manager.events.subscribe(PluginActivated, broken)
    manager.events.subscribe(PluginActivated, lambda e: after.append(e.plugin))
    with caplog.at_level(logging.ERROR, logger="plugyard.events"):
        manager.load("top")
    assert after == ["base", "top"]
    assert manager.states()["top"] is PluginState.ACTIVE
    assert "handler bug" in caplog.text
    assert "PluginActivated" in caplog.text


# -- metrics ----------------------------------------------------------------


def test_calls_errors_and_timings_are_counted(registry: Registry, manager: PluginManager) -> None:
    simple(registry)
    for i in range(5):
        manager.execute("top", i)
    with pytest.raises(ValueError, match="negative"):
        manager.execute("top", -1)
    snap = manager.metrics("top")
    assert (snap.calls, snap.errors, snap.in_flight) == (6, 1, 0)
    assert "negative" in (snap.last_error or "")
    assert snap.setup_time is not None
    assert snap.p50 is not None
    # top holds base's instance and calls it directly: not through a handle.
    assert manager.metrics()["base"].calls == 0
    manager.execute("base", 1)
    assert manager.metrics()["base"].calls == 1


def test_metrics_are_exact_under_threads(registry: Registry, manager: PluginManager) -> None:
    """8 threads x 100,000 calls through one handle record exactly 800,000 calls."""

    @registry.register(name="count")
    def count(data: int) -> int:
        return data

    handle = manager.get("count")

    def worker() -> None:
        call = handle.execute
        for i in range(100_000):
            call(i)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = manager.metrics("count")
    assert snap.calls == 800_000
    assert sum(snap.latency_buckets) == 800_000


def test_metrics_off_counts_nothing_but_still_reaches_the_plugin(registry: Registry) -> None:
    simple(registry)
    manager = PluginManager(registry, metrics=False)
    handle = manager.get("top")
    assert handle.execute(3) == 8
    # The drain counter's gate, not the metered one.
    assert type(handle.execute.__self__) is Gate  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="metrics are off"):
        manager.metrics()


def test_prometheus_text_parses(registry: Registry, manager: PluginManager) -> None:
    simple(registry)
    manager.execute("top", 1)
    families = {f.name: f for f in text_string_to_metric_families(to_prometheus(manager.metrics()))}
    calls = families["plugyard_plugin_calls"]
    top = [
        s for s in calls.samples if s.labels.get("plugin") == "top" and s.name.endswith("_total")
    ]
    assert top[0].value == 1
    assert top[0].labels["group"] == registry.group


# -- configuration ----------------------------------------------------------


@attrs.define
class SinkConfig:
    url: str
    retries: int = 3
    secret: bytes = b""


def configurable(registry: Registry, seen: list[Any]) -> None:
    @registry.register(name="sink")
    class Sink:
        config_type = SinkConfig

        def setup(self, ctx: PluginContext) -> None:
            seen.append(ctx.config)

        def configure(self, config: SinkConfig) -> None:
            if config.retries > 10:
                raise ValueError("too many retries")
            seen.append(config)

        def execute(self, data: object) -> object:
            return data

    @registry.register(name="other")
    def other(data: object) -> object:
        return data


@pytest.fixture(name="store")
def fixture_store(tmp_path: Path) -> ConfigStore:
    return ConfigStore(tmp_path / "config")


def test_stored_config_is_validated_into_config_type(
    registry: Registry, store: ConfigStore
) -> None:
    seen: list[Any] = []
    configurable(registry, seen)
    store.save(registry.group, "sink", {"url": "http://x", "secret": b"\x00\xff"})
    manager = PluginManager(registry, config=store)
    manager.load("sink")
    assert seen == [SinkConfig("http://x", 3, b"\x00\xff")]
    assert manager.config("sink") == SinkConfig("http://x", 3, b"\x00\xff")


def test_invalid_stored_config_fails_that_plugin_naming_the_field(
    registry: Registry, store: ConfigStore
) -> None:
    configurable(registry, [])
    store.save(registry.group, "sink", {"url": "http://x", "retries": "many"})
    manager = PluginManager(registry, config=store)
    states = manager.load_all()
    assert states == {"other": PluginState.ACTIVE, "sink": PluginState.FAILED}
    error = manager.errors()["sink"]
    assert isinstance(error, ConfigError)
    assert error.field == "retries"


def test_corrupt_config_file_fails_plugin_and_is_left_alone(
    registry: Registry, store: ConfigStore
) -> None:
    configurable(registry, [])
    path = store.path(registry.group, "sink")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xc1 not msgpack")
    manager = PluginManager(registry, config=store)
    assert manager.load_all()["other"] is PluginState.ACTIVE
    error = manager.errors()["sink"]
    assert isinstance(error, ConfigError)
    assert error.path == path
    assert str(path) in str(error)
    manager.configure("other", {"x": 1})  # a healthy plugin still configures
    manager.load_all()
    assert manager.states()["sink"] is PluginState.FAILED
    assert path.read_bytes() == b"\xc1 not msgpack"


def test_configure_applies_live_persists_and_announces(
    registry: Registry, store: ConfigStore
) -> None:
    seen: list[Any] = []
    configurable(registry, seen)
    store.save(registry.group, "sink", {"url": "http://old"})
    manager = PluginManager(registry, config=store)
    manager.load("sink")
    changes: list[ConfigChanged] = []
    manager.events.subscribe(ConfigChanged, changes.append)
    manager.configure("sink", {"url": "http://new", "secret": b"\x01"})
    assert seen[-1] == SinkConfig("http://new", 3, b"\x01")
    assert manager.config("sink") == SinkConfig("http://new", 3, b"\x01")
    assert store.load(registry.group, "sink") == {
        "url": "http://new",
        "retries": 3,
        "secret": b"\x01",
    }
    (change,) = changes
    assert change.old == {"url": "http://old", "retries": 3, "secret": b""}
    assert change.new["secret"] == b"\x01"
    again = PluginManager(registry, config=store)
    assert again.config("sink") == SinkConfig("http://new", 3, b"\x01")


def test_rejected_config_keeps_the_old_one_in_memory_and_on_disk(
    registry: Registry, store: ConfigStore
) -> None:
    configurable(registry, [])
    store.save(registry.group, "sink", {"url": "http://old"})
    manager = PluginManager(registry, config=store)
    manager.load("sink")
    rejected: list[ConfigRejected] = []
    manager.events.subscribe(ConfigRejected, rejected.append)
    with pytest.raises(ConfigError, match="too many retries") as exc:
        manager.configure("sink", {"url": "http://new", "retries": 99})
    assert isinstance(exc.value.__cause__, ValueError)
    assert manager.config("sink") == SinkConfig("http://old")
    assert store.load(registry.group, "sink") == {"url": "http://old"}
    assert rejected[0].error is exc.value
    with pytest.raises(ConfigError) as invalid:
        manager.configure("sink", {"url": 5})
    assert invalid.value.field == "url"
    assert len(rejected) == 2


def test_disable_is_persisted_and_skipped_by_load_all(
    registry: Registry, store: ConfigStore
) -> None:
    simple(registry)
    manager = PluginManager(registry, config=store)
    manager.disable("base")
    again = PluginManager(registry, config=store)
    states = again.load_all()
    assert states == {"base": PluginState.DISCOVERED, "top": PluginState.FAILED}
    assert isinstance(again.errors()["top"], DependencyFailedError)
    assert {c.name: c.enabled for c in again.candidates()} == {"base": False, "top": True}
    with pytest.raises(PluginNotActiveError, match="disabled"):
        again.load("base")
    with pytest.raises(PluginNotActiveError, match="disabled"):
        again.execute("base", 1)
    again.enable("base")
    assert PluginManager(registry, config=store).execute("top", 1) == 4


def test_without_a_store_disable_lasts_for_the_manager(
    registry: Registry, manager: PluginManager
) -> None:
    simple(registry)
    manager.disable("top")
    assert manager.load_all()["top"] is PluginState.DISCOVERED
    manager.enable("top")
    assert manager.load_all()["top"] is PluginState.ACTIVE


def test_events_for_every_step_are_published(registry: Registry, manager: PluginManager) -> None:
    simple(registry)
    kinds: set[type[Event]] = set()
    manager.events.subscribe(None, lambda e: kinds.add(type(e)))
    manager.load_all()
    manager.shutdown()
    assert {PluginDiscovered, PluginLoaded, PluginActivated, PluginUnloaded} <= kinds
