"""Benchmark the sandbox side by side with the raw transport it is built on.

Usage::

    python benchmarks/sandbox.py [--quick] [--out benchmarks/results/latest.md]

Rows, each measured in this one run:

- a small call's round trip through a sandboxed plugin's handle, next to a
  bare msgpack echo over the same kind of pipes (fds 3 and 4, 1 MiB pipe
  buffers) between two Python processes, and next to
  ``ProcessPoolExecutor.submit().result()``;
- an 8 MiB ``bytes`` argument echoed through the plugin, next to 8 MiB of
  raw bytes sent over the pipes, read whole by the peer into one ``bytes``
  object and sent back into one on this side, as a call has its whole
  argument before it answers (throughput counts both directions);
- pipelined calls per second (many requests in flight on one process),
  next to pipelined raw echoes;
- start-up, spawn to ``$/hello`` answered, next to ``python -c pass``
  (with and without bubblewrap);
- the Node.js plugin's round trip next to the Python worker's.

The section "Sandbox (issue 13)" of ``--out`` is replaced (or added); the
rest of the file is left as it is.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

import plugyard
from plugyard.runtime import Sandbox, external

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NODE_PLUGIN = ROOT / "contrib_plugins" / "node-wordfreq"
HEADING = "## Sandbox (issue 13)"
SMALL = b"x" * 32
BIG = os.urandom(8 << 20)

RAW_ECHO = r"""
import os, sys, msgpack
mode = sys.argv[1]
if mode == "msgpack":
    unpacker = msgpack.Unpacker(raw=False)
    pack = msgpack.Packer(use_bin_type=True).pack
    while True:
        data = os.read(3, 1 << 20)
        if not data:
            break
        unpacker.feed(data)
        out = [pack([1, m[1], None, m[3][0] if m[3] else None]) for m in unpacker]
        view = memoryview(b"".join(out))
        while view:
            view = view[os.write(4, view):]
else:  # a call's worth of raw bytes: read all of the argument, then write it back
    size = int(sys.argv[2])
    while True:
        chunks, got = [], 0
        while got < size:
            data = os.read(3, 1 << 20)
            if not data:
                sys.exit(0)
            chunks.append(data)
            got += len(data)
        view = memoryview(b"".join(chunks))  # the argument, as one bytes object
        while view:
            view = view[os.write(4, view):]
"""


class Echo:
    """The sandboxed plugin measured: it returns its argument."""

    def execute(self, data: Any) -> Any:
        """Return ``data``."""
        return data


def _echo(data: Any) -> Any:
    return data


# -- the raw transport -----------------------------------------------------------


class RawPeer:
    """A Python process echoing on fds 3 and 4, as bare as the transport gets."""

    def __init__(self, mode: str, size: int = 0) -> None:
        down, up = os.pipe(), os.pipe()
        import fcntl

        for fd in (down[1], up[0]):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ, as the sandbox sets it
        theirs = (down[0], up[1])

        def move() -> None:
            moved = [os.dup(fd) for fd in theirs]
            os.dup2(moved[0], 3)
            os.dup2(moved[1], 4)

        self.process = subprocess.Popen(
            [sys.executable, "-c", RAW_ECHO, mode, str(size)], pass_fds=(3, 4), preexec_fn=move
        )
        for fd in theirs:
            os.close(fd)
        self.w, self.r = down[1], up[0]
        self.unpacker = msgpack.Unpacker(raw=False)
        self.pack = msgpack.Packer(use_bin_type=True).pack

    def call(self, msgid: int, data: Any) -> Any:
        """One request, and its response's result."""
        os.write(self.w, self.pack([0, msgid, "execute", [data]]))
        unpacker = self.unpacker
        while True:
            for message in unpacker:
                return message[3]
            unpacker.feed(os.read(self.r, 1 << 20))

    def pipelined(self, n: int) -> None:
        """``n`` requests in flight at once, and all their responses."""
        pack = self.pack
        batch = b"".join(pack([0, i, "execute", [i]]) for i in range(n))
        writer = threading.Thread(target=_write_all, args=(self.w, batch))
        writer.start()
        seen = 0
        while seen < n:
            self.unpacker.feed(os.read(self.r, 1 << 20))
            seen += sum(1 for _ in self.unpacker)
        writer.join()

    def bytes_echo(self, payload: bytes) -> bytes:
        """``payload`` there and back."""
        writer = threading.Thread(target=_write_all, args=(self.w, payload))
        writer.start()
        chunks, got = [], 0
        while got < len(payload):
            chunks.append(os.read(self.r, 1 << 20))
            got += len(chunks[-1])
        writer.join()
        return b"".join(chunks)  # the result, as one bytes object

    def close(self) -> None:
        """EOF on its fd 3; it exits."""
        os.close(self.w)
        self.process.wait(5)
        os.close(self.r)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- timing ---------------------------------------------------------------------


def per_call(fn: Callable[[int], object], min_time: float, repeat: int) -> list[float]:
    """Seconds per call of ``fn(i)``: ``repeat`` samples of at least ``min_time`` each."""
    for i in range(200):
        fn(i)
    samples = []
    for _ in range(repeat):
        n, started = 0, time.perf_counter()
        while True:
            for _ in range(100):
                fn(n)
                n += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_time:
                break
        samples.append(elapsed / n)
    return samples


def once(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` runs of ``fn()``, after one untimed run."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _manager(registry: plugyard.Registry, policy: Sandbox) -> plugyard.PluginManager:
    return plugyard.PluginManager(
        registry, isolation="process", sandbox=policy, metrics=False, entry_points=False
    )


def measure(quick: bool) -> dict[str, list[float]]:
    """Every figure of the report, as samples.

    Each comparison runs in rounds that alternate the contenders, all of
    them started before the first round, so that a slow spell of a shared
    machine hits every contender alike.
    """
    min_time, rounds = (0.05, 3) if quick else (0.3, 9)
    # The worker imports the plugin by its module's name: this file's, not __main__.
    import sandbox

    registry = plugyard.Registry("bench.sandbox")
    registry.register(sandbox.Echo, name="echo")
    registry.register(sandbox.Echo, name="pyfreq")
    policy = Sandbox(call_timeout=60.0)
    samples: dict[str, list[float]] = {}
    contenders: dict[str, Callable[[], float]] = {}

    def calls(fn: Callable[[int], object]) -> Callable[[], float]:
        return lambda: per_call(fn, min_time, 1)[0]

    def runs(fn: Callable[[], object], n: int) -> Callable[[], float]:
        return lambda: min(once(fn, n))

    raw = RawPeer("msgpack")
    raw_bytes = RawPeer("bytes", len(BIG))
    pool = concurrent.futures.ProcessPoolExecutor(1)
    node_registry = plugyard.Registry("bench.node")
    node = shutil.which("node")
    has_node = node is not None and (NODE_PLUGIN / "node_modules").is_dir()
    if has_node:
        argv = [str(node), str(NODE_PLUGIN / "index.js"), "wordfreq"]
        node_registry.register(external(argv, readable=[str(NODE_PLUGIN)]), name="wordfreq")
    with (
        _manager(registry, policy) as manager,
        plugyard.PluginManager(
            node_registry, sandbox=policy, metrics=False, entry_points=False
        ) as node_manager,
    ):
        handle = manager.get("echo")
        child = handle.instance.supervisor.child

        def pipelined() -> None:
            pending = [child.submit("execute", [i]) for i in range(2000)]
            for call in pending:
                call.done.acquire()

        contenders["raw-small"] = calls(lambda i: raw.call(i, SMALL))
        contenders["sandbox-small"] = calls(lambda i: handle.execute(SMALL))
        contenders["pool-small"] = calls(lambda i: pool.submit(_echo, SMALL).result())
        contenders["raw-big"] = runs(lambda: raw_bytes.bytes_echo(BIG), 3)
        contenders["sandbox-big"] = runs(lambda: handle.execute(BIG), 3)
        contenders["raw-pipelined"] = runs(lambda: raw.pipelined(2000), 2)
        contenders["sandbox-pipelined"] = runs(pipelined, 2)
        python = [sys.executable, "-c", "pass"]
        contenders["spawn-python"] = runs(lambda: subprocess.run(python, check=True), 1)
        for label, bwrap in (("start-sandbox", True), ("start-sandbox-nobwrap", False)):
            contenders[label] = runs(functools.partial(_start, Sandbox(bwrap=bwrap)), 1)
        if has_node:
            text = manager.get("pyfreq")
            words = node_manager.get("wordfreq")
            contenders["node-small"] = calls(lambda i: words.execute("a b a"))
            contenders["python-text"] = calls(lambda i: text.execute("a b a"))
        for _ in range(rounds):
            for key, contender in contenders.items():
                samples.setdefault(key, []).append(contender())
    pool.shutdown()  # first: its forked worker holds the raw peers' pipes open too
    raw.close()
    raw_bytes.close()
    return samples


def _start(policy: Sandbox) -> None:
    """Start the Python worker, shake hands, stop it."""
    from plugyard.runtime._supervisor import Supervisor

    supervisor = Supervisor(
        "echo",
        "bench",
        "0",
        [sys.executable, "-m", "plugyard.worker", "sandbox:Echo", "--name", "echo"],
        policy,
        extra_env={"PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])},
    )
    supervisor.start()
    supervisor.stop()


# -- the report -------------------------------------------------------------------


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def report(figures: dict[str, list[float]], args: argparse.Namespace) -> str:
    """The section of the report, as Markdown."""
    med = {key: statistics.median(values) for key, values in figures.items()}
    mib = (2 * len(BIG)) / (1 << 20)
    rows: list[tuple[str, str, str, str, str, str]] = []

    def row(name: str, mine: str, theirs: str, peer: str, target: str, lower: bool) -> None:
        ratio = med[mine] / med[theirs]
        verdict = ""
        if target:
            bound = float(target.strip("≤≥ x"))
            ok = ratio <= bound if lower else ratio >= bound
            verdict = f"{target} **{'met' if ok else 'missed'}**"
        rows.append((name, _time(med[mine]), peer, _time(med[theirs]), f"{ratio:.2f}x", verdict))

    row("small call, round trip", "sandbox-small", "raw-small", "raw msgpack echo", "≤ 2.5x", True)
    row(
        "small call, round trip",
        "sandbox-small",
        "pool-small",
        "ProcessPoolExecutor",
        "≤ 0.2x",
        True,
    )
    raw_rate = mib / med["raw-big"]
    mine_rate = mib / med["sandbox-big"]
    big_ratio = mine_rate / raw_rate
    rows.append(
        (
            "8 MiB bytes, echoed",
            f"{mine_rate:.0f} MiB/s",
            "raw pipe echo",
            f"{raw_rate:.0f} MiB/s",
            f"{big_ratio:.2f}x",
            f"≥ 0.8x **{'met' if big_ratio >= 0.8 else 'missed'}**",
        )
    )
    calls = 2000 / med["sandbox-pipelined"]
    raw_calls = 2000 / med["raw-pipelined"]
    rows.append(
        (
            "pipelined calls, 2000 in flight",
            f"{calls:,.0f} calls/s",
            "raw msgpack echo",
            f"{raw_calls:,.0f} msg/s",
            f"{calls / raw_calls:.2f}x",
            "",
        )
    )
    row("start-up, spawn to $/hello", "start-sandbox", "spawn-python", "python -c pass", "", True)
    row(
        "start-up, without bubblewrap",
        "start-sandbox-nobwrap",
        "spawn-python",
        "python -c pass",
        "",
        True,
    )
    if "node-small" in med:
        row("Node plugin, round trip", "node-small", "python-text", "Python worker", "", True)
    lines = [
        HEADING,
        "",
        f"- **Date**: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- **Platform**: {platform.platform()}, {os.cpu_count()} CPUs",
        f"- **Python**: {platform.python_implementation()} {platform.python_version()}",
        f"- **Load average at start**: {' '.join(f'{x:.2f}' for x in args.load)}",
        f"- **Command**: `python benchmarks/sandbox.py{' --quick' if args.quick else ''}`",
        "",
        "Medians of samples taken in rounds that alternate the contenders, in one run; the "
        "sandboxed plugin runs under every layer this machine offers (see `plugyard sandbox "
        "check`), metrics off. The raw peers are Python processes on the same kind of pipes "
        "(fds 3 and 4, 1 MiB buffers): the msgpack echo decodes and encodes each message; "
        "the bytes echo reads the whole 8 MiB into one `bytes` object before sending it "
        "back, and so does this side, as a call does.",
        "",
        "| row | sandbox | peer | peer's | sandbox / peer | target |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for name, mine, peer, theirs, ratio, verdict in rows:
        lines.append(f"| {name} | {mine} | {peer} | {theirs} | {ratio} | {verdict} |")
    return "\n".join(lines) + "\n"


def write(section: str, out: Path) -> None:
    """Replace (or add) the section in ``out``."""
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    if HEADING in text:
        before, _, after = text.partition(HEADING)
        rest = after.split("\n## ", 1)
        tail = f"\n## {rest[1]}" if len(rest) > 1 else ""
        text = before + section + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    out.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.md")
    args = parser.parse_args()
    args.load = os.getloadavg()
    section = report(measure(args.quick), args)
    write(section, args.out)
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
