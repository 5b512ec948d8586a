"""Per-plugin metrics and their Prometheus text."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

import plugyard
from plugyard._handles import Gate, PluginHandle, open_gate
from plugyard._metrics import (
    LATENCY_BUCKETS,
    GroupMetrics,
    MetricsSnapshot,
    PluginMetrics,
    bucket_index,
)
from plugyard.prometheus import to_prometheus

NBUCKETS = len(LATENCY_BUCKETS) + 1

#: Durations in ns from 0 to past the last bucket bound (2**37 ns).
durations = st.integers(min_value=0, max_value=2**40)


class FakeClock:
    """A clock that makes each measured call last the next of ``durations`` ns."""

    def __init__(self, durations: Iterable[int]) -> None:
        self._durations = iter(durations)
        self._now = 10**12
        self._started = False

    def __call__(self) -> int:
        if self._started:
            self._now += next(self._durations)
        self._started = not self._started
        return self._now


def measured(
    durations: list[int], *, fail: Callable[[int], bool] = lambda i: False
) -> PluginMetrics:
    """A recorder that has measured one call per duration; calls where ``fail(i)`` raised."""
    metrics = PluginMetrics("p", "g", clock=FakeClock(durations))

    def plugin(i: int) -> int:
        if fail(i):
            raise ValueError(i)
        return i

    call = guarded(metrics, plugin)
    for i in range(len(durations)):
        with contextlib.suppress(ValueError):
            call(i)
    return metrics


def bounds_of(index: int) -> tuple[float, float]:
    """The (exclusive lower, inclusive upper) bounds of a bucket in seconds."""
    lower = LATENCY_BUCKETS[index - 1] if index else 0.0
    upper = LATENCY_BUCKETS[index] if index < len(LATENCY_BUCKETS) else math.inf
    return lower, upper


# -- exact counts under threads ------------------------------------------------------


def test_eight_threads_of_100000_calls_are_counted_exactly() -> None:
    """8 threads x 100,000 calls, 1 in 100 raising: exactly 800,000 calls and 8,000 errors."""
    metrics = PluginMetrics("hot", "g")

    def plugin(i: int) -> int:
        if i % 100 == 0:
            raise ValueError(i)
        return i

    call = guarded(metrics, plugin)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for i in range(100_000):
            with contextlib.suppress(ValueError):
                call(i)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = metrics.snapshot()
    assert snapshot.calls == 800_000
    assert snapshot.errors == 8_000
    assert snapshot.in_flight == 0
    assert sum(snapshot.latency_buckets) == 800_000
    assert snapshot.last_error is not None
    assert snapshot.last_error.startswith("ValueError(")


def gate(
    metrics: PluginMetrics,
    fn: Callable[..., Any],
    calls: list[None] | None = None,
    redirect: Callable[[Any], Any] = lambda data: None,
) -> Gate:
    """The gate of an active plugin whose ``execute`` is ``fn``, recording in ``metrics``."""
    handle = cast("PluginHandle", SimpleNamespace(name="p", execute=redirect))
    return open_gate(handle, SimpleNamespace(execute=fn), [] if calls is None else calls, metrics)


def guarded(metrics: PluginMetrics, fn: Callable[..., Any], calls: list[None] | None = None) -> Any:
    """The callable a handle of an active plugin holds, never closed."""
    return gate(metrics, fn, calls).execute


def test_the_guarded_wrapper_counts_exactly_under_threads() -> None:
    metrics = PluginMetrics("hot", "g")
    call = guarded(metrics, lambda data: data)

    def worker() -> None:
        for i in range(20_000):
            call(i)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.snapshot().calls == 160_000


def test_snapshots_taken_during_calls_never_show_more_errors_than_calls() -> None:
    metrics = PluginMetrics("p", "g")

    def plugin(i: int) -> int:
        if i % 2:
            raise ValueError(i)
        return i

    call = guarded(metrics, plugin)
    stop = threading.Event()

    def worker() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            with contextlib.suppress(ValueError):
                call(i)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        previous = metrics.snapshot()
        for _ in range(300):
            snapshot = metrics.snapshot()
            assert 0 <= snapshot.errors <= snapshot.calls
            assert snapshot.in_flight >= 0
            assert snapshot.calls >= previous.calls
            assert snapshot.errors >= previous.errors
            previous = snapshot
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert metrics.snapshot().in_flight == 0


def test_threads_that_end_keep_their_counts_and_free_their_slots() -> None:
    metrics = PluginMetrics("p", "g")
    call = guarded(metrics, lambda: None)
    for _ in range(50):
        thread = threading.Thread(target=lambda: [call() for _ in range(10)])
        thread.start()
        thread.join()
    gc.collect()
    assert metrics.snapshot().calls == 500
    # The slots of ended threads were folded into the total.
    assert metrics._slots is not None
    assert metrics._slots.live == {}


def test_counts_never_go_back_while_threads_come_and_go() -> None:
    """Snapshots taken while threads end (and their slots are folded) only grow."""
    metrics = PluginMetrics("p", "g")
    call = guarded(metrics, lambda: None)
    stop = threading.Event()
    spawned = [0]

    def spawner() -> None:
        while not stop.is_set():
            batch = [
                threading.Thread(target=lambda: [call() for _ in range(100)]) for _ in range(4)
            ]
            for thread in batch:
                thread.start()
            for thread in batch:
                thread.join()
            spawned[0] += len(batch)

    thread = threading.Thread(target=spawner)
    thread.start()
    try:
        previous = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            calls = metrics.snapshot().calls
            assert calls >= previous
            previous = calls
    finally:
        stop.set()
        thread.join()
    assert metrics.snapshot().calls == spawned[0] * 100


# -- what a call records -------------------------------------------------------


def test_in_flight_counts_calls_that_have_not_returned() -> None:
    metrics = PluginMetrics("p", "g")
    entered = threading.Event()
    release = threading.Event()

    def slow() -> None:
        entered.set()
        assert release.wait(10)

    call = guarded(metrics, slow)
    thread = threading.Thread(target=call)
    thread.start()
    try:
        assert entered.wait(10)
        snapshot = metrics.snapshot()
        assert snapshot.in_flight == 1
        assert snapshot.calls == 0
    finally:
        release.set()
        thread.join()
    snapshot = metrics.snapshot()
    assert (snapshot.in_flight, snapshot.calls) == (0, 1)


def test_a_raising_call_counts_an_error_and_becomes_the_last_error() -> None:
    metrics = PluginMetrics("p", "g")
    error = KeyError("missing")

    def plugin() -> None:
        raise error

    call = guarded(metrics, plugin)
    before = time.time()
    with pytest.raises(KeyError) as exc:
        call()
    assert exc.value is error
    snapshot = metrics.snapshot()
    assert (snapshot.calls, snapshot.errors) == (1, 1)
    assert snapshot.last_error == "KeyError('missing')"
    assert snapshot.last_error_time is not None
    assert before <= snapshot.last_error_time <= time.time()


def test_an_exception_whose_repr_fails_is_still_recorded() -> None:
    class WeirdError(Exception):
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    metrics = PluginMetrics("p", "g")

    def plugin() -> None:
        raise WeirdError

    with pytest.raises(WeirdError):
        guarded(metrics, plugin)()
    last_error = metrics.snapshot().last_error
    assert last_error is not None
    assert last_error.endswith(".WeirdError (repr() failed)>")


def test_wrappers_pass_arguments_and_keep_the_name() -> None:
    metrics = PluginMetrics("p", "g")

    def execute(data: Any = "default", *, scale: int = 1) -> Any:
        return (data, scale)

    unary = guarded(metrics, execute)
    assert unary(5) == (5, 1)
    assert unary() == ("default", 1)
    assert unary(None) == (None, 1)
    assert metrics.snapshot().calls == 3


def test_the_guarded_wrapper_counts_errors_too() -> None:
    metrics = PluginMetrics("p", "g")
    calls: list[None] = []

    def execute(data: int) -> int:
        assert calls == [None]  # in flight while it runs
        raise LookupError(data)

    with pytest.raises(LookupError):
        guarded(metrics, execute, calls)(7)
    assert calls == []
    snapshot = metrics.snapshot()
    assert (snapshot.calls, snapshot.errors, snapshot.in_flight) == (1, 1, 0)
    assert snapshot.last_error == "LookupError(7)"


def test_a_coroutine_function_gets_a_coroutine_wrapper_measuring_the_await() -> None:
    metrics = PluginMetrics("p", "g", clock=FakeClock([5_000, 7_000, 9_000]))

    async def execute(data: int) -> int:
        await asyncio.sleep(0)
        if data < 0:
            raise ValueError(data)
        return data * 2

    wrapped = guarded(metrics, execute)
    unary = guarded(metrics, execute)
    assert asyncio.iscoroutinefunction(wrapped)
    assert asyncio.iscoroutinefunction(unary)
    assert asyncio.run(wrapped(2)) == 4
    assert asyncio.run(unary(3)) == 6
    with pytest.raises(ValueError, match="-1"):
        asyncio.run(wrapped(-1))
    snapshot = metrics.snapshot()
    assert (snapshot.calls, snapshot.errors, snapshot.in_flight) == (3, 1, 0)
    assert snapshot.latency_sum == pytest.approx(21e-6)


def test_import_and_setup_times_and_errors_outside_calls_are_recorded() -> None:
    metrics = PluginMetrics("p", "g")
    assert metrics.snapshot() == MetricsSnapshot("p", "g")
    metrics.record_import(0.25)
    metrics.record_setup(0.125)
    metrics.record_error(RuntimeError("setup failed"))
    snapshot = metrics.snapshot()
    assert snapshot.import_time == 0.25
    assert snapshot.setup_time == 0.125
    assert snapshot.last_error == "RuntimeError('setup failed')"
    assert (snapshot.calls, snapshot.errors) == (0, 0)


# -- the histogram ---------------------------------------------------------------


def test_latency_buckets_double_from_1024_ns_to_137_s() -> None:
    assert LATENCY_BUCKETS[0] == 1.024e-06
    assert LATENCY_BUCKETS[-1] == 137.438953472
    assert all(b == 2 * a for a, b in itertools.pairwise(LATENCY_BUCKETS))


@pytest.mark.parametrize(
    ("duration_ns", "index"),
    [
        (0, 0),
        (1, 0),
        (1024, 0),
        (1025, 1),
        (2048, 1),
        (2049, 2),
        (1_000_000, 10),  # 1 ms is in (0.524288 ms, 1.048576 ms]
        (2**37, 27),
        (2**37 + 1, 28),
        (10**15, 28),
    ],
)
def test_bucket_index_uses_inclusive_upper_bounds(duration_ns: int, index: int) -> None:
    assert bucket_index(duration_ns) == index


@given(st.lists(durations, min_size=1, max_size=50))
def test_each_call_lands_in_its_bucket_and_the_sum_is_exact(samples: list[int]) -> None:
    snapshot = measured(samples).snapshot()
    expected = [0] * NBUCKETS
    for duration in samples:
        expected[bucket_index(duration)] += 1
        lower, upper = bounds_of(bucket_index(duration))
        assert lower < duration / 1e9 <= upper or (duration == 0 and lower == 0)
    assert list(snapshot.latency_buckets) == expected
    assert snapshot.latency_sum == sum(samples) / 1e9
    assert snapshot.calls == len(samples)


@settings(max_examples=200)
@given(st.lists(durations, min_size=1, max_size=200), st.sampled_from([0.5, 0.9, 0.99]))
def test_percentiles_lie_in_the_bucket_of_the_true_value(samples: list[int], q: float) -> None:
    snapshot = measured(samples).snapshot()
    estimate = snapshot.quantile(q)
    assert estimate is not None
    true_value = sorted(samples)[math.ceil(q * len(samples)) - 1]
    index = bucket_index(true_value)
    lower, upper = bounds_of(index)
    if index == len(LATENCY_BUCKETS):
        assert estimate == LATENCY_BUCKETS[-1]
    else:
        assert lower <= estimate <= upper
    assert {0.5: snapshot.p50, 0.9: snapshot.p90, 0.99: snapshot.p99}[q] == estimate


def test_percentiles_interpolate_within_a_bucket() -> None:
    """100 calls of 1.5 µs all fall in (1.024, 2.048] µs; the median is that bucket's middle."""
    snapshot = measured([1_500] * 100).snapshot()
    assert snapshot.p50 == pytest.approx(1.536e-6)
    assert snapshot.p90 == pytest.approx(1.024e-6 + 1.024e-6 * 0.9)
    assert snapshot.p99 == pytest.approx(1.024e-6 + 1.024e-6 * 0.99)


def test_quantiles_without_calls_are_none_and_q_is_checked() -> None:
    snapshot = MetricsSnapshot("p", "g")
    assert (snapshot.p50, snapshot.p90, snapshot.p99) == (None, None, None)
    for q in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="quantile") as exc:
            snapshot.quantile(q)
        assert repr(q) in str(exc.value)


# -- groups and Prometheus ---------------------------------------------------------


def test_group_metrics_keeps_one_recorder_per_plugin() -> None:
    group = GroupMetrics("g")
    first = group.plugin("b")
    assert group.plugin("b") is first
    guarded(group.plugin("a"), lambda: None)()
    snapshot = group.snapshot()
    assert list(snapshot) == ["a", "b"]
    assert snapshot["a"].calls == 1
    assert snapshot["a"].group == "g"
    with pytest.raises(TypeError):
        snapshot["c"] = MetricsSnapshot("c", "g")  # type: ignore[index]
    group.remove("b")
    group.remove("b")
    assert list(group.snapshot()) == ["a"]


@pytest.fixture(name="families")
def fixture_families() -> dict[str, Any]:
    """Prometheus text for two groups, parsed back by prometheus_client."""
    exporters = GroupMetrics("exporters", clock=FakeClock([500, 1_500, 3_000_000, 5 * 10**11]))
    csv = exporters.plugin("csv")
    call = guarded(csv, lambda fail: (_ for _ in ()).throw(ValueError()) if fail else None)
    for fail in (False, False, True, False):
        with contextlib.suppress(ValueError):
            call(fail)
    csv.record_import(0.002)
    csv.record_setup(0.001)
    odd = MetricsSnapshot(
        'we"ird\\gr\noup',
        "odd",
        calls=1,
        latency_buckets=(1,) + (0,) * (NBUCKETS - 1),
        latency_sum=1e-7,
    )
    text = to_prometheus([*exporters.snapshot().values(), odd])
    return {"text": text, "families": {f.name: f for f in text_string_to_metric_families(text)}}


def test_prometheus_text_parses_with_the_expected_families(families: dict[str, Any]) -> None:
    parsed = families["families"]
    assert {name: f.type for name, f in parsed.items()} == {
        "plugyard_plugin_calls": "counter",
        "plugyard_plugin_errors": "counter",
        "plugyard_plugin_in_flight": "gauge",
        "plugyard_plugin_call_duration_seconds": "histogram",
        "plugyard_plugin_import_duration_seconds": "gauge",
        "plugyard_plugin_setup_duration_seconds": "gauge",
        "plugyard_plugin_last_error_timestamp_seconds": "gauge",
    }
    text = families["text"]
    assert text.endswith("\n")
    assert text.count("# TYPE plugyard_plugin_calls_total counter") == 1


def test_prometheus_counters_carry_group_and_plugin_labels(families: dict[str, Any]) -> None:
    calls = {
        (s.labels["group"], s.labels["plugin"]): s.value
        for s in families["families"]["plugyard_plugin_calls"].samples
    }
    assert calls == {("exporters", "csv"): 4, ("odd", 'we"ird\\gr\noup'): 1}
    errors = {
        s.labels["plugin"]: s.value for s in families["families"]["plugyard_plugin_errors"].samples
    }
    assert errors == {"csv": 1, 'we"ird\\gr\noup': 0}
    (imported,) = families["families"]["plugyard_plugin_import_duration_seconds"].samples
    assert (imported.labels["plugin"], imported.value) == ("csv", 0.002)


def test_prometheus_histogram_is_cumulative_and_ends_at_inf(families: dict[str, Any]) -> None:
    samples = [
        s
        for s in families["families"]["plugyard_plugin_call_duration_seconds"].samples
        if s.labels["plugin"] == "csv"
    ]
    buckets = [(s.labels["le"], s.value) for s in samples if s.name.endswith("_bucket")]
    assert len(buckets) == NBUCKETS
    assert [float(le) for le, _ in buckets[:-1]] == list(LATENCY_BUCKETS)
    assert buckets[-1] == ("+Inf", 4)
    counts = [value for _, value in buckets]
    assert counts == sorted(counts)
    # 500 ns and 1.5 µs, then 3 ms, then 500 s above the last bound.
    assert dict(buckets)["1.024e-06"] == 1
    assert dict(buckets)["2.048e-06"] == 2
    assert dict(buckets)["0.004194304"] == 3
    assert dict(buckets)["137.438953472"] == 3
    (total,) = [s.value for s in samples if s.name.endswith("_sum")]
    (count,) = [s.value for s in samples if s.name.endswith("_count")]
    assert total == pytest.approx((500 + 1_500 + 3_000_000 + 5 * 10**11) / 1e9)
    assert count == 4


@pytest.mark.parametrize(
    ("value", "text"), [(math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (0.5, "0.5")]
)
def test_prometheus_writes_special_floats_as_prometheus_spells_them(
    value: float, text: str
) -> None:
    exposition = to_prometheus([MetricsSnapshot("p", "g", setup_time=value)])
    assert f'plugyard_plugin_setup_duration_seconds{{group="g",plugin="p"}} {text}\n' in exposition
    (family,) = [
        f
        for f in text_string_to_metric_families(exposition)
        if f.name == "plugyard_plugin_setup_duration_seconds"
    ]
    parsed = family.samples[0].value
    assert parsed == value or (math.isnan(parsed) and math.isnan(value))


def test_prometheus_text_of_nothing_is_empty() -> None:
    assert to_prometheus([]) == ""
    assert to_prometheus(GroupMetrics("g").snapshot()) == ""


def test_prometheus_text_of_a_group_is_that_of_its_snapshots() -> None:
    group = GroupMetrics("g")
    guarded(group.plugin("a"), lambda: None)()
    text = to_prometheus(group.snapshot())
    assert 'plugyard_plugin_calls_total{group="g",plugin="a"} 1.0\n' in text
    assert "last_error" not in text


def test_a_closed_guarded_wrapper_redirects_uncounted() -> None:
    """After a teardown closed it, a stale caller is handed on and counts nowhere."""
    metrics = PluginMetrics("p", "g")
    calls: list[None] = []
    seen: list[Any] = []
    opened = gate(metrics, lambda data: ("old", data), calls, seen.append)
    call = opened.execute
    assert call(1) == ("old", 1)
    opened.closed = True
    assert call(2) is None
    assert seen == [2]
    assert calls == []
    assert metrics.snapshot().calls == 1


def test_the_collector_reads_managers_at_each_scrape(registry: plugyard.Registry) -> None:
    """Registered once, the collector reports calls made after it was registered."""
    from prometheus_client import CollectorRegistry

    from plugyard import PluginManager
    from plugyard.prometheus import PluginCollector

    registry.register(lambda data: data, name="echo")
    counted = PluginManager(registry)
    silent = PluginManager(registry, metrics=False)
    scrape = CollectorRegistry()
    scrape.register(PluginCollector(counted, silent))
    assert scrape.get_sample_value("plugyard_plugin_calls_total", {"plugin": "echo"}) is None
    counted.execute("echo", 1)
    silent.execute("echo", 1)
    counted.execute("echo", 2)
    labels = {"group": registry.group, "plugin": "echo"}
    assert scrape.get_sample_value("plugyard_plugin_calls_total", labels) == 2
    assert scrape.get_sample_value("plugyard_plugin_call_duration_seconds_count", labels) == 2
    assert scrape.get_sample_value("plugyard_plugin_in_flight", labels) == 0


def test_a_wrapped_method_holds_no_thread_store_until_its_first_call() -> None:
    """A thousand plugins loaded and not called hold no thread-local stores."""
    metrics = PluginMetrics("p", "g")
    call = guarded(metrics, lambda: "done")
    stores = [metrics._local]
    assert metrics.snapshot().calls == 0
    assert call() == "done"
    stores.append(metrics._local)
    assert stores[0] is None
    assert isinstance(stores[1], threading.local)
    assert call() == "done"
    assert metrics.snapshot().calls == 2


def test_each_version_is_counted_apart_and_in_the_plugins_totals() -> None:
    """The first version is counted by the plugin's recorder itself; later ones apart."""
    metrics = PluginMetrics("p", "g")
    first = metrics.version("1.0")
    assert first is metrics  # most plugins never have a second version: no second recorder
    second = metrics.version("2.0")
    assert second is not metrics
    assert metrics.version("1.0") is first
    assert metrics.version("2.0") is second
    guarded(first, lambda data: data)(1)
    guarded(second, lambda data: data)(2)
    guarded(second, lambda data: data)(3)
    with pytest.raises(ValueError, match="late"):
        guarded(second, lambda data: (_ for _ in ()).throw(ValueError("late")))(4)
    snapshot = metrics.snapshot()
    assert dict(snapshot.versions) == {"1.0": 1, "2.0": 3}
    assert (snapshot.calls, snapshot.errors) == (4, 1)
    assert snapshot.last_error == "ValueError('late')"


def test_a_recorder_asked_for_no_version_reports_none() -> None:
    metrics = PluginMetrics("p", "g")
    guarded(metrics, lambda data: data)(1)
    snapshot = metrics.snapshot()
    assert (snapshot.calls, dict(snapshot.versions)) == (1, {})


def test_versions_asked_for_from_many_threads_get_one_recorder_each() -> None:
    metrics = PluginMetrics("p", "g")
    start = threading.Barrier(8)
    got: list[tuple[str, PluginMetrics]] = []

    def worker(i: int) -> None:
        start.wait()
        version = f"{i % 2}.0"
        got.append((version, metrics.version(version)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    by_version = {version: {id(r) for v, r in got if v == version} for version, _ in got}
    assert all(len(ids) == 1 for ids in by_version.values()), by_version
    assert len({next(iter(ids)) for ids in by_version.values()}) == 2


@pytest.mark.parametrize("metered", [True, False])
@pytest.mark.parametrize("now_async", [True, False])
def test_a_closed_async_gate_hands_a_stale_call_on_and_awaits_what_it_reaches(
    metered: bool, now_async: bool
) -> None:
    """A stale caller of an async gate gets what the handle holds now, sync or async."""
    metrics = PluginMetrics("p", "g")
    calls: list[None] = []

    async def old(data: Any) -> Any:
        return ("old", data)

    async def new_async(data: Any) -> Any:
        return ("new", data)

    def new_sync(data: Any) -> Any:
        return ("new", data)

    handle = cast(
        "PluginHandle", SimpleNamespace(name="p", execute=new_async if now_async else new_sync)
    )
    opened = open_gate(handle, SimpleNamespace(execute=old), calls, metrics if metered else None)
    assert asyncio.run(opened.execute(1)) == ("old", 1)
    opened.closed = True
    assert asyncio.run(opened.execute(2)) == ("new", 2)
    assert calls == []
    assert metrics.snapshot().calls == (1 if metered else 0)
