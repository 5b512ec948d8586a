"""Running the benchmarks: fresh processes, the in-process scripts, the scaling rows.

:class:`Bench` holds a run's options, its temporary tree and the samples;
:func:`measure` measures every contender the rows name, once or per N, and
:func:`run_scaling` the scaling rows, at every N of ``--scaling-n``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import schedule
import signing
import synth
from model import Contender, Row
from rows import CONTENDERS, PROBES, ROWS, STEVEDORE_ROWS
from scalerows import SCALING_CONTENDERS, SCALING_PROBES, SCALING_ROWS

HERE = Path(__file__).resolve().parent

_BENCH_LINE = re.compile(r"^BENCH (?P<fields>.*)$", re.MULTILINE)
# Variables that would change what a child measures (PYTHONPATH and
# PYTHONHOME are kept: they may be how plugyard itself is found).
_CLEAR_ENV = ("PYTHON", "PLUGYARD_", "COV_CORE_", "COVERAGE_")
# PLUGYARD_BENCH_ANY_CACHE: the smoke tests let stevedore probes run with its cache off.
_KEEP_ENV = ("PYTHONPATH", "PYTHONHOME", "PLUGYARD_BENCH_ANY_CACHE")


class BenchmarkError(RuntimeError):
    """A child process failed or printed no figures."""


@dataclass
class Bench:
    """The state of one run: options, the temporary tree, and the samples in ns."""

    repeat: int
    min_time: float
    tmp: Path
    samples: dict[tuple[str, int | None], list[float]] = field(default_factory=dict)
    # By (plugyard's probe, the peer's probe, N): each side's phases, sample i
    # of one taken right before or after sample i of the other.
    pairs: dict[tuple[str, str, int | None], tuple[list[dict[str, int]], list[dict[str, int]]]] = (
        field(default_factory=dict)
    )
    loop_ns: float = 0.0  # the empty timeit loop, per iteration
    metrics_switch: str = "not measured"  # how percall.py turned metrics on and off
    signed: signing.SignedSite | None = None  # the signing rows' distribution, once built
    single: signing.SignedSite | None = None  # the one-module distribution of row 6.verify-1
    scaling_repeat: int = 5
    scaling_timeout: float = 120.0  # seconds, per process
    # Scaling probes that ran no figure at an N: "timed out", or "not run" after that.
    capped: dict[tuple[str, int], str] = field(default_factory=dict)
    sites: dict[int, synth.Site] = field(default_factory=dict)  # by N, built once per run
    # By N: how many paths each cache key checks (cachekeys.py).
    key_counts: dict[int, list[int]] = field(default_factory=dict)
    # Whether stevedore's cache was on in the children (see environment.py), and why not.
    stevedore_cache: bool = True
    stevedore_cache_state: str = "not checked"

    def env(self, cache_home: Path, site: Path | None, *, no_cache: bool = False) -> dict[str, str]:
        """A child's environment: ours without what would change its figures."""
        env = {
            k: v for k, v in os.environ.items() if k in _KEEP_ENV or not k.startswith(_CLEAR_ENV)
        }
        env["XDG_CACHE_HOME"] = str(cache_home)
        if site is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        if no_cache:
            env["PLUGYARD_NO_CACHE"] = "1"
        return env

    def cwd(self) -> Path:
        """An empty working directory: ``-c`` puts it first on ``sys.path``."""
        path = self.tmp / "cwd"
        path.mkdir(exist_ok=True)
        return path


def _run(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(
        argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    found = _BENCH_LINE.findall(proc.stdout)
    if proc.returncode != 0 or not found:
        raise BenchmarkError(
            f"{argv[1][:60]!r}... exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return str(found[-1])


Target = synth.Site | signing.SignedSite | None


def _run_probe(bench: Bench, key: str, site: Target) -> dict[str, int]:
    probe = PROBES[key]
    n = site.n if isinstance(site, synth.Site) else 0
    if probe.cache == "warm":
        cache_home = bench.tmp / "warm" / f"{key}-{n}"
        cache_home.mkdir(parents=True, exist_ok=True)
    else:
        (bench.tmp / "cold").mkdir(exist_ok=True)
        cache_home = Path(tempfile.mkdtemp(dir=bench.tmp / "cold"))
    if isinstance(site, signing.SignedSite):
        argv = [sys.executable, "-c", probe.code, *site.argv()]
    else:
        names = [site.middle, str(site.n)] if site is not None else ["", "0"]
        if site is not None and site.keyring is not None:
            names.append(str(site.keyring))
        argv = [sys.executable, "-c", probe.code, synth.GROUP, synth.PLUGGY_GROUP, *names]
    env = bench.env(
        cache_home, site.path if site is not None else None, no_cache=probe.cache == "off"
    )
    try:
        line = _run(argv, env, bench.cwd())
    finally:
        if probe.cache != "warm":
            shutil.rmtree(cache_home, ignore_errors=True)
    return _fields(line)


def _fields(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in line.split())}


def run_probes(
    bench: Bench, keys: Iterable[str], site: Target, divisions: Iterable[tuple[str, str]] = ()
) -> None:
    """Run each probe once untimed, then ``repeat`` rounds, the pairs alternating.

    The untimed run writes the warm caches and warms the OS's and Python's
    own (``.pyc``, page cache). ``divisions`` are the (plugyard, peer) pairs
    of probes that the rows divide: each runs back to back in every round
    (see ``schedule.py``), so that drift hits both sides of a ratio; a probe
    in no pair runs alone. A probe's ``rounds`` caps how many rounds it runs.
    """
    keys = sorted(set(keys))
    if not keys:
        return
    n = site.n if isinstance(site, synth.Site) else None
    what = "signed" if isinstance(site, signing.SignedSite) else f"N={n or '-'}"
    for key in keys:
        _run_probe(bench, key, site)
    units = schedule.pairs([d for d in divisions if set(d) <= set(keys)], keys)

    def run(key: str) -> dict[str, int]:
        sample = _run_probe(bench, key, site)
        if not sample.get("warm", 1):
            raise BenchmarkError(f"{key}: a cache meant to be warm was written in a timed run")
        return sample

    results = schedule.alternate(
        units,
        bench.repeat,
        run,
        limits={k: r for k in keys if (r := PROBES[k].rounds) is not None},
        progress=lambda r: progress(f"{what}: fresh processes, round {r + 1}/{bench.repeat}"),
    )
    _keep(bench, results, n, CONTENDERS)


def _keep(
    bench: Bench,
    results: Mapping[tuple[str, ...], Mapping[str, list[dict[str, int]]]],
    n: int | None,
    contenders: Mapping[str, Contender],
) -> None:
    """Every contender's samples (from every unit), and each pair's own."""
    for unit, by_probe in results.items():
        if len(unit) == 2:
            bench.pairs[unit[0], unit[1], n] = (list(by_probe[unit[0]]), list(by_probe[unit[1]]))
    for name, contender in contenders.items():
        phases = [p for by in results.values() for p in by.get(contender.probe or "", [])]
        if phases:
            bench.samples[name, n] = [float(p[contender.phase]) for p in phases]


def run_percall(bench: Bench, keys: Iterable[str], site: synth.Site) -> None:
    """Time the per-call contenders in one child process; subtract the empty loop."""
    progress(f"N={site.n}: per-call timings")
    argv = [
        sys.executable,
        str(HERE / "percall.py"),
        synth.GROUP,
        synth.PLUGGY_GROUP,
        site.middle,
        "--repeat",
        str(bench.repeat),
        "--min-time",
        str(bench.min_time),
    ]
    cache_home = Path(tempfile.mkdtemp(dir=bench.tmp))
    line = _run(argv, bench.env(cache_home, site.path), bench.cwd())
    output = json.loads(line)
    samples: dict[str, list[float]] = output["samples"]
    bench.metrics_switch = output["metrics"]
    loop = statistics.median(samples["empty"])
    bench.loop_ns = loop
    for name in keys:
        phase = CONTENDERS[name].phase
        bench.samples[name, site.n] = [s - loop for s in samples[phase]]


def run_signing(bench: Bench, keys: Iterable[str], signed: signing.SignedSite) -> None:
    """Time the in-process signing contenders (``signing.py``) in one child process per site.

    The ``verify-single/`` contenders are timed on :attr:`Bench.single`, the rest on ``signed``.
    """
    keys = list(keys)
    single = [k for k in keys if k.startswith("verify-single/")]
    if single:
        if bench.single is None:
            bench.single = signing.make_signed_site(bench.tmp / "single", single=True)
        _run_signing(bench, single, bench.single)
    _run_signing(bench, [k for k in keys if k not in single], signed)


def _run_signing(bench: Bench, keys: Sequence[str], signed: signing.SignedSite) -> None:
    if not keys:
        return
    progress(f"signed: verify_distribution vs a bare pass, {signed.path.parent.name}")
    argv = [
        sys.executable,
        str(HERE / "signing.py"),
        str(signed.path),
        str(signed.keyring),
        "--repeat",
        str(bench.repeat),
        "--min-time",
        str(bench.min_time),
    ]
    cache_home = Path(tempfile.mkdtemp(dir=bench.tmp))
    samples: dict[str, list[float]] = json.loads(
        _run(argv, bench.env(cache_home, None), bench.cwd())
    )["samples"]
    for name in keys:
        bench.samples[name, None] = samples[CONTENDERS[name].phase]


def run_cachekeys(bench: Bench, keys: Iterable[str], site: synth.Site) -> None:
    """Time what checking the index cache costs (``cachekeys.py``) in one child process."""
    progress(f"N={site.n}: the index cache's keys, in one process")
    argv = [
        sys.executable,
        str(HERE / "cachekeys.py"),
        synth.GROUP,
        "--repeat",
        str(bench.repeat),
        "--min-time",
        str(bench.min_time),
    ]
    cache_home = Path(tempfile.mkdtemp(dir=bench.tmp))
    output = json.loads(_run(argv, bench.env(cache_home, site.path), bench.cwd()))
    bench.key_counts[site.n] = output["counts"]
    for name in keys:
        bench.samples[name, site.n] = output["samples"][CONTENDERS[name].phase]


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def divided(rows: Iterable[Row], contenders: Mapping[str, Contender]) -> list[tuple[str, str]]:
    """The (plugyard, peer) pairs of probes that ``rows`` divide, in order."""
    found = []
    for row in rows:
        mine = contenders[row.plugyard].probe
        for peer in row.peers:
            theirs = contenders[peer].probe
            if mine is not None and theirs is not None:
                found.append((mine, theirs))
    return found


def measure(bench: Bench, ns: Sequence[int], rows: Sequence[Row] | None = None) -> None:
    """Measure every contender ``rows`` name (all rows by default): once, or per N."""
    rows = [*ROWS, *STEVEDORE_ROWS] if rows is None else rows
    used = {key for row in rows for key in (row.plugyard, *row.peers)}
    unknown = used - set(CONTENDERS)
    assert not unknown, f"rows name unknown contenders: {sorted(unknown)}"
    probes = {p for p in (CONTENDERS[k].probe for k in used) if p is not None}
    once = {p for p in probes if not PROBES[p].site and not PROBES[p].signed}
    signed_probes = {p for p in probes if PROBES[p].signed}
    in_process = [k for k in used if CONTENDERS[k].probe is None]
    signed_keys = [k for k in in_process if CONTENDERS[k].script == "signing.py"]
    percall = [k for k in in_process if CONTENDERS[k].script == "percall.py"]
    cachekeys = [k for k in in_process if CONTENDERS[k].script == "cachekeys.py"]
    divisions = divided(rows, CONTENDERS)
    run_probes(bench, once, None, divisions)
    if signed_probes or signed_keys:
        started = time.monotonic()
        bench.signed = signing.make_signed_site(bench.tmp / "signed")
        run_probes(bench, signed_probes, bench.signed, divisions)
        if signed_keys:
            run_signing(bench, signed_keys, bench.signed)
        progress(f"signed: {time.monotonic() - started:.0f} s")
    for n in ns:
        started = time.monotonic()
        site = _site(bench, n)
        run_probes(bench, probes - once - signed_probes, site, divisions)
        if percall:
            run_percall(bench, percall, site)
        if cachekeys:
            run_cachekeys(bench, cachekeys, site)
        progress(f"N={n}: {time.monotonic() - started:.0f} s")


def _site(bench: Bench, n: int) -> synth.Site:
    """The synthetic site of ``n`` distributions, written on first use."""
    site = bench.sites.get(n)
    if site is None:
        made = synth.make_site(bench.tmp / f"site-{n}", n)
        # The middle distribution is signed, for the verified DriverManager (row 8).
        site = bench.sites[n] = synth.sign_middle(made, bench.tmp / f"signer-{n}")
    return site


def _run_scaling_probe(bench: Bench, key: str, site: synth.Site) -> dict[str, int] | None:
    """One fresh process of a scaling probe, or ``None`` (recorded) if it ran past the cap."""
    probe = SCALING_PROBES[key]
    cache_home = bench.tmp / "warm" / f"{key}-{site.n}"
    cache_home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", probe.code, synth.GROUP, synth.PLUGGY_GROUP, site.middle]
    env = bench.env(cache_home, site.path if probe.site else None)
    try:
        line = _run([*argv, str(site.n)], env, bench.cwd(), bench.scaling_timeout)
    except subprocess.TimeoutExpired:
        progress(f"scaling N={site.n}: {key} ran past {bench.scaling_timeout:g} s")
        bench.capped[key, site.n] = "timed out"
        return None
    return _fields(line)


def run_scaling(bench: Bench, ns: Sequence[int]) -> None:
    """Run every scaling probe at every N: once untimed, then in alternating rounds.

    The untimed runs go smallest N first. In each round, each row's probes
    at each N run back to back (plugyard's, then its peers'; backwards in odd
    rounds), the rows and N in a shuffled order, so that a slow spell of the
    machine lands neither on one N of a ratio nor on one side of a row. A
    probe whose process runs past the cap gets no figure at that N (one slow
    process is enough: its median could be past the cap too), and none at a
    larger N, where it would only be slower: it is not run there (again).
    """
    ns = sorted(set(ns))
    keys = sorted({scaling_probe(key) for key in scaling_keys()})
    started = time.monotonic()

    def attempt(job: tuple[str, int]) -> dict[str, int] | None:
        key, n = job
        sample = _run_scaling_probe(bench, key, _site(bench, n))
        if sample is None:
            for m in ns:
                if m > n and (key, m) not in bench.capped:
                    bench.capped[key, m] = "not run"
        return sample

    for n in ns:
        for key in keys:
            if (key, n) not in bench.capped:
                attempt((key, n))
        progress(f"scaling N={n}: untimed runs done at {time.monotonic() - started:.0f} s")
    units = [
        tuple((probe, n) for probe in dict.fromkeys(map(scaling_probe, (row.plugyard, *row.peers))))
        for n in ns
        for row in SCALING_ROWS
    ]
    results = schedule.alternate(
        units,
        bench.scaling_repeat,
        attempt,
        skip=lambda job: job in bench.capped,
        progress=lambda r: progress(
            f"scaling: fresh processes, round {r + 1}/{bench.scaling_repeat}"
        ),
    )
    gathered: dict[tuple[str, int], list[dict[str, int]]] = {}
    for by_job in results.values():
        for job, taken in by_job.items():
            gathered.setdefault(job, []).extend(taken)
    for name in scaling_keys():
        contender = SCALING_CONTENDERS[name]
        for n in ns:
            phases = gathered.get((scaling_probe(name), n))
            if phases and (scaling_probe(name), n) not in bench.capped:
                bench.samples[name, n] = [float(p[contender.phase]) for p in phases]
    progress(f"scaling: {time.monotonic() - started:.0f} s")


def scaling_probe(key: str) -> str:
    """The probe a scaling contender's figure comes from."""
    probe = SCALING_CONTENDERS[key].probe
    assert probe is not None, f"{key} names no probe"
    return probe


def scaling_keys() -> list[str]:
    """The scaling contenders, in the order of the table."""
    return [key for row in SCALING_ROWS for key in (row.plugyard, *row.peers)]
