"""What checking the index cache costs: the key plugyard uses, and the cheaper ones.

Run by ``run.py`` as ``python cachekeys.py GROUP`` with the synthetic site on
``PYTHONPATH``; prints ``BENCH`` and a JSON object on its last line:
``samples`` maps each contender to its samples, in nanoseconds per check of
the whole ``sys.path``. Each is timed with ``timeit`` in rounds, as in
``percall.py``:

- ``entries``: ``os.stat`` of every ``sys.path`` entry, the key before: it
  sees an install and an uninstall (a directory added or removed);
- ``dirs``: and of every metadata directory: it also sees a file added to or
  removed from one, and an edit that replaces a file (editors, ``sed -i``);
- ``files``: the key used, what a warm read checks (``_indexcache``): every
  entry, every ``entry_points.txt`` and ``METADATA`` that was read, every
  metadata directory without entry points; it also sees an edit in place;
- ``read``: a whole warm read of the index, ``_discovery.entry_points(G)``
  (the check, the cache file, the entry points made), for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from plugyard import _discovery, _indexcache


def _stat_all(paths: Sequence[str]) -> Callable[[], object]:
    stat = os.stat

    def check() -> object:
        return [stat(path) for path in paths]

    return check


def _key_used(present: Sequence[str], absent: Sequence[str]) -> Callable[[], object]:
    stat, exists = os.stat, os.path.exists

    def check() -> object:
        now = [(s.st_mtime_ns, s.st_ctime_ns, s.st_size, s.st_ino) for s in map(stat, present)]
        return now, any(map(exists, absent))

    return check


def cases(group: str) -> dict[str, Callable[[], object]]:
    """The contenders, each run once here and checked."""
    found = _discovery.scan(sys.path)
    entries = [path for path, status in found.entries if status != _indexcache.ABSENT]
    metadata_dirs = [
        os.path.join(where, child.name)
        for where in entries
        if os.path.isdir(where)
        for child in os.scandir(where)
        if child.name.lower().endswith((".dist-info", ".egg-info"))
    ]
    deps = found.entries + found.deps
    present = [path for path, status in deps if status != _indexcache.ABSENT]
    absent = [path for path, status in deps if status == _indexcache.ABSENT]
    first = _discovery.entry_points(group)  # writes the cache (the site is not racy by now)
    scans: list[Sequence[str]] = []
    real = _discovery.scan

    def counting(path: Sequence[str]) -> Any:
        scans.append(path)
        return real(path)

    _discovery.scan = counting
    assert _discovery.entry_points(group) == first
    assert not scans, "a warm read scanned: the cache was not written or not used"
    _discovery.scan = real
    return {
        "entries": _stat_all(entries),
        "dirs": _stat_all(entries + metadata_dirs),
        "files": _key_used(present, absent),
        "read": lambda: _discovery.entry_points(group),
        "counts": lambda: (len(entries), len(entries) + len(metadata_dirs), len(deps)),
    }


def measure(group: str, repeat: int, min_time: float) -> dict[str, list[float]]:
    """Samples of every contender, in nanoseconds per whole check."""
    found = cases(group)
    found.pop("counts")
    timers = {}
    for key, call in found.items():
        timer = timeit.Timer(call)
        number = 1
        while timer.timeit(number) < min_time:
            number *= 2
        timers[key] = (timer, number)
    samples: dict[str, list[float]] = {key: [] for key in timers}
    keys = list(timers)
    for round_ in range(repeat):
        shift = round_ % len(keys)
        for key in keys[shift:] + keys[:shift]:
            timer, number = timers[key]
            samples[key].append(timer.timeit(number) / number * 1e9)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("group")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.1)
    args = parser.parse_args()
    counts = cases(args.group)["counts"]()
    samples = measure(args.group, args.repeat, args.min_time)
    print("BENCH " + json.dumps({"samples": samples, "counts": counts}))


if __name__ == "__main__":
    main()
