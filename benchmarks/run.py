"""Benchmark plugyard side by side with stevedore, pluggy and importlib.metadata.

Usage::

    python benchmarks/run.py [--n 100 1000] [--repeat 10] [--out benchmarks/results/latest.md]
    python benchmarks/run.py --only scaling [--scaling-n 100 1000 5000 10000]
    python benchmarks/run.py --only stevedore [--n 1000]

Everything runs in one go on one machine, and the table reports each figure
next to the same figure for the peers, as a ratio: absolute times say more
about the machine than about the code. What needs a fresh interpreter
(imports, listing, the first call, loading everything) is the median of
``--repeat`` fresh processes per contender, each timing itself (see
``snippets.py``); per-call overheads are the median of ``timeit`` samples in
one process (see ``percall.py``). The plugins are ``N`` synthetic installed
distributions in a temporary directory (see ``synth.py``). The signing rows
(section 6) use one signed distribution of about 60 modules instead, once
whatever ``N`` (see ``signing.py``). The scaling rows (section 7) compare
each figure with itself at another ``N`` instead of with a peer: whether the
lifecycle is linear in ``N``, for the ``N`` of ``--scaling-n``, each process
stopped after ``--scaling-timeout`` seconds. Section 8 (issue 11,
``STEVEDORE_ROWS``) compares ``plugyard.stevedore``'s managers with
stevedore's and judges the index against issue 11's targets; it is also run
alone with ``--only stevedore``, to ``results/stevedore.md``.

This file reads the options and writes the report; what is measured is in
``model.py`` (the kinds of figure), ``rows.py`` and ``scalerows.py`` (the
rows), how in ``measure.py``, the Markdown in ``report.py``. To add a row: add
a contender (a probe and a phase from ``snippets.py``, or a ``percall.py``
key) to ``CONTENDERS`` and a :class:`~model.Row` to ``ROWS`` in ``rows.py``;
for a scaling row, a probe to ``SCALING_PROBES``, a contender to
``SCALING_CONTENDERS`` and a :class:`~model.Row` to ``SCALING_ROWS`` in
``scalerows.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import environment
import plot
from measure import Bench, measure, progress, run_scaling
from report import machine, report, scaling_report, stevedore_report
from rows import ROWS, SIGNING_ROWS, STEVEDORE_ROWS
from scalerows import SCALING_CONTENDERS, SCALING_N, SCALING_ROWS

HERE = Path(__file__).resolve().parent

#: The defaults: issue 14's measurement. --quick: a check that everything
#: runs, in a minute or two, its figures worth nothing.
FULL = {
    "n": [100, 1000],
    "repeat": 15,
    "min_time": 0.1,
    "scaling_n": list(SCALING_N),
    "scaling_repeat": 15,
    "scaling_timeout": 120.0,
}
QUICK = {
    "n": [10],
    "repeat": 2,
    "min_time": 0.005,
    "scaling_n": [10, 100],
    "scaling_repeat": 1,
    "scaling_timeout": 60.0,
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run that checks that everything runs (N=10, scaling N=10 and 100, "
        "2 processes per figure), its report in the temporary directory unless --out says; "
        "any option given explicitly wins",
    )
    parser.add_argument(
        "--n", type=_positive, nargs="+", help=f"how many plugins (default: {FULL['n']})"
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        help=f"fresh processes per figure (default: {FULL['repeat']}, as issue 14 asks)",
    )
    parser.add_argument(
        "--min-time",
        type=_seconds,
        help=f"seconds per per-call timeit sample (default: {FULL['min_time']})",
    )
    parser.add_argument(
        "--only",
        choices=["scaling", "stevedore", "signing"],
        help="measure only these rows: the scaling rows, section 8 (issue 11) or the signing "
        "rows (section 6); by default every row",
    )
    parser.add_argument(
        "--scaling-n",
        type=_positive,
        nargs="+",
        help=f"how many plugins in the scaling rows (default: {FULL['scaling_n']})",
    )
    parser.add_argument(
        "--scaling-repeat",
        type=_positive,
        help=f"fresh processes per scaling figure (default: {FULL['scaling_repeat']})",
    )
    parser.add_argument(
        "--scaling-timeout",
        type=_seconds,
        help=f"seconds before a scaling process is stopped (default: {FULL['scaling_timeout']:g})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the report; by default benchmarks/results/latest.md, or "
        "benchmarks/results/scaling.md with --only scaling, benchmarks/results/signing.md "
        "with --only signing; the scaling plot is written beside it, as .svg",
    )
    parser.add_argument(
        "--list-rows", action="store_true", help="print the rows as JSON, measure nothing"
    )
    return parser


def _list_rows(only: str | None) -> None:
    listed: list[dict[str, object]]
    if only == "scaling":
        listed = [
            {
                "id": row.id,
                "contenders": [SCALING_CONTENDERS[key].label for key in (row.plugyard, *row.peers)],
            }
            for row in SCALING_ROWS
        ]
    else:
        listed = [
            {"id": row.id, "peers": list(row.peers), "per_n": row.per_n, "targets": row.targets}
            for row in (STEVEDORE_ROWS if only == "stevedore" else ROWS)
        ]
    print(json.dumps(listed, indent=1))


def _check_stevedore(bench: Bench) -> None:
    """Find out whether stevedore's cache works here; refuse to go on if not, unless allowed."""
    home = bench.tmp / "stevedore-check"
    home.mkdir()
    on, state = environment.stevedore_cache(bench.env(home, None), bench.cwd())
    bench.stevedore_cache, bench.stevedore_cache_state = on, state
    if not on:
        if os.environ.get(environment.ALLOW) != "1":
            raise SystemExit(environment.refusal(state))
        progress(f"stevedore's cache is {state}; going on ({environment.ALLOW}=1)")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    only_scaling = args.only == "scaling"
    only_stevedore = args.only == "stevedore"
    only_signing = args.only == "signing"
    if only_signing:
        ROWS[:] = SIGNING_ROWS  # this run measures and reports section 6 alone
    if args.list_rows:
        _list_rows(args.only)
        return
    default = {"scaling": "scaling.md", "stevedore": "stevedore.md", "signing": "signing.md"}.get(
        args.only, "latest.md"
    )
    if args.quick:
        default = f"plugyard-bench-quick-{default}"
    out = args.out or (Path(tempfile.gettempdir()) if args.quick else HERE / "results") / default
    scaling_ns = [] if only_signing or only_stevedore else sorted(set(args.scaling_n))
    started = time.monotonic()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="plugyard-bench-") as tmp:
        bench = Bench(
            repeat=args.repeat,
            min_time=args.min_time,
            tmp=Path(tmp),
            scaling_repeat=args.scaling_repeat,
            scaling_timeout=args.scaling_timeout,
        )
        if not only_signing:
            _check_stevedore(bench)
        info = {**info, **environment.describe(), "stevedore's cache": bench.stevedore_cache_state}
        if only_stevedore:
            measure(bench, args.n, STEVEDORE_ROWS)
        elif only_signing:
            measure(bench, [], ROWS)
        elif not only_scaling:
            measure(bench, args.n)
        if scaling_ns:
            run_scaling(bench, scaling_ns)
    wall = time.monotonic() - started
    svg = out.with_suffix(".svg") if scaling_ns else None
    if only_scaling:
        text = scaling_report(bench, scaling_ns, info, wall, sys.argv[1:], svg)
    elif only_stevedore:
        text = stevedore_report(bench, args.n, info, wall, sys.argv[1:])
    else:
        ns = [] if only_signing else args.n
        text = report(bench, ns, info, wall, sys.argv[1:], scaling_ns, svg)
    out.parent.mkdir(parents=True, exist_ok=True)
    if svg is not None:
        caption = [
            f"{info['Date']}, {info['CPU']}, Python {info['Python'].split()[1]}: medians of "
            f"{bench.scaling_repeat} fresh processes, bars from the lowest to the highest",
            " ".join(["python benchmarks/run.py", *_without_out(sys.argv[1:])]),
        ]
        svg.write_text(plot.scaling_svg(bench, scaling_ns, caption), encoding="utf-8")
    out.write_text(text + _kept_sections(out), encoding="utf-8")
    progress(f"wrote {out} in {time.monotonic() - started:.0f} s")


def _without_out(argv: Sequence[str]) -> list[str]:
    """The options of a run, less where it wrote its report (which says nothing of how)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


#: Sections other scripts write into the report, kept when it is written anew:
#: between two markers (benchmarks/reload.py), or from a heading to the next
#: heading of its level (benchmarks/sandbox.py).
KEPT = [("<!-- reload:start -->", "<!-- reload:end -->")]
KEPT_HEADINGS = ["## Sandbox (issue 13)"]


def _kept_sections(out: Path) -> str:
    """The sections of ``out`` that other scripts wrote (see ``KEPT``), to append again."""
    try:
        old = out.read_text(encoding="utf-8")
    except OSError:
        return ""
    kept = []
    for heading in KEPT_HEADINGS:
        if heading in old:
            section = heading + old.partition(heading)[2].split("\n## ", 1)[0]
            kept.append(section.split("<!-- ", 1)[0].rstrip("\n") + "\n")
    for start, end in KEPT:
        if start in old and end in old:
            kept.append(start + old.partition(start)[2].partition(end)[0] + end + "\n")
    return "".join("\n" + section for section in kept)


if __name__ == "__main__":
    main()
