"""Issue 14's targets (cold start), each judged from the ratio this run measured.

Issue 14 asks, at N = 1000, for medians of at least 15 fresh processes, the
ratios taken in one run with the peers side by side. :data:`GOALS` are its
targets on the rows compared with a peer, :data:`LINEAR` the scaling rows it
asks to be linear to N = 10,000. :func:`table` is the report's first table:
every target with its ratio, met or missed, or why it is not judged.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import snippets
from figures import Line, escape, target_row
from measure import Bench, scaling_probe
from model import TARGET_N
from rows import CONTENDERS, PROBES, ROWS
from scalerows import SCALING_BASE_N, SCALING_CONTENDERS, SCALING_SLACK

ISSUE = 14
MIN_REPEAT = 15  # fresh processes per figure that the issue asks for
LINEAR_N = 10000  # the largest N the issue asks to be linear to


@dataclass(frozen=True)
class Goal:
    """A target on a row: plugyard's figure at most ``limit`` times the peer's.

    A ``limit`` of ``None`` is a ratio the issue asks to see, not to meet.
    """

    row: str
    peer: str
    limit: float | None


GOALS = [
    Goal("1.import", "import/stevedore", 0.5),
    Goal("1.import", "import/pluggy", None),
    # What a lazy import shifts to the first use is reported beside it.
    Goal("1.import-manager", "import/stevedore", None),
    Goal("3.first-call", "first/stevedore", 0.3),
    Goal("3.first-call", "first/pluggy", 0.5),
    Goal("3.first-call-require", "first/stevedore", 0.5),
    Goal("4.load-all", "all/stevedore", 1.0),
    Goal("4.memory", "memory/stevedore", 1.0),
    Goal("5.execute-metrics", "call/pluggy-hook", 0.25),
    Goal("5.handle", "call/direct", 1.3),
]

#: The scaling rows' plugyard figures that must stay linear up to LINEAR_N.
LINEAR = {
    "7.list-installed": "scale/list",
    "7.first-call-installed": "scale/first",
    "7.load-all-installed": "scale/all",
    "7.shutdown-installed": "scale/shutdown-installed",
}


def _check() -> None:
    """Every goal names a row's peer, and a row's target is its goal's limit."""
    rows = {row.id: row for row in ROWS}
    for goal in GOALS:
        row = rows[goal.row]
        assert goal.peer in row.peers, f"{goal.row} is not divided by {goal.peer}"
        assert row.targets.get(goal.peer) == goal.limit, f"{goal.row}: {row.targets}"


def cache_bound(contender: str) -> bool:
    """Whether a contender is a stevedore figure that its cache being off would slow."""
    probe = CONTENDERS[contender].probe
    return probe is not None and snippets._STEVEDORE_CACHE_ON in PROBES[probe].code


def scaling_ratio(bench: Bench, key: str, n: int, base: int) -> tuple[float, bool] | None:
    """The median at ``n`` over the median at ``base``, and whether it is only a lower bound.

    A lower bound: the process at ``n`` ran past the cap, so the ratio is
    the cap over the figure at ``base``. ``None``: nothing to divide by.
    """
    probe = scaling_probe(key)
    if (probe, base) in bench.capped or (key, base) not in bench.samples:
        return None
    below = statistics.median(bench.samples[key, base])
    if (probe, n) in bench.capped:
        return bench.scaling_timeout * 1e9 / below, True
    if (key, n) not in bench.samples:
        return None
    return statistics.median(bench.samples[key, n]) / below, False


def scaling_limit(n: int, base: int) -> float:
    """The highest figure at ``n`` over the figure at ``base`` that still counts as linear."""
    return SCALING_SLACK * n / base


def table(
    bench: Bench,
    found: Sequence[Line],
    ns: Sequence[int],
    scaling_ns: Sequence[int],
    stevedore_cache: bool,
) -> list[str]:
    """The targets of issue 14, as the report's first section."""
    _check()
    by_pair = {(line.row.id, line.peer, line.n): line for line in found}
    out = [
        f"## Targets (issue {ISSUE}, at N={TARGET_N})",
        "",
        *_protocol(bench, ns, scaling_ns, stevedore_cache),
        "| target | plugyard / peer | side by side, min-max | |",
        "| --- | ---: | ---: | --- |",
    ]
    for goal in GOALS:
        row = next(row for row in ROWS if row.id == goal.row)
        line = by_pair.get((goal.row, goal.peer, TARGET_N if row.per_n else None))
        mine, theirs = CONTENDERS[row.plugyard], CONTENDERS[goal.peer]
        limit = f"≤ {goal.limit:g}x" if goal.limit is not None else "vs"
        said = f"{escape(mine.label)} {limit}"
        what = f"{goal.row}: {said} {escape(theirs.label)}"
        if line is None:
            out.append(f"| {what} | | | not judged: N={TARGET_N} was not in this run |")
            continue
        low, high = line.paired
        if goal.limit is None:
            verdict = "reported"
        elif not stevedore_cache and cache_bound(goal.peer):
            verdict = "not judged: stevedore's cache was off"
        else:
            verdict = f"**{'met' if line.ratio <= goal.limit else 'missed'}**"
        out.append(f"| {what} | {line.ratio:.2f}x | {low:.2f}-{high:.2f}x | {verdict} |")
    out += _linear(bench, scaling_ns)
    return [*out, ""]


def _protocol(
    bench: Bench, ns: Sequence[int], scaling_ns: Sequence[int], stevedore_cache: bool
) -> list[str]:
    """What in this run falls short of how the issue asks to measure, if anything."""
    short = []
    if bench.repeat < MIN_REPEAT:
        short.append(
            f"{bench.repeat} fresh processes per figure, fewer than the {MIN_REPEAT} the issue "
            "asks for"
        )
    if TARGET_N not in ns:
        short.append(f"N={TARGET_N} not measured")
    if not {SCALING_BASE_N, LINEAR_N} <= set(scaling_ns):
        short.append(f"the scaling rows not measured at N={SCALING_BASE_N} and N={LINEAR_N}")
    if not stevedore_cache:
        short.append("stevedore's cache off (see Environment), its figures not judged")
    if not short:
        return [
            f"Measured as the issue asks: medians of {bench.repeat} fresh processes (memory: "
            "fewer, it barely varies), every ratio from one run, its two sides run back to "
            "back.",
            "",
        ]
    return [
        "**Indicative only**: " + "; ".join(short) + ". The verdicts below are computed all "
        "the same.",
        "",
    ]


def _linear(bench: Bench, scaling_ns: Sequence[int]) -> list[str]:
    ns = sorted(set(scaling_ns))
    base = SCALING_BASE_N
    out = []
    for row_id, key in LINEAR.items():
        label = escape(SCALING_CONTENDERS[key].label)
        larger = [n for n in ns if n > base] if base in ns else []
        if not larger:
            out.append(
                f"| {row_id}: {label}, linear to N={LINEAR_N} | | | not judged: the scaling "
                f"rows did not run at N={base} and above |"
            )
        for n in larger:
            limit = scaling_limit(n, base)
            what = f"{row_id}: {label} at N={n} ≤ {limit:g}x N={base}"
            found = scaling_ratio(bench, key, n, base)
            if found is None:
                out.append(f"| {what} | n/a | | not judged: nothing at N={base} |")
                continue
            ratio, bound = found
            verdict = "met" if ratio <= limit else "missed"
            shown = f"> {ratio:.2f}x" if bound else f"{ratio:.2f}x"
            if bound and ratio <= limit:
                out.append(f"| {what} | {shown} | | not judged: ran past the cap |")
            else:
                out.append(f"| {what} | {shown} | | **{verdict}** |")
    return out


def earlier(found: Sequence[Line], ns: Sequence[int]) -> list[str]:
    """The targets of earlier issues (6, 10) that the rows still carry, judged at N=1000."""
    ours = {(goal.row, goal.peer) for goal in GOALS}
    out = [
        f"## Earlier targets (issues 6 and 10, at N={TARGET_N})",
        "",
        "| target | plugyard / peer | |",
        "| --- | ---: | --- |",
    ]
    for line in found:
        if line.target is None or (line.row.id, line.peer) in ours:
            continue
        if line.n not in (None, TARGET_N):
            continue
        out.append(target_row(line))
    if TARGET_N not in ns and any(line.row.per_n and line.target for line in found):
        out.append(f"| (N={TARGET_N} was not in this run; targets at other N are not judged) | | |")
    return [*out, ""]
