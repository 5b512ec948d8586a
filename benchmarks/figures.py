"""The figures of a run as the report shows them: lines, ratios, spreads, units."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from measure import Bench
from model import TARGET_N, Contender, Row
from rows import CONTENDERS, ROWS

_UNITS = {
    "ns": (("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1.0)),
    "B": (("MB", 1e6), ("kB", 1e3), ("B", 1.0)),
    "count": (("", 1.0),),
}


def unit_of(value: float, unit: str = "ns") -> tuple[str, float]:
    """The unit that suits ``value`` (counted in ``unit``: ns or B), and its size."""
    scales = _UNITS[unit]
    for name, scale in scales:
        if abs(value) >= scale:
            return name, scale
    return scales[-1]


def fmt_value(value: float, unit: str = "ns") -> str:
    """A duration in ns (or a size in B), in the unit that suits it, to three digits."""
    name, scale = unit_of(value, unit)
    return f"{value / scale:.3g} {name}"


def fmt_time(ns: float) -> str:
    """A duration in ns, in the unit that suits it, to three significant digits."""
    return fmt_value(ns)


def spread(samples: Sequence[float], unit: str = "ns") -> str:
    """The median and the range of ``samples``, in the median's unit: ``1.23 ms (1.2-1.31)``."""
    median = statistics.median(samples)
    name, scale = unit_of(median, unit)

    def digits(value: float) -> str:
        value /= scale  # three digits, without the exponent .3g would give for 999.5
        return f"{value:.3g}" if value < 999.5 else f"{value:.0f}"

    return f"{digits(median)} {name} ({digits(min(samples))}-{digits(max(samples))})"


@dataclass(frozen=True)
class Line:
    """One table line: a plugyard figure against one peer at one N.

    ``mine`` and ``theirs`` are the samples the ratio divides: for two
    probes run as a pair, the pair's own, sample ``i`` of one taken next to
    sample ``i`` of the other; for figures timed in one process, in rounds,
    sample ``i`` of each from round ``i``.
    """

    row: Row
    n: int | None
    peer: str
    mine: list[float]
    theirs: list[float]

    @property
    def ratio(self) -> float:
        """The median of plugyard's samples over the peer's."""
        return statistics.median(self.mine) / statistics.median(self.theirs)

    @property
    def paired(self) -> tuple[float, float]:
        """The lowest and highest of the ratios of samples taken side by side."""
        ratios = [a / b for a, b in zip(self.mine, self.theirs, strict=False) if b]
        return (min(ratios), max(ratios)) if ratios else (self.ratio, self.ratio)

    @property
    def target(self) -> float | None:
        """The issue's highest ratio for this pair, if it sets one."""
        return self.row.targets.get(self.peer)


def samples_for(
    bench: Bench,
    mine: str,
    peer: str,
    n: int | None,
    contenders: Mapping[str, Contender] = CONTENDERS,
) -> tuple[list[float], list[float]]:
    """The samples of ``mine`` and ``peer`` at ``n`` that a ratio divides (see :class:`Line`)."""
    a, b = contenders[mine], contenders[peer]
    pair = bench.pairs.get((a.probe or "", b.probe or "", n))
    if pair is not None and a.probe is not None:
        return [float(p[a.phase]) for p in pair[0]], [float(p[b.phase]) for p in pair[1]]
    return bench.samples[mine, n], bench.samples[peer, n]


def lines(bench: Bench, ns: Sequence[int], rows: Sequence[Row] | None = None) -> list[Line]:
    """Every table line of ``rows`` (the main rows by default), by N, peers in order."""
    return [
        Line(row, n, peer, *samples_for(bench, row.plugyard, peer, n))
        for row in (ROWS if rows is None else rows)
        for n in (ns if row.per_n else [None])
        for peer in row.peers
    ]


def verdict(ratio: float, target: float | None, n: int | None) -> str:
    """The target column of a line: the limit, and at N=TARGET_N whether it was met."""
    if target is None:
        return ""
    if n is not None and n != TARGET_N:
        return f"≤ {target:g}x (at N={TARGET_N})"
    return f"≤ {target:g}x **{'met' if ratio <= target else 'missed'}**"


RESULTS_HEADER = [
    "| row | N | plugyard | median (min-max) | peer | median (min-max) | plugyard / peer "
    "| side by side, min-max | target |",
    "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |",
]


def result_line(line: Line) -> str:
    """One line of a Results table."""
    mine, theirs = CONTENDERS[line.row.plugyard], CONTENDERS[line.peer]
    low, high = line.paired
    return (
        f"| {line.row.id} | {line.n if line.n is not None else 'any'} "
        f"| {escape(mine.label)} | {spread(line.mine, mine.unit)} "
        f"| {escape(theirs.label)} | {spread(line.theirs, theirs.unit)} "
        f"| {line.ratio:.2f}x | {low:.2f}-{high:.2f}x "
        f"| {verdict(line.ratio, line.target, line.n)} |"
    )


def escape(text: str) -> str:
    """``text`` for a Markdown table cell."""
    return text.replace("|", "\\|")


def target_row(line: Line) -> str:
    """One row of a targets table: the target, the measured ratio, met or missed."""
    assert line.target is not None
    mine, theirs = CONTENDERS[line.row.plugyard], CONTENDERS[line.peer]
    verdict = "met" if line.ratio <= line.target else "missed"
    return (
        f"| {line.row.id}: {escape(mine.label)} ≤ {line.target:g}x {escape(theirs.label)} "
        f"| {line.ratio:.2f}x | **{verdict}** |"
    )
