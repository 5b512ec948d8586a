"""The plugyard demo: contrib plugins listed, run, signed, verified, attacked; a sandbox.

Run by ``nox -s demo``, which builds the contrib wheels first::

    python contrib_plugins/demo.py WHEEL_DIR WORK_DIR [--pip "python -m pip"]

It installs into the environment of the Python that runs it (with ``--pip``,
through that command), and leaves that environment as it found it: the
tampered plugin is reinstalled from its signed wheel at the end.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

GROUP = "plugyard.demo"
TEXT = "The quick brown fox jumps over the lazy dog"


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
