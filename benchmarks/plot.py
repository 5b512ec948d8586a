"""The scaling rows of issue 14 as an SVG line plot: time against N, both axes logarithmic.

Written with string formatting alone, so that neither the benchmarks nor the
documentation need a plotting library. One panel per row of
``scalerows.INSTALLED_ROWS``: plugyard and its peers, a point per N at the
median with a bar from the lowest to the highest sample, and a dashed line
of slope one through plugyard's figure at N=1000: linear growth.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from figures import fmt_time
from measure import Bench
from scalerows import INSTALLED_ROWS, SCALING_BASE_N, SCALING_CONTENDERS

#: By the start of a contender's label; plugyard first.
COLOURS = (
    ("plugyard", "#1f5fa8"),
    ("stevedore", "#c0392b"),
    ("pluggy", "#2e8b3d"),
    ("importlib", "#7a7a7a"),
)
WIDTH, PANEL_H, MARGIN = 480, 360, 60
TITLES = {
    "7.list-installed": "Listing N installed plugins",
    "7.first-call-installed": "The first call of one plugin among N",
    "7.load-all-installed": "Loading all N plugins",
    "7.shutdown-installed": "Shutting down N plugins",
}


def escape(text: str) -> str:
    """``text`` for an SVG text node."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Series:
    """One contender's points: (N, median, lowest, highest), in ns."""

    label: str
    colour: str
    points: tuple[tuple[int, float, float, float], ...]


def _colour(label: str) -> str:
    return next((c for prefix, c in COLOURS if label.startswith(prefix)), "#444444")


def series(bench: Bench, key: str, ns: Sequence[int]) -> Series:
    """A scaling contender's figures at every N it has one for."""
    points = []
    for n in sorted(ns):
        samples = bench.samples.get((key, n))
        if samples:
            points.append((n, statistics.median(samples), min(samples), max(samples)))
    label = SCALING_CONTENDERS[key].label
    return Series(label, _colour(label), tuple(points))


def _decades(low: float, high: float) -> tuple[int, int]:
    return math.floor(math.log10(low)), math.ceil(math.log10(high))


def _tick(ns: float) -> str:
    return fmt_time(ns).replace(".0 ", " ")


def panel(title: str, lines: Sequence[Series], x0: float, y0: float) -> list[str]:
    """One panel's SVG elements, its top left corner at (x0, y0)."""
    values = [v for s in lines for p in s.points for v in p[1:]]
    ns = [p[0] for s in lines for p in s.points]
    left, top = x0 + MARGIN + 10, y0 + 40
    width, height = WIDTH - MARGIN - 30, PANEL_H - 150  # the legend below
    out = [
        f'<text x="{x0 + WIDTH / 2:.0f}" y="{y0 + 20:.0f}" text-anchor="middle" '
        f'font-weight="bold">{escape(title)}</text>'
    ]
    if len(set(ns)) < 2:
        out.append(
            f'<text x="{x0 + WIDTH / 2:.0f}" y="{y0 + PANEL_H / 2:.0f}" text-anchor="middle">'
            "fewer than two N measured</text>"
        )
        return out
    nx0, nx1 = _decades(min(ns), max(ns))
    vy0, vy1 = _decades(min(values), max(values))
    vy1 = max(vy1, vy0 + 1)

    def x(n: float) -> float:
        return left + width * (math.log10(n) - nx0) / (nx1 - nx0)

    def y(v: float) -> float:
        return top + height * (1 - (math.log10(v) - vy0) / (vy1 - vy0))

    out.append(
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" '
        'fill="none" stroke="#999"/>'
    )
    for d in range(nx0, nx1 + 1):
        px = x(10**d)
        out.append(
            f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{top + height:.1f}" '
            'stroke="#e4e4e4"/>'
        )
        out.append(
            f'<text x="{px:.1f}" y="{top + height + 16:.1f}" text-anchor="middle">{10**d:,}</text>'
        )
    for d in range(vy0, vy1 + 1):
        py = y(10**d)
        out.append(
            f'<line x1="{left:.1f}" y1="{py:.1f}" x2="{left + width:.1f}" y2="{py:.1f}" '
            'stroke="#e4e4e4"/>'
        )
        out.append(
            f'<text x="{left - 6:.1f}" y="{py + 4:.1f}" text-anchor="end">{_tick(10**d)}</text>'
        )
    out.append(
        f'<text x="{left + width / 2:.1f}" y="{top + height + 32:.1f}" '
        'text-anchor="middle">N, plugins</text>'
    )
    out.append(
        f'<text transform="translate({x0 + 14:.1f} {top + height / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">time, after the import</text>'
    )
    base = next((p for p in lines[0].points if p[0] == SCALING_BASE_N), None)
    if base is not None:  # linear growth through plugyard's figure at N=1000
        lo, hi = 10**nx0, 10**nx1
        a, b = base[1] * lo / base[0], base[1] * hi / base[0]
        out.append(
            f'<line x1="{x(lo):.1f}" y1="{y(a):.1f}" x2="{x(hi):.1f}" y2="{y(b):.1f}" '
            f'stroke="{lines[0].colour}" stroke-dasharray="4 4" stroke-opacity="0.5" '
            f'clip-path="url(#clip{int(x0)}-{int(y0)})"/>'
        )
        out.insert(
            0,
            f'<clipPath id="clip{int(x0)}-{int(y0)}"><rect x="{left:.1f}" y="{top:.1f}" '
            f'width="{width:.1f}" height="{height:.1f}"/></clipPath>',
        )
    for s in lines:
        path = " ".join(f"{x(n):.1f},{y(m):.1f}" for n, m, _, _ in s.points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
        for n, m, low, high in s.points:
            out.append(
                f'<line x1="{x(n):.1f}" y1="{y(low):.1f}" x2="{x(n):.1f}" y2="{y(high):.1f}" '
                f'stroke="{s.colour}"/>'
            )
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(m):.1f}" r="3" fill="{s.colour}"/>')
    legend = [*((s.label, s.colour, "") for s in lines)]
    legend.append(
        ("linear, through plugyard at N=1000", lines[0].colour, ' stroke-dasharray="4 4"')
    )
    for i, (label, colour, dash) in enumerate(legend):
        ly = top + height + 56 + 15 * i
        out.append(
            f'<line x1="{left + 8:.1f}" y1="{ly - 4:.1f}" x2="{left + 26:.1f}" y2="{ly - 4:.1f}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{left + 30:.1f}" y="{ly:.1f}">{escape(label)}</text>')
    return out


def scaling_svg(bench: Bench, ns: Sequence[int], caption: Sequence[str]) -> str:
    """The plot of ``scalerows.INSTALLED_ROWS`` at ``ns``, two panels a line, captioned."""
    columns = 2
    rows = math.ceil(len(INSTALLED_ROWS) / columns)
    width, height = columns * WIDTH, rows * PANEL_H + 16 * len(caption) + 8
    body = []
    for i, row in enumerate(INSTALLED_ROWS):
        lines = [series(bench, key, ns) for key in (row.plugyard, *row.peers)]
        title = TITLES.get(row.id, row.id)
        body += panel(title, lines, (i % columns) * WIDTH, (i // columns) * PANEL_H)
    for i, text in enumerate(caption):
        body.append(
            f'<text x="{width / 2:.0f}" y="{rows * PANEL_H + 16 * i + 8}" text-anchor="middle" '
            f'fill="#555">{escape(text)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">\n'
        f'<rect width="{width}" height="{height}" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
