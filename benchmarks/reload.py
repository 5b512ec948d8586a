"""Hot reload under load: call latency during reloads, and how soon a new version serves.

Usage::

    python benchmarks/reload.py [--reloads 100] [--seconds 3] [--out benchmarks/results/latest.md]

Everything runs in one go on one machine, in this process but for the
``importlib.reload`` baseline, which runs in a child process of its own:

- The plugin ``core`` is a signed wheel of a package of 10 modules (the
  ``__init__`` and 9 modules it imports, a few functions and a class each),
  in two versions; ``left`` and ``right`` are two more signed wheels, each a
  plugin depending on ``core``. All three sit in one plugin directory of a
  manager that requires signatures, so every reload verifies and imports
  the new version through the verified importer, as in production.
- **Latency**: two threads call the plugins (one calls ``left``, the other
  ``right`` and ``core`` in turn), one call due every 0.5 ms each (a call's
  latency runs from when it was due, so waiting for the GIL counts), for
  ten rounds of a quiet spell (``--seconds`` in all) and a tenth of the
  ``--reloads`` reloads of ``core`` between its two versions, 20 ms apart.
  The p99 of the calls that overlap a reload is compared with the p99 of
  the calls of the quiet spells: the target is at most 5 ms more.
- **To serving**: with no other load, one thread calls ``core`` in a loop
  while another reloads it; the time from ``reload()`` being called to the
  first call answered by the new version, and until ``reload()`` returns
  (after the old instances are drained and torn down). The peer is a plain
  ``importlib.reload`` of the same 10 modules, installed unverified on
  ``sys.path``: what a reload costs with no verification, no set-up, no
  drain and no undo.

The report is a section of its own in the output file, between the
markers below; any other content of the file is kept.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import hashlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START = "<!-- reload:start -->"
END = "<!-- reload:end -->"
GROUP = "rbench"
MODULES = 9
PACE = 0.0005
TARGET_MS = 5.0


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def write_wheel(
    directory: Path, name: str, version: str, files: dict[str, str], entry_points: dict[str, str]
) -> Path:
    """Write a wheel by the wheel spec: ``files`` under the site, a dist-info beside them."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    members = {path: text.encode() for path, text in files.items()}
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    members[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: plugyard-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    eps = "".join(f"{n} = {v}\n" for n, v in entry_points.items())
    members[f"{info}/entry_points.txt"] = f"[{GROUP}]\n{eps}".encode()
    rows = [[p, _record_hash(c), str(len(c))] for p, c in members.items()]
    rows.append([f"{info}/RECORD", "", ""])
    record = io.StringIO()
    csv.writer(record, lineterminator="\n").writerows(rows)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, content in members.items():
            zf.writestr(path, content)
        zf.writestr(f"{info}/RECORD", record.getvalue())
    return wheel


def core_files(version: str) -> dict[str, str]:
    """The 10 modules of ``rbench-core`` at ``version``."""
    files = {}
    for i in range(1, MODULES + 1):
        files[f"rbench_core/part{i}.py"] = textwrap.dedent(
            f'''\
            """Part {i} of the benchmark plugin."""

            VERSION = "{version}"


            def weight(text):
                return sum(ord(c) for c in text) % {97 + i}


            def words(text):
                return [w for w in text.split() if w]


            class Counter{i}:
                def __init__(self):
                    self.seen = 0

                def add(self, text):
                    self.seen += len(words(text))
                    return self.seen
            '''
        )
    imports = "".join(f"from . import part{i}\n" for i in range(1, MODULES + 1))
    files["rbench_core/__init__.py"] = (
        '"""The benchmark plugin: ten modules, one version."""\n\n'
        f"import plugyard\n\n{imports}\n"
        f'VERSION = "{version}"\n\n\n'
        + textwrap.dedent(
            f"""\
            @plugyard.register(group="{GROUP}", name="core")
            class Core:
                def setup(self, ctx):
                    self.total = 0

                def migrate(self, previous):
                    self.total = previous.total

                def execute(self, data):
                    self.total += part1.weight(data)
                    return VERSION
            """
        )
    )
    return files


def dependent_files(name: str) -> dict[str, str]:
    return {
        f"rbench_{name}/__init__.py": textwrap.dedent(
            f'''\
            import plugyard


            @plugyard.register(group="{GROUP}", name="{name}", depends_on=["core>=1,<2"])
            class Dependent:
                def setup(self, ctx):
                    self.core = ctx.dependency("core")

                def execute(self, data):
                    return self.core.execute(data)
            '''
        )
    }


def build(root: Path) -> tuple[Path, Path, Path]:
    """Signed wheels in a plugin directory; the directory, the keyring and a plain site."""
    from plugyard.trust import generate_key, load_private_key, sign_wheel

    plugins = root / "plugins"
    plugins.mkdir()
    unsigned = root / "unsigned"
    unsigned.mkdir()
    wheels = [
        write_wheel(unsigned, "rbench-core", v, core_files(v), {"core": "rbench_core:Core"})
        for v in ("1.0", "1.1")
    ]
    wheels += [
        write_wheel(
            unsigned, f"rbench-{n}", "1.0", dependent_files(n), {n: f"rbench_{n}:Dependent"}
        )
        for n in ("left", "right")
    ]
    private, public = generate_key(root / "keys", "bench")
    key = load_private_key(private)
    for wheel in wheels:
        sign_wheel(wheel, key, plugins)
    ring = root / "ring"
    ring.mkdir()
    (ring / "bench.pem").write_bytes(public.read_bytes())
    site = root / "plain-site"
    for version, path in core_files("1.0").items():
        target = site / version
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path, encoding="utf-8")
    return plugins, ring, site


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _caller(handles: list[Any], stop: threading.Event, out: list[tuple[int, int]]) -> None:
    """Call ``handles`` in turn, one call every ``PACE`` seconds, as a client on a schedule.

    Each call's latency runs from when it was due, not from when the thread
    got to it: time spent waiting for the GIL (or for a late wake-up) counts,
    as it would for a client whose request arrived then.
    """
    clock = time.perf_counter_ns
    pace = int(PACE * 1e9)
    due = clock()
    i = 0
    while not stop.is_set():
        now = clock()
        if now < due:
            time.sleep((due - now) / 1e9)
        handle = handles[i % len(handles)]
        i += 1
        handle.execute("the quick brown fox")
        end = clock()
        out.append((due, end))
        due += pace
        if due < end - 20 * pace:  # fell far behind: do not pile up a backlog
            due = end


def latency(manager: Any, reloads: int, seconds: float, rounds: int = 10) -> dict[str, float]:
    """p99 of the calls without reloads, and of the calls that overlap one.

    The two phases alternate, ``rounds`` times, so that a noisy spell of the
    machine falls on both alike.
    """
    handles = [[manager.get("left")], [manager.get("right"), manager.get("core")]]
    stop = threading.Event()
    samples: list[list[tuple[int, int]]] = [[], []]
    threads = [
        threading.Thread(target=_caller, args=(h, stop, s))
        for h, s in zip(handles, samples, strict=True)
    ]
    quiet: list[tuple[int, int]] = []
    windows: list[tuple[int, int]] = []
    version = "1.0"
    for t in threads:
        t.start()
    try:
        for round_ in range(rounds):
            start = time.perf_counter_ns()
            time.sleep(seconds / rounds)
            quiet.append((start, time.perf_counter_ns()))
            for _ in range(reloads // rounds + (round_ < reloads % rounds)):
                version = "1.1" if version == "1.0" else "1.0"
                start = time.perf_counter_ns()
                manager.reload("core", version)
                windows.append((start, time.perf_counter_ns()))
                time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join()
    calls = samples[0] + samples[1]

    def inside(spans: list[tuple[int, int]]) -> list[float]:
        return [
            (end - due) / 1e6
            for due, end in calls
            if any(due < s1 and end > s0 for s0, s1 in spans)
        ]

    # A quiet span's calls, not those that overlap the reload right after it.
    base = [
        (end - due) / 1e6 for due, end in calls if any(s0 <= due and end <= s1 for s0, s1 in quiet)
    ]
    during = inside(windows)
    return {
        "base_calls": len(base),
        "base_p50": quantile(base, 0.5),
        "base_p99": quantile(base, 0.99),
        "during_calls": len(during),
        "during_p50": quantile(during, 0.5),
        "during_p99": quantile(during, 0.99),
        "during_max": max(during),
        "reload_ms": statistics.median((w1 - w0) / 1e6 for w0, w1 in windows),
    }


def to_serving(manager: Any, reloads: int) -> dict[str, float]:
    """Median time from ``reload()`` to the new version's first answer, and to its return."""
    handle = manager.get("core")
    serving, returned = [], []
    version = str(handle.execute("x"))
    for _ in range(reloads):
        target = "1.1" if version == "1.0" else "1.0"
        seen = threading.Event()
        stamp: list[int] = []

        def probe(
            target: str = target, seen: threading.Event = seen, stamp: list[int] = stamp
        ) -> None:
            while not seen.is_set():
                if handle.execute("x") == target:
                    stamp.append(time.perf_counter_ns())
                    seen.set()

        thread = threading.Thread(target=probe)
        thread.start()
        start = time.perf_counter_ns()
        manager.reload("core", target)
        done = time.perf_counter_ns()
        seen.wait(10)
        thread.join()
        serving.append((stamp[0] - start) / 1e6)
        returned.append((done - start) / 1e6)
        version = target
    return {"serving_ms": statistics.median(serving), "returned_ms": statistics.median(returned)}


PLAIN = """
import importlib, json, statistics, sys, time
sys.path.insert(0, {site!r})
import rbench_core
modules = [sys.modules[f"rbench_core.part{{i}}"] for i in range(1, {n} + 1)] + [rbench_core]
times = []
for _ in range({reloads}):
    start = time.perf_counter_ns()
    for module in modules:
        importlib.reload(module)
    times.append((time.perf_counter_ns() - start) / 1e6)
print(json.dumps(statistics.median(times)))
"""


def plain_reload(site: Path, reloads: int) -> float:
    """Median ms of ``importlib.reload`` of the 10 modules, unverified, in a child process."""
    code = PLAIN.format(site=str(site), n=MODULES, reloads=reloads)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout))


def report(figures: dict[str, float], args: argparse.Namespace) -> str:
    import plugyard

    allowed = figures["base_p99"] + TARGET_MS
    met = "**met**" if figures["during_p99"] <= allowed else "**missed**"
    lines = [
        START,
        "## Hot reload (issue 12)",
        "",
        f"- **Date**: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- **Platform**: {platform.platform()}, {os.cpu_count()} CPUs",
        f"- **Python**: {platform.python_implementation()} {platform.python_version()}",
        f"- **plugyard**: {plugyard.__version__}",
        f"- **Command**: `python benchmarks/reload.py --reloads {args.reloads} "
        f"--seconds {args.seconds:g}`",
        "",
        "A signed 10-module plugin with two dependents, in a plugin directory under a "
        "requiring trust policy, reloaded between two versions (see `benchmarks/reload.py`).",
        "",
        "| figure | plugyard | peer | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| p99 of calls during a reload, vs without reloads | {figures['during_p99']:.3f} ms "
        f"({int(figures['during_calls'])} calls) | {figures['base_p99']:.3f} ms "
        f"({int(figures['base_calls'])} calls) | "
        f"{figures['during_p99'] / figures['base_p99']:.2f}x | ≤ +{TARGET_MS:g} ms: "
        f"{figures['during_p99'] - figures['base_p99']:+.3f} ms {met} |",
        f"| p50 of calls during a reload, vs without reloads | {figures['during_p50']:.3f} ms "
        f"| {figures['base_p50']:.3f} ms | {figures['during_p50'] / figures['base_p50']:.2f}x "
        "|  |",
        f"| `reload()` called to the new version serving, vs `importlib.reload` of the 10 "
        f"modules | {figures['serving_ms']:.2f} ms | {figures['plain_ms']:.2f} ms | "
        f"{figures['serving_ms'] / figures['plain_ms']:.2f}x |  |",
        f"| `reload()` called to returned (old instances drained and torn down), vs "
        f"`importlib.reload` | {figures['returned_ms']:.2f} ms | {figures['plain_ms']:.2f} ms | "
        f"{figures['returned_ms'] / figures['plain_ms']:.2f}x |  |",
        "",
        f"The slowest call during the reloads took {figures['during_max']:.3f} ms; a reload "
        f"under load took {figures['reload_ms']:.2f} ms (median). Latency: two threads, a "
        f"call due every {PACE * 1000:g} ms each, in 10 rounds of quiet and reloading spells. "
        f"Medians of {args.reloads} reloads.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write(out: Path, section: str) -> None:
    """Put ``section`` in ``out`` in place of the previous one, keeping everything else."""
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    if START in text and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        text = head + section.rstrip("\n") + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="plugyard-reload-") as tmp:
        root = Path(tmp)
        os.environ["XDG_DATA_HOME"] = str(root / "data")
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")
        plugins, ring, site = build(root)
        import plugyard
        from plugyard.trust import Keyring

        policy = plugyard.TrustPolicy(mode="require", keyring=Keyring.from_directory(ring))
        manager = plugyard.PluginManager(
            group=GROUP, plugin_dirs=[plugins], trust=policy, versions={"core": "==1.0"}
        )
        manager.load_all()
        for version in ("1.1", "1.0", "1.1", "1.0"):  # install and verify both, once
            manager.reload("core", version)
        figures = latency(manager, args.reloads, args.seconds)
        figures.update(to_serving(manager, args.reloads))
        manager.shutdown()
        figures["plain_ms"] = plain_reload(site, args.reloads)
    section = report(figures, args)
    write(args.out, section)
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
