"""The Markdown report: the machine, the targets, the tables, how it was measured."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import coldstart
import environment
import goals
import signing
import synth
from figures import RESULTS_HEADER, escape, fmt_time, lines, result_line, spread, target_row
from measure import Bench, scaling_probe
from model import TARGET_N
from rows import CONTENDERS, ROWS, STEVEDORE_ROWS
from scalerows import SCALING_BASE_N, SCALING_CONTENDERS, SCALING_ROWS, SCALING_SLACK

ROOT = Path(__file__).resolve().parents[1]


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match[1].strip() if match else platform.processor() or "unknown"


def _git_revision() -> str:
    try:
        proc = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip()


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    return {
        "Date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "Platform": platform.platform(),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} CPUs",
        "Python": f"{platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable})",
        "plugyard": f"{_version('plugyard')} (git {_git_revision()})",
        "stevedore": _version("stevedore"),
        "pluggy": _version("pluggy"),
        "Load average (1, 5, 15 min) at start": _loadavg(),
    }


def _header(
    title: str, info: Mapping[str, str], wall: float, argv: Sequence[str], per_figure: str
) -> list[str]:
    """The title and what the figures were measured on, how, and for how long."""
    out = [f"# {title}", ""]
    out += [f"- **{key}**: {value}" for key, value in info.items()]
    return [
        *out,
        f"- **Load average at end**: {_loadavg()}",
        f"- **Command**: `python benchmarks/run.py {' '.join(argv)}`",
        f"- **Wall time**: {wall:.0f} s; {per_figure}",
        "",
    ]


def report(
    bench: Bench,
    ns: Sequence[int],
    info: Mapping[str, str],
    wall: float,
    argv: Sequence[str],
    scaling_ns: Sequence[int] = (),
    svg: Path | None = None,
) -> str:
    """The Markdown report: every row, then the scaling rows at ``scaling_ns`` if any.

    ``svg`` is where the scaling rows' plot is written, to name in the report.
    """
    found = lines(bench, ns)
    per_figure = f"{bench.repeat} fresh processes (or timeit samples) per figure"
    if scaling_ns:
        per_figure += f", {bench.scaling_repeat} fresh processes per scaling figure"
    out = _header("plugyard benchmarks", info, wall, argv, per_figure)
    out += [
        "Figures are medians, the lowest and the highest sample in brackets (in the "
        "median's unit). Each ratio is plugyard's median over the peer's; beside it, the "
        "lowest and the highest ratio of two samples taken side by side (the same round, "
        "back to back). They are noisy: the machine may be shared, and only the ratios, "
        "measured side by side in one run, are meant to be compared across machines.",
        "",
    ]
    out += goals.table(bench, found, ns, scaling_ns, bench.stevedore_cache)
    out += goals.earlier(found, ns)
    out += [
        "## Results",
        "",
        *RESULTS_HEADER,
    ]
    out += [result_line(line) for line in found]
    out += ["", "## Rows", ""]
    out += [f"- **{row.id}**: {row.what}" for row in ROWS]
    out += ["", "## What each figure times", ""]
    shown = {key for row in ROWS for key in (row.plugyard, *row.peers)}
    for key, contender in CONTENDERS.items():
        if key in shown:
            out.append(f"- **{key}** ({escape(contender.label)}): {contender.how}")
    out += [
        "",
        "## Method",
        "",
        f"- The plugins are N synthetic installed distributions in a temporary directory on "
        f"`PYTHONPATH`, each with one module `pkgNNN.py` and two entry points: "
        f"`[{synth.GROUP}] pluginNNN = pkgNNN:Plugin` (G, for plugyard and stevedore) and "
        f"`[{synth.PLUGGY_GROUP}] pluginNNN = pkgNNN` (G11, a module with a pluggy hook "
        "implementation, as `pytest11` plugins are). The modules import nothing and are "
        "byte-compiled beforehand. The environment's own distributions are on `sys.path` too, "
        "as for any application.",
        "- NAME is the plugin in the middle of the N.",
        "- Fresh-process figures: `python -c SNIPPET` (see `benchmarks/snippets.py`); the "
        "child times itself with `time.perf_counter_ns` and imports nothing before the clock "
        "starts. Every probe runs once untimed first (writing the warm caches and `.pyc` "
        "files, warming the page cache), then in rounds. In each round every pair that a "
        "ratio divides (plugyard's probe, the peer's) runs back to back, plugyard first in "
        "even rounds and the peer first in odd ones, the pairs in a shuffled order (see "
        "`benchmarks/schedule.py`): a slow spell of the machine, or drift, hits both sides "
        "of a ratio. A probe in several pairs runs once per pair; its figure in a line is "
        "its samples from that line's pair. Import rows run without the synthetic site.",
        "- Cache cold: a new, empty `XDG_CACHE_HOME` per process, which both plugyard "
        "(`plugyard/entry-points`) and stevedore (`python-entrypoints`) keep their caches in; "
        "it does not mean the OS page cache or `.pyc` files are cold. Warm: an "
        "`XDG_CACHE_HOME` written by the untimed run. Rows 3 and 4 run with warm caches.",
        "- stevedore's listing is `stevedore._cache.get_group_all(G)`: what "
        "`ExtensionManager.list_entry_points()` calls and what every stevedore manager "
        "lists with. stevedore offers no public listing that loads nothing: its managers "
        "load every (or every named) plugin in their constructor; `list_entry_points()`'s "
        "class-level memo matters only within one process.",
        "- pluggy loads one plugin for row 3 (`load_setuptools_entrypoints(G11, name=NAME)`), "
        "as plugyard and stevedore import only the one asked for.",
        "- Per-call figures: `benchmarks/percall.py`, `timeit` in one process, each sample "
        f"at least {bench.min_time:g} s of calls; the cost of the empty `timeit` loop "
        f"({fmt_time(bench.loop_ns)} per iteration) is subtracted.",
        f"- Metrics on and off in rows 5: {bench.metrics_switch}. Rows 2 to 4 use the "
        "manager's defaults, as a user who does not choose would.",
        *_memory_notes(bench, ns),
    ]
    if not bench.stevedore_cache:
        out.append(
            f"- **Warning**: stevedore's cache was {bench.stevedore_cache_state} (allowed by "
            f"`{environment.ALLOW}=1`): its rows that list or load ran cold, and no target "
            "against them is judged."
        )
    out += ["", "## 6. Signing", "", *_signing_method(bench.signed), ""]
    out += [*stevedore_section(bench, ns), ""]
    if scaling_ns:
        out += [*scaling_section(bench, scaling_ns, svg), ""]
    return "\n".join(out)


def _memory_notes(bench: Bench, ns: Sequence[int]) -> list[str]:
    """How rows 4.memory* were measured, and what the loads imported besides the plugins."""
    imported = []
    for n in ns:
        counts = {
            who: bench.samples.get((f"memory-modules/{who}", n))
            for who in ("plugyard", "stevedore")
        }
        if all(counts.values()):
            said = ", ".join(f"{who}'s {max(c or [0]):.0f}" for who, c in counts.items())
            imported.append(f"N={n}: {said}")
    return [
        "- Rows 4.memory*: `tracemalloc` started after the framework's import, stopped after "
        "the load and a full collection; the figure is what it still counted, over N (peak: "
        "the most it counted, over N), the median of "
        f"{min(bench.repeat, coldstart.MEMORY_ROUNDS)} processes. It includes the plugins' "
        "modules and instances (row `memory/bare` is those alone), the listing the load kept, "
        "and any module the framework imports only on first use. Modules other than the "
        f"plugins' that the load imported: {'; '.join(imported) or 'not measured'}.",
    ]


def stevedore_section(bench: Bench, ns: Sequence[int]) -> list[str]:
    """Section 8: plugyard.stevedore and the index, with the targets of issue 11."""
    found = lines(bench, ns, STEVEDORE_ROWS)
    out = [
        "## 8. stevedore and the index (issue 11)",
        "",
        f"### Targets (issue 11, at N={TARGET_N})",
        "",
        "| target | plugyard / peer | |",
        "| --- | ---: | --- |",
    ]
    for line in found:
        if line.target is None or line.n not in (None, TARGET_N):
            continue
        out.append(target_row(line))
    if TARGET_N not in ns:
        out.append(f"| (N={TARGET_N} was not in this run; targets at other N are not judged) | | |")
    out += [
        "",
        "### Results",
        "",
        *RESULTS_HEADER,
    ]
    out += [result_line(line) for line in found]
    out += ["", *(f"- **{row.id}**: {row.what}" for row in STEVEDORE_ROWS), ""]
    shown = {key for row in STEVEDORE_ROWS for key in (row.plugyard, *row.peers)}
    out += [
        f"- **{key}** ({escape(contender.label)}): {contender.how}"
        for key, contender in CONTENDERS.items()
        if key in shown
    ]
    counts = ", ".join(
        f"N={n}: {a} entries, {b} with the metadata directories, {c} for the key used"
        for n, (a, b, c) in sorted(bench.key_counts.items())
    )
    out += [
        "",
        "- The same synthetic site as rows 2 to 4, its middle distribution reinstalled from a "
        "signed wheel (`synth.sign_middle`: `plugyard.trust.sign_wheel`, a fresh key, the "
        "`installer` library). The verified DriverManager runs under "
        '`TrustPolicy(mode="require")` with a keyring trusting that key: the driver is '
        "verified and imported from the verified bytes (each process checks its loader); the "
        "other N - 1 distributions are unsigned and never verified. stevedore's DriverManager "
        "and ExtensionManager are unverified, their cache warm.",
        "- Rows 8.driver-first and 8.extension-all are judged with the imports in the clock "
        "and, in their no-import rows, without: `plugyard.stevedore` imports stevedore and "
        "plugyard (the verified driver also `plugyard.trust` and cryptography), stevedore "
        "itself only.",
        "- stevedore turns its cache off when the interpreter is under `/tmp` or a `.disable` "
        "file is in its cache directory; every stevedore probe checks after the clock that it "
        "was on, and fails otherwise.",
        "- Rows 8.list-* and 8.index-* repeat the figures of rows 2.*, judged against issue "
        "11's targets; the listing now gives `importlib.metadata`'s answers and its cache "
        "checks every file it was read from.",
        f"- Row 8.cache-key: `benchmarks/cachekeys.py`, `timeit` in one process; paths "
        f"checked: {counts or 'not measured'}. The cheaper keys miss edits in place "
        "(`entries` also misses files added to an installed distribution); the key used "
        "costs its extra `stat` calls on every warm read.",
    ]
    return out


def stevedore_report(
    bench: Bench, ns: Sequence[int], info: Mapping[str, str], wall: float, argv: Sequence[str]
) -> str:
    """The Markdown report of section 8 run alone."""
    per_figure = f"{bench.repeat} fresh processes (or timeit samples) per figure"
    out = _header("plugyard benchmarks: stevedore and the index", info, wall, argv, per_figure)
    return "\n".join([*out, *stevedore_section(bench, ns), ""])


def scaling_report(
    bench: Bench,
    ns: Sequence[int],
    info: Mapping[str, str],
    wall: float,
    argv: Sequence[str],
    svg: Path | None = None,
) -> str:
    """The Markdown report of a run of the scaling rows alone."""
    per_figure = f"{bench.scaling_repeat} fresh processes per figure"
    out = _header("plugyard benchmarks: scaling", info, wall, argv, per_figure)
    return "\n".join([*out, *scaling_section(bench, ns, svg), ""])


def _scaling_cell(bench: Bench, key: str, n: int) -> str:
    """The median of a scaling figure at ``n``, with its range, in one unit."""
    capped = bench.capped.get((scaling_probe(key), n))
    if capped == "not run":
        return "not run"
    if capped is not None:
        return f"> {fmt_time(bench.scaling_timeout * 1e9)}"
    return spread(bench.samples[key, n], SCALING_CONTENDERS[key].unit)


def _scaling_ratio(bench: Bench, key: str, n: int, base: int) -> str:
    """The figure at ``n`` over the figure at ``base``, judged against the limit."""
    found = goals.scaling_ratio(bench, key, n, base)
    if found is None:
        return "n/a"
    ratio, bound = found
    limit = goals.scaling_limit(n, base)
    if bound:  # at least the cap over the figure at base
        return f"> {ratio:.2f}x" + (" **missed**" if ratio > limit else "")
    return f"{ratio:.2f}x **{'met' if ratio <= limit else 'missed'}**"


def scaling_section(bench: Bench, ns: Sequence[int], svg: Path | None = None) -> list[str]:
    """The Scaling section: the table, N across and rows down, then how it was measured."""
    ns = sorted(set(ns))
    base = SCALING_BASE_N if SCALING_BASE_N in ns else ns[0]
    larger = [n for n in ns if n > base]
    cap = fmt_time(bench.scaling_timeout * 1e9)
    out = [
        "## Scaling",
        "",
        "Whether the lifecycle is linear in the number of plugins N. Each cell is the median "
        f"of {bench.scaling_repeat} fresh processes (min-max, in the median's unit). Each "
        f"ratio is the median at N over the median at N={base}; linear would be N / {base}, "
        f"and a ratio up to {SCALING_SLACK:g} times that is **met**. A process is stopped "
        f"after {cap}, its start and setup included: its cell says `> {cap}`, its ratio is "
        "the cap over the figure at the base (a lower bound, but for the setup's second or "
        "so), and the row is not run at larger N (`not run`).",
        "",
        *(
            [
                f"The rows over installed plugins (issue 14) are plotted in `{svg.name}`, "
                "beside this report: time against N on logarithmic axes, with a dashed line "
                "of linear growth through plugyard's figure at N=1000.",
                "",
            ]
            if svg is not None
            else []
        ),
        "| row | contender | "
        + " | ".join(f"N={n}" for n in ns)
        + "".join(f" | N={n} / N={base} (≤ {goals.scaling_limit(n, base):g}x)" for n in larger)
        + " |",
        "| --- | --- | " + " | ".join("---:" for _ in [*ns, *larger]) + " |",
    ]
    for row in SCALING_ROWS:
        for key in (row.plugyard, *row.peers):
            cells = [_scaling_cell(bench, key, n) for n in ns]
            cells += [_scaling_ratio(bench, key, n, base) for n in larger]
            label = escape(SCALING_CONTENDERS[key].label)
            out.append(f"| {row.id} | {label} | " + " | ".join(cells) + " |")
    out += ["", *(f"- **{row.id}**: {row.what}" for row in SCALING_ROWS), ""]
    out += [
        f"- **{key}** ({escape(contender.label)}): {contender.how}"
        for key, contender in SCALING_CONTENDERS.items()
    ]
    out += [
        "",
        "- The plugyard lines run `python -c SNIPPET` (see `benchmarks/snippets.py`, "
        "section 7): the child imports plugyard, registers N plugins in "
        "`registry = plugyard.Registry(G)`, each a class of its own, named `plugin000`, "
        "`plugin001` and so on, makes a fresh "
        "`manager = plugyard.PluginManager(registry, entry_points=False)` (its other "
        "arguments the defaults) and times one operation with `time.perf_counter_ns`. "
        "Only the public API is used. Nothing is discovered or "
        "imported, so the figures are the lifecycle's own. Each child checks its result "
        "after the clock stops: every plugin active after `load_all()` and the calls, none "
        "after `shutdown()`, N listed and none loaded by listing.",
        "- stevedore has no lazy loading, shutdown or dependencies: its one line, under "
        "7.load-all, is `ExtensionManager(G, invoke_on_load=True)` over N synthetic installed "
        "distributions (one module and one entry point each, see `benchmarks/synth.py`), its "
        "cache warm. It lists the entry points and imports N modules, which plugyard's "
        "registered plugins do not, so compare how it grows with N, not its time.",
        "- The rows `7.*-installed` (issue 14) run over N synthetic installed distributions "
        "instead, as rows 2 to 4 do, their caches warm: the listing, the first call of one "
        "plugin, `load_all()` and `shutdown()`, each timed after the import (an import does "
        "not grow with N, and would hide the part that does), with stevedore, pluggy and "
        "`importlib.metadata` beside them where they do the same.",
        "- Every probe runs once untimed at each N, smallest N first, then in rounds. In "
        "each round each row's probes at each N run back to back, plugyard's first and its "
        "peers' after (backwards in odd rounds), the rows and N in a shuffled order, so "
        "that a slow spell of the machine lands neither on one N of a ratio nor on one side "
        "of a row. The cap is on the whole process: interpreter start, import, setup and "
        "the operation.",
    ]
    return out


def _signing_method(signed: signing.SignedSite | None) -> list[str]:
    if signed is None:
        return ["Not measured in this run."]
    return [
        f"- One distribution, `{signing.DIST}`, whatever N: a package of {len(signed.modules)} "
        f"modules ({len(signing.SUBPACKAGES)} subpackages of "
        f"{signing.MODULES_PER_SUBPACKAGE} modules, their `__init__`s and the top-level "
        f"`__init__`, which imports them all), a `py.typed` and a JSON data file: "
        f"{signed.files} signed files, {signed.size / 1024:.0f} kB. The modules hold classes, "
        "functions and constants, 1 to 10 kB each, and import only each other. The wheel is "
        "written by the wheel spec (see `benchmarks/signing.py`), signed with "
        "`plugyard.trust.sign_wheel` and a fresh Ed25519 key, and installed with the "
        "`installer` library, which byte-compiles it as pip does.",
        "- Row 6.verify: `benchmarks/signing.py`, `timeit` in one process, the contenders "
        "alternating; the page cache is warm. The target's peer is the bare pass with "
        "`os.read`, the cheapest way Python reads a file (what `verify_distribution` does "
        "too); the pass with `open()` is shown for scale. Row 6.verify-1 is the same on "
        f"`{signing.SINGLE_DIST}`, the same metadata with one module: the fixed cost.",
        "- Rows 6.import and 6.import-verify: fresh processes with the site on `PYTHONPATH`. "
        "Before the clock: `import plugyard.trust`, the keyring read, the distribution found "
        "with `importlib.metadata`, the `VerifiedImporter` made. Its compiled-code cache is "
        "the probe's warm `XDG_CACHE_HOME`, filled by the untimed first run; each timed run "
        "checks that it wrote nothing there, and the normal import that it wrote nothing to "
        "`__pycache__`. The target row is 6.import, the import alone (the target is about "
        "the import); 6.import-verify adds the `verify_distribution` call that precedes it.",
    ]
