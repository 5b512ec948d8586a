"""The demo (README command 1) runs and shows what it says it shows."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from wheelhouse import ROOT, MakeVenv

CONTRIB = [
    "plugyard-demo-tokenize",
    "plugyard-demo-normalize",
    "plugyard-demo-stats",
    "plugyard-demo-extras",
]


@pytest.mark.slow
def test_the_demo_lists_runs_signs_verifies_refuses_and_sandboxes(
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
    assert len(steps) == 12
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
    # A Node.js plugin passes the protocol's conformance checks and runs in the sandbox.
    assert "\n8 passed, 0 failed\n" in out
    assert out.rstrip().endswith('{"cat": 2, "the": 2, "other": 1, "saw": 1}')
    restored = venv.run(
        "import plugyard_demo_normalize, inspect; print(inspect.getsource(plugyard_demo_normalize))"
    )
    assert "ATTACKER-CODE-RAN" not in restored.stdout
