"""The demo (README command 1) runs and shows what it says it shows."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from wheelhouse import ROOT, MakeVenv

#: A line of the hot reload's counts: ``LABEL:  N calls, N failed; answered by V: N, V: N``.
COUNTS = re.compile(
    r"^(?P<label>[a-z ]+)(?: \(\d+ ms\))?: +(?P<calls>\d+) calls, (?P<failed>\d+) failed; "
    r"answered by (?P<versions>.*)$",
    re.MULTILINE,
)


def reload_counts(out: str) -> dict[str, tuple[int, int, dict[str, int]]]:
    """The hot reload's counts by label: calls, failed calls, answers by version."""
    counts = {}
    for match in COUNTS.finditer(out):
        versions = {}
        for part in filter(None, match["versions"].split(", ")):
            version, answered = part.split(": ")
            versions[version] = int(answered)
        assert sum(versions.values()) + int(match["failed"]) == int(match["calls"])
        counts[match["label"]] = (int(match["calls"]), int(match["failed"]), versions)
    return counts


CONTRIB = [
    "plugyard-demo-tokenize",
    "plugyard-demo-normalize",
    "plugyard-demo-stats",
    "plugyard-demo-extras",
]


@pytest.mark.slow
def test_the_demo_lists_runs_signs_verifies_refuses_reloads_and_sandboxes(
    make_venv: MakeVenv, wheels: dict[str, Path], tmp_path: Path
) -> None:
    venv = make_venv(*CONTRIB)
    pip = f"{shlex.quote(sys.executable)} -m pip --python {shlex.quote(str(venv.python))}"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [
            str(venv.python),
            str(ROOT / "contrib_plugins" / "demo.py"),
            str(wheels["plugyard-demo-tokenize"].parent),
            str(tmp_path / "work"),
            "--pip",
            pip,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    steps = [line for line in out.splitlines() if line.startswith("==> ")]
    assert len(steps) == 14
    # Listed without importing, then run in dependency order.
    assert "NAME" in out
    assert "discovered" in out
    assert out.count('{"words": 9, "chars": 35}') == 2  # unsigned, then verified
    # Signed, verified, then one file tampered with: refused before import.
    assert out.count("plugyard-demo-normalize 1.0.0: ok, signed by") == 1
    assert (
        "plugyard-demo-normalize 1.0.0: hash-mismatch: plugyard_demo_normalize/__init__.py" in out
    )
    assert "Nothing of it was imported" in out
    assert "marker file present: False" in out
    assert not (tmp_path / "work" / "ATTACKER-CODE-RAN").exists()
    # The rest still runs, and the signed copy is back at the end.
    assert '"deredro dna deifirev ,snigulp"' in out
    assert '"PLUGINS VERIFIED AND ORDERED!"' in out
    # Hot reload under load: 1.0 then 2.0 answer, no call fails, and a broken 3.0 is undone.
    counts = reload_counts(out)
    assert set(counts) == {
        "while it reloaded",
        "since it returned",
        "all calls so far",
        "while it failed",
        "since it failed",
        "all calls",
    }
    assert all(failed == 0 for _, failed, _ in counts.values())
    calls, _, during = counts["while it reloaded"]
    assert calls > 0  # the reload ran under load
    assert set(during) <= {"1.0", "2.0"}
    assert set(counts["all calls so far"][2]) == {"1.0", "2.0"}
    assert set(counts["since it returned"][2]) == {"2.0"}
    assert (
        "PluginReloaded(plugin='greet', group='plugyard.demo.reload', version='2.0', "
        "old_version='1.0', reason='requested')" in out
    )
    assert (
        "ReloadError: reloading plugin 'greet' 2.0 to 3.0 failed (setup): plugin 'greet' raised "
        "in setup(): RuntimeError: no greetings today. Version 2.0 is still active." in out
    )
    assert set(counts["while it failed"][2]) <= {"2.0"}
    assert set(counts["since it failed"][2]) == {"2.0"}
    answered = counts["all calls"][2]
    assert answered["2.0"] > counts["all calls so far"][2]["2.0"]
    assert answered["1.0"] == counts["all calls so far"][2]["1.0"]
    metrics = out.split('>>> dict(manager.metrics("greet").versions)\n', 1)[1].splitlines()[0]
    assert ast.literal_eval(metrics) == answered
    assert not (tmp_path / "work" / "data").exists()  # its read-only installations removed
    # A Node.js plugin passes the protocol's conformance checks and runs in the sandbox.
    assert "\n8 passed, 0 failed\n" in out
    assert out.rstrip().endswith('{"cat": 2, "the": 2, "other": 1, "saw": 1}')
    restored = venv.run(
        "import plugyard_demo_normalize, inspect; print(inspect.getsource(plugyard_demo_normalize))"
    )
    assert "ATTACKER-CODE-RAN" not in restored.stdout
