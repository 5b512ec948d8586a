"""Per-plugin metrics: calls, errors, in-flight calls, latency, import and setup time.

The hot path is the gate an active plugin's handle calls
(:class:`plugyard._handles.MeteredGate`): it counts every call exactly, from
any number of threads, without a lock. Each thread counts into its own slot
(a list that only that thread writes), and :meth:`PluginMetrics.snapshot`
adds the slots up. When a thread ends, its slot is folded into a total under
a lock, so threads that come and go cost no memory.

Latencies go into a histogram of fixed buckets whose upper bounds are the
powers of two nanoseconds from 1.024 µs to about 137 s
(:data:`LATENCY_BUCKETS`), plus one bucket above them; the bucket of a
duration is one ``int.bit_length()`` away. Percentiles are interpolated within
a bucket, as Prometheus' ``histogram_quantile`` does, so they are exact to the
bucket: within a factor of two.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ._introspect import isawaitable
from ._public import present_top_level as _present_top_level
from ._value import Value

__all__ = [
    "LATENCY_BUCKETS",
    "GroupMetrics",
    "MetricsSnapshot",
    "PluginMetrics",
    "bucket_index",
]


_FIRST_POWER = 10  # 2**10 ns = 1.024 µs
_LAST_POWER = 37  # 2**37 ns = 137.4 s

#: Upper bounds of the latency buckets in seconds: 2**10 ns (1.024 µs), doubling
#: to 2**37 ns (137.4 s). Durations above the last bound count in one more bucket.
LATENCY_BUCKETS: tuple[float, ...] = tuple(2**k / 1e9 for k in range(_FIRST_POWER, _LAST_POWER + 1))

# A thread's slot: [calls started, errors, latency sum in ns, raw buckets...].
# Raw bucket i counts durations d with (d - 1).bit_length() == i, that is
# d in (2**(i-1), 2**i] ns (0 and 1 ns in raw buckets 1 and 0). Any d below
# 2**63 ns has i < 64, so the slot needs no bounds check; snapshot() folds the
# raw buckets into LATENCY_BUCKETS. Calls in flight are calls started minus
# calls counted in a bucket, so a call costs one increment fewer.
_STARTED = 0
_ERRORS = 1
_SUM = 2
_RAW0 = 3
_SLOT_SIZE = _RAW0 + 64
_NBUCKETS = len(LATENCY_BUCKETS) + 1

#: The argument of a call made without one: the callable is then called with none.
NO_ARGUMENT: Any = object()


#: The later versions of a recorder that has none: shared, never changed.
_NO_VERSIONS: Mapping[str, PluginMetrics] = MappingProxyType({})


def _readonly(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


def bucket_index(duration_ns: int) -> int:
    """The index in :attr:`MetricsSnapshot.latency_buckets` of a duration in nanoseconds.

    The wrappers of :class:`PluginMetrics` compute the same index inline.
    """
    raw = (duration_ns - 1).bit_length() if duration_ns > 0 else 0
    return min(max(raw - _FIRST_POWER, 0), len(LATENCY_BUCKETS))


class MetricsSnapshot(Value):
    """The metrics of one plugin at one moment.

    Attributes:
        plugin: The plugin's name.
        group: The plugin's group.
        calls: Calls that returned or raised.
        errors: Calls that raised.
        in_flight: Calls running when the snapshot was taken.
        latency_buckets: How many calls took at most each bound of
            :data:`LATENCY_BUCKETS` and more than the one before (not
            cumulative); the last item counts the calls above the last bound.
        latency_sum: The total time of all calls, in seconds.
        import_time: Seconds it took to import and instantiate the plugin, if recorded.
        setup_time: Seconds its ``setup`` took, if recorded.
        last_error: ``repr()`` of the last exception a call raised, if any.
        last_error_time: When it was raised, as a :func:`time.time` timestamp.
        versions: The calls each version of the plugin answered, by
            version: a reloaded plugin's counts go on across the reload.
    """

    __slots__ = (
        "calls",
        "errors",
        "group",
        "import_time",
        "in_flight",
        "last_error",
        "last_error_time",
        "latency_buckets",
        "latency_sum",
        "plugin",
        "setup_time",
        "versions",
    )
    _unhashed = frozenset({"versions"})

    plugin: str
    group: str
    calls: int
    errors: int
    in_flight: int
    latency_buckets: tuple[int, ...]
    latency_sum: float
    import_time: float | None
    setup_time: float | None
    last_error: str | None
    last_error_time: float | None
    versions: Mapping[str, int]

    def __init__(
        self,
        plugin: str,
        group: str,
        calls: int = 0,
        errors: int = 0,
        in_flight: int = 0,
        latency_buckets: tuple[int, ...] = (0,) * _NBUCKETS,
        latency_sum: float = 0.0,
        import_time: float | None = None,
        setup_time: float | None = None,
        last_error: str | None = None,
        last_error_time: float | None = None,
        versions: Mapping[str, int] | None = None,
    ) -> None:
        _set = object.__setattr__
        _set(self, "plugin", plugin)
        _set(self, "group", group)
        _set(self, "calls", calls)
        _set(self, "errors", errors)
        _set(self, "in_flight", in_flight)
        _set(self, "latency_buckets", latency_buckets)
        _set(self, "latency_sum", latency_sum)
        _set(self, "import_time", import_time)
        _set(self, "setup_time", setup_time)
        _set(self, "last_error", last_error)
        _set(self, "last_error_time", last_error_time)
        _set(self, "versions", _readonly({} if versions is None else versions))

    def quantile(self, q: float) -> float | None:
        """Estimate a latency quantile in seconds from the histogram.

        The estimate lies in the same bucket as the true value and is
        interpolated linearly within it; above the last bucket bound it is
        that bound. ``None`` when no call was recorded.

        Raises:
            ValueError: ``q`` is not in (0, 1].
        """
        if not 0 < q <= 1:
            raise ValueError(f"a quantile is in (0, 1], not {q!r}")
        total = sum(self.latency_buckets)
        if total == 0:
            return None
        rank = q * total
        below = 0
        for index, count in enumerate(self.latency_buckets):
            if count and below + count >= rank:
                if index == len(LATENCY_BUCKETS):
                    return LATENCY_BUCKETS[-1]
                lower = LATENCY_BUCKETS[index - 1] if index else 0.0
                upper = LATENCY_BUCKETS[index]
                return lower + (upper - lower) * (rank - below) / count
            below += count
        raise AssertionError("unreachable: the ranks add up to the total")  # pragma: no cover

    @property
    def p50(self) -> float | None:
        """The estimated median latency in seconds, or ``None`` without calls."""
        return self.quantile(0.5)

    @property
    def p90(self) -> float | None:
        """The estimated 90th percentile latency in seconds, or ``None`` without calls."""
        return self.quantile(0.9)

    @property
    def p99(self) -> float | None:
        """The estimated 99th percentile latency in seconds, or ``None`` without calls."""
        return self.quantile(0.99)


class _Slots:
    """The per-thread slots of one recorder and the totals of threads that ended."""

    __slots__ = ("live", "lock", "retired")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: dict[int, list[int]] = {}
        # The totals of ended threads; made when the first one ends.
        self.retired: list[int] | None = None

    def add(self, slot: list[int]) -> None:
        with self.lock:
            self.live[id(slot)] = slot

    def retire(self, slot: list[int]) -> None:
        # Runs when the thread's threading.local storage is freed: the thread
        # has ended, so nothing writes the slot any more.
        with self.lock:
            if self.live.pop(id(slot), None) is not None:
                retired = self.retired or [0] * _SLOT_SIZE
                self.retired = [a + b for a, b in zip(retired, slot, strict=True)]

    def totals(self) -> list[int]:
        with self.lock:
            # list() copies a slot in one step, so each copy is a state the
            # owning thread passed through: errors never exceed calls in it.
            slots = [list(slot) for slot in self.live.values()]
            totals = list(self.retired or [0] * _SLOT_SIZE)
        for slot in slots:
            for index, value in enumerate(slot):
                totals[index] += value
        return totals


#: Held while a recorder makes its call counters or a version's recorder:
#: rare, and one lock for all of them costs less than one lock each.
_MADE = threading.Lock()


class _Token:
    """Kept in a thread's local storage; its death means the thread ended."""

    __slots__ = ("__weakref__",)


class PluginMetrics:
    """Records the metrics of one plugin.

    Calls are recorded by the gate of an active plugin's handle, or through
    :meth:`measure`; record import and setup times with :meth:`record_import`
    and :meth:`record_setup`; read everything with :meth:`snapshot`. Safe to
    use from any number of threads.

    Args:
        plugin: The plugin's name.
        group: The plugin's group.
        clock: A monotonic clock in integer nanoseconds; tests pass a fake one.
    """

    __slots__ = (
        "_clock",
        "_first",
        "_import_time",
        "_last_error",
        "_local",
        "_setup_time",
        "_slots",
        "_versions",
        "group",
        "plugin",
    )

    def __init__(
        self, plugin: str, group: str, *, clock: Callable[[], int] = time.perf_counter_ns
    ) -> None:
        self.plugin = plugin
        self.group = group
        self._clock = clock
        # What counts calls is made by the first call (see _calls): a
        # thousand plugins loaded and not called must not cost a thousand
        # unused thread-local stores.
        self._slots: _Slots | None = None
        self._local: threading.local | None = None
        self._last_error: tuple[str, float] | None = None
        self._import_time: float | None = None
        self._setup_time: float | None = None
        # The version whose calls this recorder counts itself: the first one
        # asked for (most plugins never have a second), or None.
        self._first: str | None = None
        # The recorders of each later version's calls; added to, never removed.
        self._versions: Mapping[str, PluginMetrics] = _NO_VERSIONS

    def __repr__(self) -> str:
        return f"<PluginMetrics {self.group}:{self.plugin}>"

    def _calls(self) -> tuple[threading.local, _Slots]:
        """The thread-local store of this thread's slot, and every thread's slots."""
        local, slots = self._local, self._slots
        if local is None or slots is None:
            with _MADE:
                if self._local is None or self._slots is None:
                    self._slots = _Slots()
                    self._local = threading.local()
                local, slots = self._local, self._slots
        return local, slots

    def _new_slot(self) -> list[int]:
        local, slots = self._calls()
        slot = [0] * _SLOT_SIZE
        token = _Token()
        finalizer = weakref.finalize(token, slots.retire, slot)
        finalizer.atexit = False
        slots.add(slot)
        local.slot = slot
        local.token = token
        return slot

    def _note_error(self, error: BaseException) -> None:
        try:
            text = repr(error)
        except Exception:
            text = f"<{type(error).__qualname__} (repr() failed)>"
        self._last_error = (text, time.time())

    def measure(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call ``fn(*args, **kwargs)`` and record the call, as the wrappers do.

        For a call whose method is only known at call time (``handle.call``);
        an awaitable result is measured until it is awaited.
        """
        try:
            slot = self._calls()[0].slot
        except AttributeError:
            slot = self._new_slot()
        slot[0] += 1
        start = self._clock()
        try:
            result = fn(*args, **kwargs)
            if isawaitable(result):
                return self._measured(result, slot, start)
        except BaseException as exc:
            self._count(slot, start, exc)
            raise
        self._count(slot, start, None)
        return result

    async def _measured(self, awaitable: Any, slot: list[int], start: int) -> Any:
        try:
            result = await awaitable
        except BaseException as exc:
            self._count(slot, start, exc)
            raise
        self._count(slot, start, None)
        return result

    def _count(self, slot: list[int], start: int, error: BaseException | None) -> None:
        elapsed = self._clock() - start
        slot[2] += elapsed
        slot[(elapsed - 1).bit_length() + 3] += 1
        if error is not None:
            slot[1] += 1
            self._note_error(error)

    def _totals(self) -> list[int]:
        slots = self._slots
        return slots.totals() if slots is not None else [0] * _SLOT_SIZE

    def version(self, version: str) -> PluginMetrics:
        """The recorder of the calls one version answers, counted in this one's snapshot too.

        Record a version's calls with the returned recorder: the plugin's
        totals go on across versions, and :attr:`MetricsSnapshot.versions`
        says how many calls each answered.
        """
        if self._first == version:
            return self
        recorder = self._versions.get(version)
        if recorder is None:
            with _MADE:
                if self._first is None:
                    self._first = version
                    return self
                if self._first == version:
                    return self
                recorder = self._versions.get(version)
                if recorder is None:
                    recorder = PluginMetrics(self.plugin, self.group, clock=self._clock)
                    self._versions = {**self._versions, version: recorder}
        return recorder

    def record_import(self, seconds: float) -> None:
        """Record how long importing and instantiating the plugin took."""
        self._import_time = seconds

    def record_setup(self, seconds: float) -> None:
        """Record how long the plugin's ``setup`` took."""
        self._setup_time = seconds

    def record_error(self, error: BaseException) -> None:
        """Make ``error`` the last error without counting a call (e.g. a failed setup)."""
        self._note_error(error)

    def snapshot(self) -> MetricsSnapshot:
        """The metrics as they are now.

        Calls that finish while the snapshot is taken may or may not be in
        it; errors never exceed calls.
        """
        totals = self._totals()
        last = self._last_error
        versions: dict[str, int] = {}
        if self._first is not None:
            versions[self._first] = sum(totals[_RAW0:])
        for version, recorder in self._versions.items():
            theirs = recorder._totals()
            versions[version] = sum(theirs[_RAW0:])
            totals = [a + b for a, b in zip(totals, theirs, strict=True)]
            error = recorder._last_error
            if error is not None and (last is None or error[1] >= last[1]):
                last = error
        raw = totals[_RAW0:]
        buckets = (
            sum(raw[: _FIRST_POWER + 1]),
            *raw[_FIRST_POWER + 1 : _LAST_POWER + 1],
            sum(raw[_LAST_POWER + 1 :]),
        )
        calls = sum(buckets)
        return MetricsSnapshot(
            plugin=self.plugin,
            group=self.group,
            calls=calls,
            errors=totals[_ERRORS],
            in_flight=totals[_STARTED] - calls,
            latency_buckets=buckets,
            latency_sum=totals[_SUM] / 1e9,
            import_time=self._import_time,
            setup_time=self._setup_time,
            last_error=None if last is None else last[0],
            last_error_time=None if last is None else last[1],
            versions=versions,
        )


class GroupMetrics:
    """The :class:`PluginMetrics` of every plugin of one group, by name.

    Args:
        group: The group.
        clock: Passed on to each :class:`PluginMetrics`.
    """

    def __init__(self, group: str, *, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.group = group
        self._clock = clock
        self._lock = threading.Lock()
        # Added to in place under the lock (a thousand plugins must not cost a
        # million copies); lookups need no lock, iteration copies under it.
        self._plugins: dict[str, PluginMetrics] = {}

    def __repr__(self) -> str:
        return f"<GroupMetrics {self.group!r}: {len(self._plugins)} plugins>"

    def plugin(self, name: str) -> PluginMetrics:
        """The recorder of plugin ``name``, created on first use."""
        recorder = self._plugins.get(name)
        if recorder is None:
            with self._lock:
                recorder = self._plugins.get(name)
                if recorder is None:
                    recorder = PluginMetrics(name, self.group, clock=self._clock)
                    self._plugins[name] = recorder
        return recorder

    def remove(self, name: str) -> None:
        """Forget plugin ``name``'s metrics; nothing happens if there are none."""
        with self._lock:
            self._plugins.pop(name, None)

    def snapshot(self) -> Mapping[str, MetricsSnapshot]:
        """A read-only mapping of plugin name to its snapshot, sorted by name."""
        with self._lock:
            plugins = dict(self._plugins)
        return MappingProxyType({name: plugins[name].snapshot() for name in sorted(plugins)})


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
