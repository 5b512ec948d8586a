"""The plugyard demo: contrib plugins listed, run, signed, verified, attacked; reloaded; a sandbox.

Run by ``nox -s demo``, which builds the contrib wheels first::

    python contrib_plugins/demo.py WHEEL_DIR WORK_DIR [--pip "python -m pip"]

It installs into the environment of the Python that runs it (with ``--pip``,
through that command), and leaves that environment as it found it: the
tampered plugin is reinstalled from its signed wheel at the end. The hot
reload installs its plugin's versions under ``WORK_DIR/data``, not into the
user's data directory, and removes them at the end.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

GROUP = "plugyard.demo"
TEXT = "The quick brown fox jumps over the lazy dog"
#: The group of the plugin the hot reload replaces; its own, apart from the contrib plugins'.
RELOAD_GROUP = "plugyard.demo.reload"
#: How many threads call it during the reloads, and for how long between two steps.
CALLERS = 4
BUSY = 0.3


def say(text: str) -> None:
    """An explanation between the steps."""
    print(f"\n==> {textwrap.fill(text, 76, subsequent_indent='    ')}", flush=True)


def plugyard(*argv: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run the plugyard CLI of this environment, showing what it prints."""
    print(f"$ plugyard {shlex.join(argv)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "plugyard", *argv], capture_output=True, text=True, check=False
    )
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    if done.returncode != expect:
        raise SystemExit(f"demo: expected exit code {expect}, got {done.returncode}")
    return done


def greet_source(version: str, greeting: str, setup: str = "pass") -> str:
    """A single-file plugin that answers with its version; a call takes about a millisecond."""
    return (
        f'"""Greets, and says which version answered."""\n'
        f"\n"
        f"import time\n"
        f"\n"
        f"__version__ = {version!r}\n"
        f"\n"
        f"\n"
        f"class Greet:\n"
        f"    def setup(self, ctx):\n"
        f"        {setup}\n"
        f"\n"
        f"    def execute(self, name):\n"
        f"        time.sleep(0.001)  # waiting on I/O, as a real call would\n"
        f"        return __version__, f'{greeting}, {{name}}'\n"
        f"\n"
        f"\n"
        f"plugin = Greet\n"
    )


def deploy(path: Path, text: str) -> None:
    """Replace a plugin file at once, as a deployment would: written beside it, renamed over it."""
    part = path.with_name(f".{path.name}.part")
    part.write_text(text)
    part.replace(path)


class Load:
    """Threads that call a handle without pause, counting the answers by version.

    Each call is counted under the phase the main thread was in when the call started.
    """

    def __init__(self, handle: Any, threads: int) -> None:
        self.handle = handle
        self.phase = "before"
        self._answers: collections.Counter[tuple[str, str]] = collections.Counter()
        self._failures: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._call) for _ in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _call(self) -> None:
        while not self._stop.is_set():
            phase = self.phase
            try:
                version, _ = self.handle.execute("world")
            except Exception as error:  # what the demo is there to show never happens
                with self._lock:
                    self._failures.append((phase, f"{type(error).__name__}: {error}"))
            else:
                with self._lock:
                    self._answers[phase, version] += 1

    def answered(self, *phases: str) -> dict[str, int]:
        """The calls each version answered, of those started in ``phases`` (default: all)."""
        with self._lock:
            counted: collections.Counter[str] = collections.Counter()
            for (phase, version), n in self._answers.items():
                if not phases or phase in phases:
                    counted[version] += n
        return dict(sorted(counted.items()))

    def failed(self, *phases: str) -> list[str]:
        """The errors of the calls that failed, of those started in ``phases`` (default: all)."""
        with self._lock:
            return [error for phase, error in self._failures if not phases or phase in phases]

    def report(self, label: str, *phases: str) -> None:
        """Print how the calls started in ``phases`` went."""
        answered, failed = self.answered(*phases), self.failed(*phases)
        versions = ", ".join(f"{v}: {n}" for v, n in answered.items())
        calls = sum(answered.values()) + len(failed)
        print(f"{label:<30}{calls:>6} calls, {len(failed)} failed; answered by {versions}")


def check(ok: bool, what: str) -> None:
    """Stop the demo if what it shows did not happen."""
    if not ok:
        raise SystemExit(f"demo: {what}")


def hot_reload_under_load(work: Path) -> None:
    """A plugin replaced twice while threads call it: by a new version, then by a broken one.

    Directory plugins are installed under ``$XDG_DATA_HOME``: the demo's own,
    ``WORK_DIR/data``, removed at the end.
    """
    data = work / "data"
    os.environ["XDG_DATA_HOME"] = str(data)
    try:
        reload_steps(work / "plugins")
    finally:
        remove_installations(data)


def remove_installations(data: Path) -> None:
    """Remove a data directory plugyard installed plugins into, read-only as they are."""
    for directory, _, _ in os.walk(data):
        Path(directory).chmod(0o755)
    shutil.rmtree(data, ignore_errors=True)


def reload_steps(plugins: Path) -> None:
    """The two steps of the hot reload, with ``plugins`` as the plugin directory."""
    from plugyard import PluginManager

    # The failed reload is logged as a warning; the demo prints the error itself.
    logging.getLogger("plugyard").addHandler(logging.NullHandler())
    shutil.rmtree(plugins, ignore_errors=True)
    plugins.mkdir()
    greet = plugins / "greet.py"
    deploy(greet, greet_source("1.0", "hello"))
    say(
        "Hot reload under load. A plugin directory holds greet 1.0, a single-file plugin; "
        f"{CALLERS} threads call it without pause while greet.py is replaced by 2.0 and the "
        "manager reloads it. The calls in flight finish on 1.0, the next ones get 2.0:"
    )
    plugyard("list", "--group", RELOAD_GROUP, "--plugin-dir", str(plugins))
    print(f">>> manager = PluginManager(group={RELOAD_GROUP!r}, plugin_dirs=[{str(plugins)!r}])")
    with PluginManager(group=RELOAD_GROUP, plugin_dirs=[plugins]) as manager:
        print('>>> handle = manager.get("greet")')
        run_under_load(manager, Load(manager.get("greet"), CALLERS), plugins / "greet.py")


def run_under_load(manager: Any, load: Load, greet: Path) -> None:
    """Reload greet to 2.0, then to a broken 3.0, while ``load`` calls it."""
    from plugyard.exceptions import ReloadError

    load.start()
    try:
        time.sleep(BUSY)
        print(f"[{CALLERS} threads are calling handle.execute(); greet.py now holds 2.0]")
        deploy(greet, greet_source("2.0", "hi there"))
        load.phase = "reload to 2.0"
        print('>>> manager.reload("greet")')
        started = time.perf_counter()
        event = manager.reload("greet")
        took = time.perf_counter() - started
        load.phase = "after 2.0"
        print(repr(event))
        time.sleep(BUSY)
        load.report(f"while it reloaded ({took * 1000:.0f} ms):", "reload to 2.0")
        load.report("since it returned:", "after 2.0")
        load.report("all calls so far:")
        check(not load.failed(), f"calls failed: {load.failed()[:3]}")
        check(set(load.answered()) == {"1.0", "2.0"}, "both versions should have answered")
        after = load.answered("after 2.0")
        check(set(after) == {"2.0"}, f"not 2.0 alone answered after the reload: {after}")

        say(
            "Then a broken version: greet 3.0, whose setup() raises. The reload builds it "
            "beside 2.0, fails, and undoes everything; 2.0 goes on answering every call:"
        )
        print("[greet.py now holds 3.0]")
        deploy(greet, greet_source("3.0", "hey", setup="raise RuntimeError('no greetings today')"))
        load.phase = "reload to 3.0"
        print('>>> manager.reload("greet")')
        started = time.perf_counter()
        try:
            manager.reload("greet")
        except ReloadError as error:
            took = time.perf_counter() - started
            load.phase = "after 3.0"
            print(f"ReloadError: {error}")
            check(error.stage == "setup", f"the reload failed in {error.stage}, not in setup")
        else:
            check(False, "the broken version was reloaded")
        time.sleep(BUSY)
    finally:
        load.stop()
    load.report(f"while it failed ({took * 1000:.0f} ms):", "reload to 3.0")
    load.report("since it failed:", "after 3.0")
    load.report("all calls:")
    versions = dict(manager.metrics("greet").versions)
    print(f'>>> dict(manager.metrics("greet").versions)\n{versions}')
    check(not load.failed(), f"calls failed: {load.failed()[:3]}")
    after = load.answered("reload to 3.0", "after 3.0")
    check(set(after) == {"2.0"}, f"not 2.0 alone answered after the failed reload: {after}")
    check(versions == load.answered(), "the manager's metrics disagree with the calls made")


def main() -> int:
    """Run the demo; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", type=Path, help="the contrib plugins' wheels")
    parser.add_argument("work", type=Path, help="a directory for keys and signed wheels")
    parser.add_argument("--pip", default=f"{sys.executable} -m pip", help="how to run pip")
    args = parser.parse_args()
    pip = shlex.split(args.pip)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    group = ["--group", GROUP]

    say(
        "Five plugins in four ordinary wheels, installed with pip. plugyard lists them "
        "from their metadata: nothing of them is imported yet."
    )
    plugyard("list", *group)

    say("Their declared dependencies (with version ranges) and the order they are set up in:")
    plugyard("graph", *group)

    say("One plugin at the end of the chain, run with everything it depends on:")
    plugyard("run", "report", TEXT, *group)

    say(
        "Now sign the wheels with a key of our own, as a release pipeline would, and "
        "install the signed ones."
    )
    keys = work / "keys"
    shutil.rmtree(keys, ignore_errors=True)
    plugyard("keygen", "--out", str(keys), "--id", "demo")
    signed = work / "signed"
    shutil.rmtree(signed, ignore_errors=True)
    signed.mkdir()
    for wheel in sorted(args.wheels.glob("plugyard_demo_*.whl")):
        plugyard("sign", str(wheel), "--key", str(keys / "demo.pem"), "--out", f"{signed}/")
    wheels = sorted(str(w) for w in signed.glob("*.whl"))
    subprocess.run(
        [*pip, "install", "-q", "--no-compile", "--no-deps", "--force-reinstall", *wheels],
        check=True,
    )
    trusted = work / "trusted"
    shutil.rmtree(trusted, ignore_errors=True)
    trusted.mkdir()
    shutil.copy(keys / "demo.pub.pem", trusted)

    say("Every installed file is checked against the signed manifest:")
    plugyard("verify", *group, "--keyring", str(trusted))

    say(
        "With --keyring, plugyard verifies each plugin's distribution before importing it, "
        "and imports it from the bytes it checked:"
    )
    plugyard("run", "report", TEXT, *group, "--keyring", str(trusted))

    say(
        "An attacker who can write one file appends code to the installed normalize "
        "plugin, code that would leave a marker file behind."
    )
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; print(u.find_spec('plugyard_demo_normalize').origin)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    module = Path(found.stdout.strip())
    marker = work / "ATTACKER-CODE-RAN"
    marker.unlink(missing_ok=True)
    original = module.read_bytes()
    module.write_bytes(original + f"\nopen({str(marker)!r}, 'w').close()\n".encode())
    try:
        plugyard("verify", *group, "--keyring", str(trusted), expect=1)
        say(
            "normalize is refused before import, and so is report, which needs it; "
            "nothing of the tampered code runs:"
        )
        plugyard("run", "report", TEXT, *group, "--keyring", str(trusted), expect=1)
        print(f"marker file present: {marker.exists()}")
        if marker.exists():
            raise SystemExit("demo: the tampered code ran")
        say("The plugins that do not need normalize still run, verified:")
        plugyard("run", "tokenize", TEXT, *group, "--keyring", str(trusted))
        plugyard(
            "run", "reverse", "plugins, verified and ordered", *group, "--keyring", str(trusted)
        )
    finally:
        module.write_bytes(original)
        subprocess.run(
            [*pip, "install", "-q", "--no-compile", "--no-deps", "--force-reinstall", *wheels],
            check=True,
        )
    say("The signed normalize is back: everything verifies and runs again.")
    plugyard("run", "shout", "plugins,   verified and ordered", *group, "--keyring", str(trusted))

    hot_reload_under_load(work)

    say(
        "A plugin plugyard does not trust runs in a supervised child process instead. "
        "The isolation layers this machine offers it:"
    )
    plugyard("sandbox", "check")
    node_plugin = Path(__file__).resolve().parent / "node-wordfreq"
    if not (node_plugin / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--silent", "--prefix", str(node_plugin)], check=True)
    node = ["node", str(node_plugin / "index.js"), "wordfreq"]
    say(
        "A plugin written in Node.js, against an npm msgpack library, checked against the "
        "protocol any language can implement, then run in the sandbox:"
    )
    plugyard("sandbox", "conformance", "--", *node)
    plugyard(
        "sandbox", "run", "--name", "wordfreq", "--data", "the cat saw the other cat", "--", *node
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
