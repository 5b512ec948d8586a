"""Per-plugin metrics for Prometheus, through ``prometheus_client``.

Hosts that already expose ``/metrics`` register plugyard in one line::

    from prometheus_client import REGISTRY
    from plugyard.prometheus import PluginCollector

    REGISTRY.register(PluginCollector(manager))

Every sample is labelled ``group`` and ``plugin``. The families are
``plugyard_plugin_calls_total``, ``plugyard_plugin_errors_total``,
``plugyard_plugin_in_flight``, the histogram
``plugyard_plugin_call_duration_seconds`` (buckets from 1.024 µs doubling to
137 s), the calls each version answered ``plugyard_plugin_version_calls_total``
(labelled ``version`` too) and, for the plugins that recorded them,
``plugyard_plugin_import_duration_seconds``,
``plugyard_plugin_setup_duration_seconds`` and
``plugyard_plugin_last_error_timestamp_seconds``.

This module needs ``prometheus_client`` (``pip install 'plugyard[prometheus]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ._metrics import LATENCY_BUCKETS, MetricsSnapshot
from ._public import present_top_level as _present_top_level
from .exceptions import PluginError

__all__ = ["PluginCollector", "to_prometheus"]

_LABELS = ["group", "plugin"]
_PREFIX = "plugyard_plugin_"
_BOUNDS = [repr(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]

Snapshots = Iterable[MetricsSnapshot] | Mapping[str, MetricsSnapshot]


class PluginCollector(Collector):
    """A ``prometheus_client`` collector of plugyard's per-plugin metrics.

    Args:
        *sources: What to read at each scrape: :class:`PluginManager` objects
            (their :meth:`~PluginManager.metrics`), or callables returning
            snapshots. Managers made with ``metrics=False`` contribute nothing.
    """

    def __init__(self, *sources: Any) -> None:
        self._sources: list[Callable[[], Snapshots]] = [
            _reader(source) if hasattr(source, "metrics") else source for source in sources
        ]

    def describe(self) -> list[Any]:
        """Nothing up front: the plugins (and so the samples) change at run time."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families of every plugin of every source, now."""
        snapshots: list[MetricsSnapshot] = []
        for read in self._sources:
            found = read()
            snapshots.extend(found.values() if isinstance(found, Mapping) else found)
        yield from families(snapshots)


def _reader(manager: Any) -> Callable[[], Snapshots]:
    def read() -> Snapshots:
        try:
            snapshots: Snapshots = manager.metrics()
        except PluginError:  # made with metrics=False
            return []
        return snapshots

    return read


def to_prometheus(snapshots: Snapshots) -> str:
    """Render snapshots in the Prometheus text format, as ``prometheus_client`` writes it.

    Args:
        snapshots: Snapshots of any groups, or a mapping whose values are
            snapshots (as :meth:`PluginManager.metrics` returns).

    Returns:
        The exposition text; empty without snapshots.
    """
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PluginCollector(lambda: snapshots))
    return generate_latest(registry).decode()


def families(snapshots: Iterable[MetricsSnapshot]) -> Iterator[Any]:
    """The Prometheus metric families of ``snapshots``, sorted by group and plugin."""
    ordered = sorted(snapshots, key=lambda s: (s.group, s.plugin))
    if not ordered:
        return
    calls = CounterMetricFamily(
        f"{_PREFIX}calls", "Calls of the plugin that returned or raised.", labels=_LABELS
    )
    errors = CounterMetricFamily(
        f"{_PREFIX}errors", "Calls of the plugin that raised.", labels=_LABELS
    )
    in_flight = GaugeMetricFamily(
        f"{_PREFIX}in_flight", "Calls of the plugin running now.", labels=_LABELS
    )
    duration = HistogramMetricFamily(
        f"{_PREFIX}call_duration_seconds", "How long calls of the plugin took.", labels=_LABELS
    )
    imported = GaugeMetricFamily(
        f"{_PREFIX}import_duration_seconds",
        "Seconds importing and instantiating the plugin took.",
        labels=_LABELS,
    )
    setup = GaugeMetricFamily(
        f"{_PREFIX}setup_duration_seconds", "Seconds the plugin's setup() took.", labels=_LABELS
    )
    version_calls = CounterMetricFamily(
        f"{_PREFIX}version_calls",
        "Calls of the plugin that each of its versions answered.",
        labels=[*_LABELS, "version"],
    )
    last_error = GaugeMetricFamily(
        f"{_PREFIX}last_error_timestamp_seconds",
        "When a call of the plugin last raised, in seconds since the epoch.",
        labels=_LABELS,
    )
    for s in ordered:
        labels = [s.group, s.plugin]
        calls.add_metric(labels, s.calls)
        errors.add_metric(labels, s.errors)
        in_flight.add_metric(labels, s.in_flight)
        cumulative = 0
        buckets = []
        for bound, count in zip(_BOUNDS, s.latency_buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        duration.add_metric(labels, buckets, s.latency_sum)
        for version, count in sorted(s.versions.items()):
            version_calls.add_metric([*labels, version], count)
        if s.import_time is not None:
            imported.add_metric(labels, s.import_time)
        if s.setup_time is not None:
            setup.add_metric(labels, s.setup_time)
        if s.last_error_time is not None:
            last_error.add_metric(labels, s.last_error_time)
    yield from (calls, errors, in_flight, duration)
    yield from (f for f in (version_calls, imported, setup, last_error) if f.samples)


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
