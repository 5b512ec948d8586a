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
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from measure import Bench, measure, progress, run_scaling
from report import machine, report, scaling_report, stevedore_report
from rows import ROWS, SIGNING_ROWS, STEVEDORE_ROWS
from scalerows import SCALING_CONTENDERS, SCALING_N, SCALING_ROWS

HERE = Path(__file__).resolve().parent


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000], help="how many plugins")
    parser.add_argument("--repeat", type=int, default=10, help="fresh processes per figure")
    parser.add_argument(
        "--min-time", type=float, default=0.1, help="seconds per per-call timeit sample"
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
        default=list(SCALING_N),
        help="how many plugins in the scaling rows (default: %(default)s)",
    )
    parser.add_argument(
        "--scaling-repeat",
        type=_positive,
        default=5,
        help="fresh processes per scaling figure (default: %(default)s)",
    )
    parser.add_argument(
        "--scaling-timeout",
        type=_seconds,
        default=120.0,
        help="seconds before a scaling process is stopped (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the report; by default benchmarks/results/latest.md, or "
        "benchmarks/results/scaling.md with --only scaling, benchmarks/results/signing.md "
        "with --only signing",
    )
    parser.add_argument(
        "--list-rows", action="store_true", help="print the rows as JSON, measure nothing"
    )
    args = parser.parse_args(argv)
    only_scaling = args.only == "scaling"
    only_stevedore = args.only == "stevedore"
    only_signing = args.only == "signing"
    if only_signing:
        ROWS[:] = SIGNING_ROWS  # this run measures and reports section 6 alone
    if args.list_rows:
        listed: list[dict[str, object]]
        if only_scaling:
            listed = [
                {
                    "id": row.id,
                    "contenders": [
                        SCALING_CONTENDERS[key].label for key in (row.plugyard, *row.peers)
                    ],
                }
                for row in SCALING_ROWS
            ]
        else:
            listed = [
                {"id": row.id, "peers": list(row.peers), "per_n": row.per_n, "targets": row.targets}
                for row in (STEVEDORE_ROWS if only_stevedore else ROWS)
            ]
        print(json.dumps(listed, indent=1))
        return
    default = {"scaling": "scaling.md", "stevedore": "stevedore.md", "signing": "signing.md"}.get(
        args.only, "latest.md"
    )
    out = args.out or HERE / "results" / default
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
        if only_stevedore:
            measure(bench, args.n, STEVEDORE_ROWS)
        elif only_signing:
            measure(bench, [], ROWS)
        elif not only_scaling:
            measure(bench, args.n)
        if scaling_ns:
            run_scaling(bench, scaling_ns)
    wall = time.monotonic() - started
    if only_scaling:
        text = scaling_report(bench, scaling_ns, info, wall, sys.argv[1:])
    elif only_stevedore:
        text = stevedore_report(bench, args.n, info, wall, sys.argv[1:])
    else:
        text = report(bench, [] if only_signing else args.n, info, wall, sys.argv[1:], scaling_ns)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + _kept_sections(out), encoding="utf-8")
    progress(f"wrote {out} in {time.monotonic() - started:.0f} s")


#: Sections other scripts write into the report, kept when it is written anew.
KEPT = [("<!-- reload:start -->", "<!-- reload:end -->")]  # benchmarks/reload.py


def _kept_sections(out: Path) -> str:
    """The sections of ``out`` that other scripts wrote (see ``KEPT``), to append again."""
    try:
        old = out.read_text(encoding="utf-8")
    except OSError:
        return ""
    kept = []
    for start, end in KEPT:
        if start in old and end in old:
            kept.append(start + old.partition(start)[2].partition(end)[0] + end + "\n")
    return "".join("\n" + section for section in kept)


if __name__ == "__main__":
    main()
